"""`helm install` of the chart into the local control plane, RBAC checked with `kubectl auth can-i`.

No node runs these namespaces' pods, so they stay Pending: what is checked is that the real API server
accepts every object (also under strict field validation) and that the ServiceAccount may do exactly
what the program needs. The chart running the real image on the real node is
tests/e2e/test_real_node_chart.py.
"""

from __future__ import annotations

import base64
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from certs.mint import mint_ca, mint_serving_cert
from tests.harness.cluster import LocalCluster
from tests.harness.helm import CHART_DIR, HelmError, values_args

pytestmark = pytest.mark.e2e

RELEASE = "kar"
FULLNAME = "kar-kube-autorollout"
WORKLOADS = ("deployments.apps", "statefulsets.apps", "daemonsets.apps")


@dataclass
class Release:
    """An installed release, uninstalled (cluster-scoped objects included) at the end of the test."""

    cluster: LocalCluster
    namespace: str
    env: dict[str, str]
    install_output: str = ""

    @property
    def service_account(self) -> str:
        return f"system:serviceaccount:{self.namespace}:{FULLNAME}"

    def helm(self, *args: str) -> subprocess.CompletedProcess[str]:
        argv = [str(self.cluster.bin_dir / "helm"), *args, "--namespace", self.namespace]
        result = subprocess.run(argv, capture_output=True, text=True, env=self.env, timeout=120, check=False)
        if result.returncode != 0:
            raise HelmError(result.returncode, argv, result.stdout, result.stderr)
        return result

    def install(self, values_files: Sequence[str] = (), set_values: dict[str, str] | None = None) -> None:
        args = values_args(values_files, set_values)
        self.install_output = self.helm("install", RELEASE, str(CHART_DIR), *args).stdout

    def upgrade(self, values_files: Sequence[str] = (), set_values: dict[str, str] | None = None) -> None:
        self.helm("upgrade", RELEASE, str(CHART_DIR), *values_args(values_files, set_values))

    def manifest(self) -> list[dict[str, Any]]:
        text = self.helm("get", "manifest", RELEASE).stdout
        return [doc for doc in yaml.safe_load_all(text) if doc]

    def can_i(self, verb: str, resource: str, namespace: str | None = None) -> bool:
        """`kubectl auth can-i` as the release's ServiceAccount; namespace None means all namespaces."""
        scope = ["--all-namespaces"] if namespace is None else ["-n", namespace]
        result = self.cluster.kubectl(
            "auth", "can-i", verb, resource, *scope, "--as", self.service_account, check=False
        )
        answer = result.stdout.strip()
        assert answer in {"yes", "no"}, f"can-i {verb} {resource}: {answer!r} {result.stderr}"
        return answer == "yes"

    def can_i_list(self, namespace: str, as_user: str | None = None) -> dict[str, set[str]]:
        """`kubectl auth can-i --list` as the ServiceAccount (or `as_user`): {resource: verbs}."""
        user = as_user or self.service_account
        out = self.cluster.kubectl("auth", "can-i", "--list", "-n", namespace, "--as", user).stdout
        rules: dict[str, set[str]] = {}
        for line in out.splitlines()[1:]:
            # Resources  Non-Resource URLs  Resource Names  Verbs   (columns separated by 2+ spaces)
            columns = [c.strip() for c in line.split("  ") if c.strip()]
            resource, verbs = columns[0], columns[-1]
            names = columns[1] if len(columns) == 3 and columns[1].startswith("[") else "[]"
            if resource.startswith("["):  # a non-resource URL row
                continue
            key = resource if names == "[]" else f"{resource} {names}"
            rules.setdefault(key, set()).update(verbs.strip("[]").split())
        return rules


@pytest.fixture
def release(cluster: LocalCluster, namespace: str, tmp_path: Path) -> Iterator[Release]:
    env = dict(cluster.env)
    # Helm's own cache and config stay inside the test's directory.
    for name in ("HELM_CACHE_HOME", "HELM_CONFIG_HOME", "HELM_DATA_HOME"):
        env[name] = str(tmp_path / name.lower())
    installed = Release(cluster, namespace, env)
    try:
        yield installed
    finally:
        installed.helm("uninstall", RELEASE, "--ignore-not-found")


def assert_accepted_strictly(release: Release) -> None:
    """Every object of the release exists, and re-applying it with strict field validation is clean."""
    manifest = release.manifest()
    text = yaml.safe_dump_all(manifest)
    # Every namespaced object names its namespace, so no -n here.
    names = release.cluster.kubectl("get", "-f", "-", "-o", "name", input=text)
    assert len(names.stdout.split()) == len(manifest)
    release.cluster.kubectl(
        "apply",
        "--server-side",
        "--force-conflicts",
        "--dry-run=server",
        "--validate=strict",
        "-f",
        "-",
        input=text,
    )


# --- defaults: scope is the release namespace -----------------------------------------------------


