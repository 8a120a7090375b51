"""The Helm chart rendered with `helm template` over the values files in tests/fixtures/chart-values."""

from __future__ import annotations

import base64
import copy
import functools
from collections.abc import Mapping, Sequence
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from autorollout.config import Config, load_config_text
from certs.cabundle import (
    TEMPLATE_CHANGED_CONDITION,
    ServiceTarget,
    namespace_selector_for,
    render_webhook_configuration,
)
from tests.harness import helm
from tests.harness.helm import CHART_DIR, VALUES_DIR, HelmError, Manifest, find, only, run_helm

pytestmark = pytest.mark.integration

NS = "autorollout"
FULLNAME = "kar-kube-autorollout"
VALUES_FILES = sorted(p.name for p in VALUES_DIR.glob("*.yaml"))
UPSTREAM_FILES = [name for name in VALUES_FILES if name.startswith("upstream-")]

WORKLOAD_RULES = [
    {
        "apiGroups": ["apps"],
        "resources": ["deployments", "statefulsets", "daemonsets"],
        "verbs": ["get", "list", "watch", "patch"],
    },
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]},
    {"apiGroups": ["apps"], "resources": ["replicasets"], "verbs": ["list"]},
    {"apiGroups": [""], "resources": ["events"], "verbs": ["create", "patch"]},
]
SECRETS_RULE = {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}


@functools.cache
def _render_cached(values_files: tuple[str, ...], set_values: tuple[tuple[str, str], ...]) -> list[Manifest]:
    return helm.render(values_files, dict(set_values))


def render(values_files: Sequence[str] = (), set_values: Mapping[str, str] | None = None) -> list[Manifest]:
    """`helm template` with these values; each combination is rendered once per session (read-only)."""
    return _render_cached(tuple(values_files), tuple(sorted((set_values or {}).items())))


def container(objects: list[Manifest]) -> dict[str, Any]:
    [only_container] = only(objects, "Deployment")["spec"]["template"]["spec"]["containers"]
    return only_container


def pod_spec(objects: list[Manifest]) -> dict[str, Any]:
    spec: dict[str, Any] = only(objects, "Deployment")["spec"]["template"]["spec"]
    return spec


def rendered_config(objects: list[Manifest], environ: dict[str, str] | None = None) -> Config:
    """The ConfigMap's config file loaded by the program's own loader.

    (`load_config_text`: `load_config` also wants the CA files, which exist only inside the pod.)
    """
    text = only(objects, "ConfigMap", f"{FULLNAME}-config")["data"]["config.yaml"]
    return load_config_text(text, environ or {})


def webhook_entry(objects: list[Manifest]) -> dict[str, Any]:
    [entry] = only(objects, "MutatingWebhookConfiguration")["webhooks"]
    return entry


# --- every values file -----------------------------------------------------------------------------


def test_lint_is_clean_with_default_values() -> None:
    result = run_helm("lint", "--strict", str(CHART_DIR))
    assert "1 chart(s) linted, 0 chart(s) failed" in result.stdout


@pytest.mark.parametrize("values_file", VALUES_FILES)
def test_lint_is_clean_with_values_file(values_file: str) -> None:
    result = run_helm("lint", "--strict", str(CHART_DIR), "-f", str(VALUES_DIR / values_file))
    assert "0 chart(s) failed" in result.stdout


@pytest.mark.parametrize("values_file", VALUES_FILES)
def test_rendered_config_loads_without_problems(values_file: str) -> None:
    objects = render([values_file])
    deployment_env = {e["name"] for e in container(objects)["env"]}
    # The loader must find every variable the config references among the container's variables.
    config = rendered_config(objects, environ=dict.fromkeys(deployment_env, "value-from-secret"))
    assert config.webserver.port == container(objects)["ports"][0]["containerPort"]


@pytest.mark.parametrize("values_file", VALUES_FILES)
def test_namespaced_objects_land_in_the_release_namespace(values_file: str) -> None:
    cluster_scoped = {"MutatingWebhookConfiguration", "ClusterRole", "ClusterRoleBinding"}
    scoped_roles = {"Role", "RoleBinding"}
    for obj in render([values_file]):
        meta = obj["metadata"]
        if obj["kind"] in cluster_scoped:
            assert "namespace" not in meta
            assert meta["name"].endswith(f"-{NS}"), "cluster-scoped names carry the release namespace"
        elif obj["kind"] not in scoped_roles:
            assert meta["namespace"] == NS, obj["kind"]