def test_default_install_is_accepted_and_least_privileged(release: Release) -> None:
    release.install()
    assert "kube-autorollout status" in release.install_output, "NOTES tell how to check the status"
    assert_accepted_strictly(release)
    ns = release.namespace

    for resource in WORKLOADS:
        for verb in ("get", "list", "watch", "patch"):
            assert release.can_i(verb, resource, ns), f"{verb} {resource}"
        for verb in ("create", "update", "delete", "deletecollection"):
            assert not release.can_i(verb, resource, ns), f"{verb} {resource}"
    assert release.can_i("get", "pods", ns)
    assert release.can_i("list", "pods", ns)
    assert not release.can_i("delete", "pods", ns)
    assert not release.can_i("create", "pods", ns)
    assert not release.can_i("patch", "pods", ns)
    assert release.can_i("list", "replicasets.apps", ns)
    assert not release.can_i("patch", "replicasets.apps", ns)
    assert not release.can_i("watch", "replicasets.apps", ns)
    assert release.can_i("create", "events", ns)
    assert not release.can_i("delete", "events", ns)
    assert release.can_i("get", "secrets", ns)
    assert not release.can_i("list", "secrets", ns)
    assert not release.can_i("watch", "secrets", ns)
    assert not release.can_i("get", "configmaps", ns)
    assert not release.can_i("get", "leases.coordination.k8s.io", ns), "no leader election with one replica"
    assert not release.can_i("patch", "mutatingwebhookconfigurations.admissionregistration.k8s.io", None)
    # Nothing outside the release namespace.
    assert not release.can_i("list", "deployments.apps", "default")
    assert not release.can_i("list", "deployments.apps", None)
    assert not release.can_i("list", "namespaces", None)

    # `can-i --list` shows every rule that applies, also those every authenticated user has: the
    # namespace's `default` ServiceAccount (bound to nothing) shows those alone.
    baseline = release.can_i_list(ns, as_user=f"system:serviceaccount:{ns}:default")
    granted = {
        resource: verbs - baseline.get(resource, set())
        for resource, verbs in release.can_i_list(ns).items()
        if verbs - baseline.get(resource, set())
    }
    workload_verbs = {"get", "list", "watch", "patch"}
    assert granted == {
        "deployments.apps": workload_verbs,
        "statefulsets.apps": workload_verbs,
        "daemonsets.apps": workload_verbs,
        "pods": {"get", "list"},
        "replicasets.apps": {"list"},
        "events": {"create", "patch"},
        "secrets": {"get"},
    }


def test_upgrade_keeps_the_generated_certificate(release: Release) -> None:
    release.install()
    secret_path = f"/api/v1/namespaces/{release.namespace}/secrets/{FULLNAME}-webhook-tls"
    webhook_path = (
        f"/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/{FULLNAME}-{release.namespace}"
    )
    before = release.cluster.api_get(secret_path)
    assert before is not None
    release.upgrade(set_values={"config.logLevel": "debug"})
    after = release.cluster.api_get(secret_path)
    assert after is not None
    assert after["data"] == before["data"]
    webhook = release.cluster.api_get(webhook_path)
    assert webhook is not None
    assert webhook["webhooks"][0]["clientConfig"]["caBundle"] == after["data"]["ca.crt"]
    config = release.cluster.api_get(f"/api/v1/namespaces/{release.namespace}/configmaps/{FULLNAME}-config")
    assert config is not None
    assert "logLevel: debug" in config["data"]["config.yaml"]


def test_uninstall_removes_cluster_scoped_objects(release: Release) -> None:
    release.install(["all-namespaces.yaml"])
    name = f"{FULLNAME}-{release.namespace}"
    paths = [
        f"/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/{name}",
        f"/apis/rbac.authorization.k8s.io/v1/clusterroles/{name}",
        f"/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/{name}",
    ]
    assert all(release.cluster.api_get(p) is not None for p in paths)
    release.helm("uninstall", RELEASE, "--wait")
    assert [p for p in paths if release.cluster.api_get(p) is not None] == []


# --- other scopes and modes -----------------------------------------------------------------------


def test_all_namespaces_without_secrets(release: Release) -> None:
    release.install(["all-namespaces.yaml"])  # rbac.secrets.enabled=false
    assert_accepted_strictly(release)
    for resource in WORKLOADS:
        assert release.can_i("watch", resource, None)
        assert release.can_i("patch", resource, "default")
        assert not release.can_i("delete", resource, "default")
    assert release.can_i("list", "pods", None)
    assert release.can_i("create", "events", "default")
    assert not release.can_i("get", "secrets", release.namespace)
    assert not release.can_i("get", "secrets", "default")
    assert not release.can_i("list", "secrets", None)
    assert not release.can_i("list", "namespaces", None)


def test_namespace_list_grants_each_listed_namespace_only(
    release: Release, cluster: LocalCluster, namespace: str
) -> None:
    others = [f"{namespace}-a", f"{namespace}-b"]
    for name in others:
        cluster.kubectl("create", "namespace", name)
    try:
        release.install(set_values={f"config.reconciler.namespaces[{i}]": n for i, n in enumerate(others)})
        assert_accepted_strictly(release)
        for name in others:
            assert release.can_i("patch", "deployments.apps", name)
            assert release.can_i("get", "secrets", name)
            assert not release.can_i("list", "secrets", name)
        assert not release.can_i("list", "deployments.apps", namespace), "release namespace not in scope"
        assert not release.can_i("list", "deployments.apps", "default")
    finally:
        release.helm("uninstall", RELEASE, "--ignore-not-found")
        for name in others:
            cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