# --- defaults -------------------------------------------------------------------------------------


def test_pod_runs_hardened() -> None:
    objects = render()
    pod = pod_spec(objects)["securityContext"]
    assert pod["runAsNonRoot"] is True
    assert pod["runAsUser"] == 65532
    assert pod["seccompProfile"] == {"type": "RuntimeDefault"}
    ctr = container(objects)["securityContext"]
    assert ctr["runAsNonRoot"] is True
    assert ctr["readOnlyRootFilesystem"] is True
    assert ctr["allowPrivilegeEscalation"] is False
    assert ctr["capabilities"] == {"drop": ["ALL"]}
    assert ctr["seccompProfile"] == {"type": "RuntimeDefault"}
    # The only writable place is an emptyDir at /tmp.
    mounts = {m["mountPath"]: m for m in container(objects)["volumeMounts"]}
    writable = [path for path, m in mounts.items() if not m.get("readOnly")]
    assert writable == ["/tmp"]


def test_upstream_values_with_empty_security_contexts_keep_the_hardening() -> None:
    objects = render(["upstream-feature-flags.yaml"])
    assert container(objects)["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod_spec(objects)["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container(objects)["livenessProbe"]["httpGet"] == {"path": "/health/live", "port": "http"}


def test_probes_resources_ports_and_command() -> None:
    objects = render()
    ctr = container(objects)
    assert ctr["args"] == ["run"]
    assert ctr["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert ctr["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert ctr["resources"]["limits"]["memory"] == "256Mi"
    assert {p["name"]: p["containerPort"] for p in ctr["ports"]} == {"http": 8080, "webhook": 8443}
    assert ctr["image"] == "ghcr.io/kube-autorollout/kube-autorollout:0.1.0"
    env = {e["name"]: e for e in ctr["env"]}
    assert env["CONFIG_FILE"]["value"] == "/etc/kube-autorollout/config/config.yaml"
    service = only(objects, "Service")
    assert {p["name"]: (p["port"], p["targetPort"]) for p in service["spec"]["ports"]} == {
        "webhook": (443, "webhook"),
        "http": (8080, "http"),
    }


def test_config_change_rolls_the_pods() -> None:
    def checksum(objects: list[Manifest]) -> str:
        annotations = only(objects, "Deployment")["spec"]["template"]["metadata"]["annotations"]
        value: str = annotations["checksum/config"]
        return value

    assert checksum(render()) != checksum(render(set_values={"config.logLevel": "debug"}))


def test_default_config_watches_the_release_namespace() -> None:
    config = rendered_config(render())
    assert config.reconciler.namespaces == [NS]
    assert config.reconciler.all_namespaces is False
    assert config.leader_election.enabled is False
    assert config.webhook.tls_cert_file == "/etc/kube-autorollout/tls/tls.crt"
    assert config.webhook.tls_key_file == "/etc/kube-autorollout/tls/tls.key"
    assert config.webhook.port == 8443
    assert config.cron_schedule == "*/45 * * * * *"


def test_default_rbac_is_one_role_in_the_release_namespace() -> None:
    objects = render()
    assert not find(objects, "ClusterRole")
    assert not find(objects, "ClusterRoleBinding")
    role = only(objects, "Role")
    assert role["metadata"] == role["metadata"] | {"name": FULLNAME, "namespace": NS}
    assert role["rules"] == [*WORKLOAD_RULES, SECRETS_RULE]
    binding = only(objects, "RoleBinding")
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": FULLNAME}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": FULLNAME, "namespace": NS}]
    assert not find(objects, "PodDisruptionBudget")


def test_rbac_disabled_creates_no_roles() -> None:
    objects = render(set_values={"rbac.enabled": "false"})
    assert not [
        o for o in objects if o["kind"] in {"Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"}
    ]


def test_default_webhook_configuration() -> None:
    objects = render()
    entry = webhook_entry(objects)
    assert entry["admissionReviewVersions"] == ["v1"]
    assert entry["sideEffects"] == "None"
    assert entry["failurePolicy"] == "Ignore"
    assert entry["timeoutSeconds"] == 5
    assert entry["objectSelector"] == {"matchLabels": {"kube-autorollout/enabled": "true"}}
    assert entry["namespaceSelector"] == {
        "matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "In", "values": [NS]}]
    }
    assert entry["rules"] == [
        {
            "apiGroups": ["apps"],
            "apiVersions": ["v1"],
            "resources": ["deployments", "statefulsets", "daemonsets"],
            "operations": ["CREATE", "UPDATE"],
            "scope": "Namespaced",
        }
    ]
    assert entry["clientConfig"]["service"] == {
        "name": FULLNAME,
        "namespace": NS,
        "path": "/mutate",
        "port": 443,
    }
    assert entry["matchConditions"] == [TEMPLATE_CHANGED_CONDITION]


def test_webhook_entry_matches_what_the_certs_command_renders() -> None:
    """The chart and `kube-autorollout certs webhook-config` describe one webhook the same way."""
    entry = copy.deepcopy(webhook_entry(render()))
    target = ServiceTarget(namespace=NS, name=FULLNAME)
    [expected] = render_webhook_configuration(
        "unused", service=target, namespace_selector=namespace_selector_for([NS])
    )["webhooks"]
    del entry["clientConfig"]["caBundle"]
    assert entry == expected


def test_skip_own_requests_adds_a_condition_on_the_service_account() -> None:
    entry = webhook_entry(render(set_values={"webhook.skipOwnRequests": "true"}))
    template_changed, own = entry["matchConditions"]
    assert template_changed == TEMPLATE_CHANGED_CONDITION
    assert own["expression"] == f'request.userInfo.username != "system:serviceaccount:{NS}:{FULLNAME}"'


def _public_key_verifies(issuer: x509.Certificate, cert: x509.Certificate) -> None:
    key = issuer.public_key()
    algorithm = cert.signature_hash_algorithm
    assert algorithm is not None
    if isinstance(key, rsa.RSAPublicKey):
        key.verify(cert.signature, cert.tbs_certificate_bytes, padding.PKCS1v15(), algorithm)
    elif isinstance(key, ec.EllipticCurvePublicKey):
        key.verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(algorithm))
    else:
        raise AssertionError(f"unexpected CA key type {type(key).__name__}")


def test_helm_mode_generates_a_ca_and_serving_certificate_for_the_service() -> None:
    objects = render()
    secret = only(objects, "Secret", f"{FULLNAME}-webhook-tls")
    assert secret["type"] == "kubernetes.io/tls"
    assert set(secret["data"]) == {"ca.crt", "tls.crt", "tls.key"}
    assert webhook_entry(objects)["clientConfig"]["caBundle"] == secret["data"]["ca.crt"]
    ca = x509.load_pem_x509_certificate(base64.b64decode(secret["data"]["ca.crt"]))
    serving = x509.load_pem_x509_certificate(base64.b64decode(secret["data"]["tls.crt"]))
    _public_key_verifies(ca, serving)
    names = serving.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert f"{FULLNAME}.{NS}.svc" in names.get_values_for_type(x509.DNSName)
    volumes = {v["name"]: v for v in pod_spec(objects)["volumes"]}
    assert volumes["webhook-tls"]["secret"]["secretName"] == f"{FULLNAME}-webhook-tls"


# --- upstream values files ------------------------------------------------------------------------


def test_upstream_registries_mount_pull_secrets_and_inject_opaque_keys() -> None:
    objects = render(["upstream-registries.yaml"])
    ctr = container(objects)
    secret_env = [e for e in ctr["env"] if "secretKeyRef" in e.get("valueFrom", {})]
    # Two registries share one Secret key: one variable, named after the key as upstream does.
    assert secret_env == [
        {
            "name": "IDENTITY_TOKEN",
            "valueFrom": {
                "secretKeyRef": {"name": "jfrog-artifactory-registry-creds", "key": "IDENTITY_TOKEN"}
            },
        }
    ]
    mounts = {m["mountPath"]: m["name"] for m in ctr["volumeMounts"]}
    volumes = {v["name"]: v for v in pod_spec(objects)["volumes"]}
    for path, secret in [
        ("/etc/secrets/registries/ghcr.io", "ghcr-io-registry-creds"),
        ("/etc/secrets/registries/docker.io", "docker-io-registry-creds"),
    ]:
        assert volumes[mounts[path]]["secret"]["secretName"] == secret

    config = rendered_config(objects, environ={"IDENTITY_TOKEN": "tok-123"})
    by_host = {r.hostname_pattern: r.secret for r in config.registries}
    assert by_host["ghcr.io"].type == "ImagePullSecret"
    assert by_host["ghcr.io"].mount_path == "/etc/secrets/registries/ghcr.io"
    for host in ("*.artifactory.example.com", "another-artifactory.example.com"):
        assert by_host[host].type == "Opaque"
        assert by_host[host].token is not None
        assert by_host[host].token.get_secret_value() == "tok-123"
    assert config.feature_flags.enable_jfrog_artifactory_fallback is True
    raw = only(objects, "ConfigMap")["data"]["config.yaml"]
    assert "token: ${IDENTITY_TOKEN}" in raw