def test_replicas_with_leader_election_and_no_secrets(release: Release) -> None:
    # The own-ServiceAccount matchCondition is a second CEL expression the API server must compile.
    release.install(
        ["replicas-leader-election.yaml"],
        {"rbac.secrets.enabled": "false", "webhook.skipOwnRequests": "true"},
    )
    assert_accepted_strictly(release)
    ns = release.namespace
    webhook = release.cluster.api_get(
        f"/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/{FULLNAME}-{ns}"
    )
    assert webhook is not None
    assert len(webhook["webhooks"][0]["matchConditions"]) == 2
    assert release.cluster.api_get(f"/apis/policy/v1/namespaces/{ns}/poddisruptionbudgets/{FULLNAME}")
    lease = f"leases.coordination.k8s.io/{FULLNAME}"
    assert release.can_i("create", "leases.coordination.k8s.io", ns)
    for verb in ("get", "update", "patch"):
        assert release.can_i(verb, lease, ns), verb
    assert not release.can_i("delete", lease, ns)
    assert not release.can_i("get", "leases.coordination.k8s.io/someone-elses", ns)
    assert not release.can_i("list", "leases.coordination.k8s.io", ns)
    assert not release.can_i("create", "leases.coordination.k8s.io", "default")
    assert not release.can_i("get", "secrets", ns)


def test_existing_secret_mode_takes_the_ca_from_the_secret(release: Release) -> None:
    ns = release.namespace
    ca_cert, ca_key = mint_ca("test-webhook-ca")
    cert, key = mint_serving_cert(ca_cert, ca_key, [FULLNAME, f"{FULLNAME}.{ns}.svc"])
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/tls",
        "metadata": {"name": "my-webhook-tls", "namespace": ns},
        "data": {
            "tls.crt": base64.b64encode(cert).decode(),
            "tls.key": base64.b64encode(key).decode(),
            "ca.crt": base64.b64encode(ca_cert).decode(),
        },
    }
    release.cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(secret))
    release.install(
        set_values={
            "webhook.certificates.mode": "secret",
            "webhook.certificates.secret.name": "my-webhook-tls",
        }
    )
    assert_accepted_strictly(release)
    webhook = release.cluster.api_get(
        f"/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/{FULLNAME}-{ns}"
    )
    assert webhook is not None
    assert base64.b64decode(webhook["webhooks"][0]["clientConfig"]["caBundle"]) == ca_cert
    assert release.cluster.api_get(f"/api/v1/namespaces/{ns}/secrets/{FULLNAME}-webhook-tls") is None


def test_upstream_default_values_install_unchanged(release: Release) -> None:
    release.install(["upstream-default-values.yaml"])  # its disabled custom CA entry is all nulls
    assert_accepted_strictly(release)
    deployment = release.cluster.api_get(
        f"/apis/apps/v1/namespaces/{release.namespace}/deployments/{FULLNAME}"
    )
    assert deployment is not None
    volumes = [v["name"] for v in deployment["spec"]["template"]["spec"]["volumes"]]
    assert not [v for v in volumes if v.startswith("custom-ca-")]


def test_upstream_values_install_unchanged(release: Release) -> None:
    release.install(["upstream-registries.yaml", "upstream-custom-ca.yaml"])
    assert_accepted_strictly(release)
    deployment = release.cluster.api_get(
        f"/apis/apps/v1/namespaces/{release.namespace}/deployments/{FULLNAME}"
    )
    assert deployment is not None
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert volumes["registry-0"]["secret"]["secretName"] == "ghcr-io-registry-creds"
    assert volumes["custom-ca-0"]["secret"]["secretName"] == "custom-ca-01-secret"


def test_platform_comparison_grants_reading_nodes_and_nothing_more(release: Release) -> None:
    release.install()
    assert not release.can_i("list", "nodes", None)  # index comparison, the default: no node access
    release.upgrade(set_values={"config.rolloutPolicy.compare": "platform"})
    assert_accepted_strictly(release)
    for verb in ("get", "list", "watch"):
        assert release.can_i(verb, "nodes", None)
    assert not release.can_i("patch", "nodes", None)
    assert not release.can_i("list", "deployments.apps", "default"), "the scope stays the release namespace"
    name = f"{FULLNAME}-{release.namespace}-nodes"
    paths = [
        f"/apis/rbac.authorization.k8s.io/v1/clusterroles/{name}",
        f"/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/{name}",
    ]
    assert all(release.cluster.api_get(p) is not None for p in paths)
    release.helm("uninstall", RELEASE, "--wait")
    assert [p for p in paths if release.cluster.api_get(p) is not None] == []