def test_opaque_literal_token_none_type_and_unusable_key_names() -> None:
    objects = render(["upstream-opaque-token.yaml"])
    secret_env = {
        e["name"]: e["valueFrom"]["secretKeyRef"]
        for e in container(objects)["env"]
        if "secretKeyRef" in e.get("valueFrom", {})
    }
    # "identity-token" is no valid variable name: the chart names the variable itself.
    assert secret_env["KUBE_AUTOROLLOUT_REGISTRY_2_TOKEN"] == {"name": "jfrog-creds", "key": "identity-token"}
    config = rendered_config(objects, environ={"KUBE_AUTOROLLOUT_REGISTRY_2_TOKEN": "from-secret"})
    first, anonymous, jfrog = config.registries
    assert first.secret.type == "Opaque"
    assert first.secret.username == "robot"
    assert first.secret.token is not None
    assert first.secret.token.get_secret_value() == "not-a-real-token"
    assert anonymous.secret.type == "None"
    assert jfrog.secret.username == "ci-bot"
    assert jfrog.secret.token is not None
    assert jfrog.secret.token.get_secret_value() == "from-secret"


def test_custom_ca_certificates_are_mounted_and_wired_into_the_config() -> None:
    objects = render(["upstream-custom-ca.yaml"])
    mounts = {m["mountPath"]: m for m in container(objects)["volumeMounts"]}
    volumes = {v["name"]: v for v in pod_spec(objects)["volumes"]}
    first = mounts["/etc/secrets/ca/custom-ca-01.crt"]
    assert first["subPath"] == "ca-01.crt"
    assert first["readOnly"] is True
    assert volumes[first["name"]]["secret"]["secretName"] == "custom-ca-01-secret"
    config = rendered_config(objects)
    assert config.tls.ca_certificate_paths == [
        "/etc/secrets/ca/custom-ca-01.crt",
        "/etc/secrets/ca/custom-ca-02.crt",
    ]


def test_upstream_default_values_render_and_skip_the_disabled_null_ca_entry() -> None:
    # Upstream's own values.yaml, unchanged: one custom CA entry of nulls, `enabled: false`.
    objects = render(["upstream-default-values.yaml"])
    volumes = [v["name"] for v in pod_spec(objects)["volumes"]]
    assert not [v for v in volumes if v.startswith("custom-ca-")]
    assert not [m for m in container(objects)["volumeMounts"] if m["name"].startswith("custom-ca-")]
    config = rendered_config(objects)
    assert config.tls.ca_certificate_paths == []
    assert config.cron_schedule == "*/45 * * * * *"
    assert config.webserver.port == 8080


def test_the_null_ca_entry_is_refused_once_enabled() -> None:
    with pytest.raises(HelmError) as caught:
        render(["upstream-default-values.yaml"], {"config.tls.customCaCertificates.enabled": "true"})
    assert "customCaCertificates" in caught.value.stderr


def test_upstream_feature_flags_reach_the_config() -> None:
    config = rendered_config(render(["upstream-feature-flags.yaml"]))
    assert config.feature_flags.enable_kubectl_annotation is True
    assert config.cron_schedule == "*/15 * * * * *"
    assert config.log_level == "debug"


# --- scope, replicas, certificate modes -----------------------------------------------------------


def test_all_namespaces_uses_a_cluster_role() -> None:
    objects = render(["all-namespaces.yaml"])
    assert not find(objects, "Role")
    assert not find(objects, "RoleBinding")
    role = only(objects, "ClusterRole")
    assert role["metadata"]["name"] == f"{FULLNAME}-{NS}"
    assert role["rules"] == WORKLOAD_RULES, "rbac.secrets.enabled=false: no secrets rule"
    binding = only(objects, "ClusterRoleBinding")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": FULLNAME, "namespace": NS}]
    assert "namespaceSelector" not in webhook_entry(objects)
    config = rendered_config(objects)
    assert config.reconciler.all_namespaces is True
    assert config.reconciler.namespaces == []


def test_namespace_list_gets_one_role_per_namespace() -> None:
    objects = render(["namespace-list.yaml"])
    roles = {r["metadata"]["namespace"]: r for r in find(objects, "Role")}
    assert set(roles) == {"team-a", "team-b"}
    for ns, role in roles.items():
        assert role["rules"] == [*WORKLOAD_RULES, SECRETS_RULE]
        [binding] = [b for b in find(objects, "RoleBinding") if b["metadata"]["namespace"] == ns]
        assert binding["roleRef"]["name"] == role["metadata"]["name"] == f"{FULLNAME}-{NS}"
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": FULLNAME, "namespace": NS}]
    entry = webhook_entry(objects)
    assert entry["namespaceSelector"]["matchExpressions"][0]["values"] == ["team-a", "team-b"]
    assert entry["failurePolicy"] == "Fail"
    assert entry["timeoutSeconds"] == 10
    assert rendered_config(objects).reconciler.namespaces == ["team-a", "team-b"]


def test_replicas_turn_on_leader_election_and_a_pdb() -> None:
    objects = render(["replicas-leader-election.yaml"])
    assert only(objects, "Deployment")["spec"]["replicas"] == 3
    pdb = only(objects, "PodDisruptionBudget")
    assert pdb["spec"]["minAvailable"] == 1
    assert (
        pdb["spec"]["selector"]["matchLabels"]
        == only(objects, "Deployment")["spec"]["selector"]["matchLabels"]
    )
    lease_role = only(objects, "Role", f"{FULLNAME}-leader-election")
    assert lease_role["metadata"]["namespace"] == NS
    assert lease_role["rules"] == [
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
        {
            "apiGroups": ["coordination.k8s.io"],
            "resources": ["leases"],
            "resourceNames": [FULLNAME],
            "verbs": ["get", "update", "patch"],
        },
    ]
    only(objects, "RoleBinding", f"{FULLNAME}-leader-election")
    config = rendered_config(objects)
    assert config.leader_election.enabled is True
    assert config.leader_election.lease_name == FULLNAME
    assert config.leader_election.lease_duration_seconds == 20
    assert config.webhook.image_pull_policy == "deny"


def test_cert_manager_mode_creates_issuer_chain_and_injects_the_ca() -> None:
    objects = render(["cert-manager.yaml"])
    assert not find(objects, "Secret")
    issuers = {i["metadata"]["name"]: i["spec"] for i in find(objects, "Issuer")}
    assert issuers == {
        f"{FULLNAME}-selfsigned": {"selfSigned": {}},
        f"{FULLNAME}-ca": {"ca": {"secretName": f"{FULLNAME}-ca"}},
    }
    ca = only(objects, "Certificate", f"{FULLNAME}-ca")["spec"]
    assert ca["isCA"] is True
    assert ca["issuerRef"] == {"kind": "Issuer", "name": f"{FULLNAME}-selfsigned"}
    serving = only(objects, "Certificate", f"{FULLNAME}-webhook-tls")["spec"]
    assert serving["secretName"] == f"{FULLNAME}-webhook-tls"
    assert serving["issuerRef"] == {"kind": "Issuer", "name": f"{FULLNAME}-ca"}
    assert f"{FULLNAME}.{NS}.svc" in serving["dnsNames"]
    webhook = only(objects, "MutatingWebhookConfiguration")
    assert webhook["metadata"]["annotations"] == {
        "cert-manager.io/inject-ca-from": f"{NS}/{FULLNAME}-webhook-tls"
    }
    assert "caBundle" not in webhook["webhooks"][0]["clientConfig"]
    monitor = only(objects, "ServiceMonitor")
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    assert monitor["spec"]["endpoints"][0]["port"] == "http"


def test_cert_manager_mode_with_an_existing_issuer_creates_no_chain() -> None:
    objects = render(
        ["cert-manager.yaml"],
        {
            "webhook.certificates.certManager.issuerRef.kind": "ClusterIssuer",
            "webhook.certificates.certManager.issuerRef.name": "corp-ca",
        },
    )
    assert not find(objects, "Issuer")
    serving = only(objects, "Certificate")["spec"]
    assert serving["issuerRef"] == {"kind": "ClusterIssuer", "name": "corp-ca"}


def test_existing_secret_mode_uses_the_given_secret_and_ca_bundle() -> None:
    objects = render(["existing-secret.yaml"])
    assert not find(objects, "Secret")
    assert not find(objects, "Certificate")
    volumes = {v["name"]: v for v in pod_spec(objects)["volumes"]}
    assert volumes["webhook-tls"]["secret"]["secretName"] == "my-webhook-tls"
    bundle = base64.b64decode(webhook_entry(objects)["clientConfig"]["caBundle"]).decode()
    assert bundle.startswith("-----BEGIN CERTIFICATE-----\nMIIBdummy\n")


def test_webhook_disabled_runs_the_reconciler_only() -> None:
    objects = render(["webhook-disabled.yaml"])
    assert not find(objects, "MutatingWebhookConfiguration")
    assert not find(objects, "Secret")
    ctr = container(objects)
    assert ctr["args"] == ["reconcile"]
    assert [p["name"] for p in ctr["ports"]] == ["http"]
    assert [p["name"] for p in only(objects, "Service")["spec"]["ports"]] == ["http"]
    assert only(objects, "Role")["rules"] == WORKLOAD_RULES


# --- values the chart refuses ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("set_values", "message"),
    [
        ({"webhook.failurePolicy": "Sometimes"}, "failurePolicy"),
        ({"webhook.certificates.mode": "vault"}, "mode"),
        ({"config.webhook.imagePullPolicy": "ignore"}, "imagePullPolicy"),
        ({"webhook.timeoutSeconds": "31"}, "timeoutSeconds"),
        (
            {"config.webhook.lookupBudgetSeconds": "5"},
            "lookupBudgetSeconds must be below webhook.timeoutSeconds",
        ),
        ({"config.reconciler.allNamespaces": "true", "config.reconciler.namespaces[0]": "a"}, "not both"),
        (
            {"config.registries[0].hostnamePattern": "x.io", "config.registries[0].secret.type": "Opaque"},
            "Opaque",
        ),
        (
            {"config.registries[0].hostnamePattern": "x.io", "config.registries[0].secret.type": "Vault"},
            "type",
        ),
        (
            {
                "config.registries[0].hostnamePattern": "x.io",
                "config.registries[0].secret.type": "ImagePullSecret",
            },
            "name is required",
        ),
        ({"webhook.certificates.mode": "secret", "webhook.certificates.secret.name": "s"}, "caBundle"),
    ],
)
def test_invalid_values_are_refused_with_a_message(set_values: dict[str, str], message: str) -> None:
    with pytest.raises(HelmError) as caught:
        render(set_values=set_values)
    assert message in caught.value.stderr


NODES_RULE = {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list", "watch"]}


def test_platform_comparison_grants_reading_nodes_and_only_then() -> None:
    assert not any(NODES_RULE in o.get("rules", []) for o in render(["all-namespaces.yaml"]))
    objects = render(set_values={"config.rolloutPolicy.compare": "platform"})
    assert rendered_config(objects).rollout_policy.compare == "platform"
    role = only(objects, "ClusterRole")
    assert role["metadata"]["name"] == f"{FULLNAME}-{NS}-nodes"
    assert role["rules"] == [NODES_RULE]
    binding = only(objects, "ClusterRoleBinding")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": FULLNAME, "namespace": NS}]
    assert only(objects, "Role")["rules"] == [*WORKLOAD_RULES, SECRETS_RULE]
    # For workloads that ask for it by annotation while the default stays `index`.
    by_value = render(set_values={"rbac.nodes.enabled": "true"})
    assert only(by_value, "ClusterRole")["rules"] == [NODES_RULE]
    assert rendered_config(by_value).rollout_policy.compare == "index"
    # With a ClusterRole for the workloads, the rule goes into it.
    cluster_wide = render(["all-namespaces.yaml"], {"config.rolloutPolicy.compare": "platform"})
    assert only(cluster_wide, "ClusterRole")["rules"] == [*WORKLOAD_RULES, NODES_RULE]
