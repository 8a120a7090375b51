"""The admission webhook as a real process, called by the local kube-apiserver through a real
MutatingWebhookConfiguration, driven with kubectl; digests checked against what the test pushed
to a real registry."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.e2e.webhook_process import (
    WebhookProcess,
    apply,
    digests_of,
    get,
    join_scope,
    new_scope,
    register,
    registered,
    start_webhook,
    unregister,
    wait_active,
    warnings_in,
    workload,
)
from tests.harness.cluster import LocalCluster
from tests.harness.registry import LocalRegistry, Mode

pytestmark = pytest.mark.e2e

BUDGET = 1.5
WEBHOOK = "workloads.kube-autorollout.io"


def short_repo() -> str:
    # Short names keep "image@digest" under kubectl describe's 140-character annotation limit.
    return f"w{secrets.token_hex(2)}"


@pytest.fixture(scope="module")
def probe_image(registry: LocalRegistry) -> str:
    registry.push_image("e2e/webhook-probe", "latest", seed=7)
    return f"{registry.host}/e2e/webhook-probe:latest"


@pytest.fixture(scope="module")
def mutate_webhook(
    cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WebhookProcess]:
    process = start_webhook(tmp_path_factory.mktemp("webhook-mutate"), cluster, budget=BUDGET)
    try:
        yield process
    finally:
        code = process.stop()
        assert code == 0, process.log_text()[-3000:]


@pytest.fixture(scope="module")
def mutate_scope(cluster: LocalCluster, mutate_webhook: WebhookProcess) -> Iterator[str]:
    scope = new_scope()
    name = f"kar-e2e-{scope}"
    register(cluster, name, mutate_webhook, scope)
    try:
        yield scope
    finally:
        unregister(cluster, name)


@pytest.fixture
def ns(cluster: LocalCluster, namespace: str, mutate_scope: str, probe_image: str) -> str:
    """The test's namespace, sent to the shared mutate-mode webhook."""
    join_scope(cluster, namespace, mutate_scope)
    wait_active(cluster, namespace, probe_image)
    return namespace


def manifest_requests(registry: LocalRegistry, repo: str) -> int:
    return registry.request_count(path_substring=f"/v2/{repo}/manifests/")


def test_labeled_workloads_record_every_container_digest(
    cluster: LocalCluster, registry: LocalRegistry, ns: str
) -> None:
    repo = short_repo()
    app_digest = registry.push_image(
        f"{repo}/app", "latest", platforms=["linux/amd64", "linux/arm64"], seed=1
    )
    side_digest = registry.push_image(f"{repo}/side", "main", seed=2)
    setup_digest = registry.push_image(f"{repo}/setup", "v1", seed=3)
    app, side, setup = (f"{registry.host}/{repo}/{name}" for name in ("app:latest", "side:main", "setup:v1"))
    expected = {
        "app": f"{app}@{app_digest}",
        "side": f"{side}@{side_digest}",
        "setup": f"{setup}@{setup_digest}",
    }

    for kind in ("Deployment", "StatefulSet", "DaemonSet"):
        manifest = workload(kind, "web", ns, [("app", app), ("side", side)], init=[("setup", setup)])
        result = apply(cluster, manifest)
        assert warnings_in(result.stderr) == []
        assert digests_of(get(cluster, kind, ns, "web")) == expected, kind

    # Three workloads, the same three images: the shared cache made it one lookup per image.
    for name in ("app", "side", "setup"):
        assert manifest_requests(registry, f"{repo}/{name}") == 1, name
    described = cluster.kubectl("describe", "deployment", "web", "-n", ns).stdout
    for container, value in expected.items():
        assert f"digest.kube-autorollout/{container}: {value}" in described


def test_image_pull_policy_is_mutated_with_a_warning_per_container(
    cluster: LocalCluster, registry: LocalRegistry, ns: str
) -> None:
    repo = short_repo()
    registry.push_image(f"{repo}/app", "1.0", seed=4)
    registry.push_image(f"{repo}/setup", "main", seed=5)
    app, setup = f"{registry.host}/{repo}/app:1.0", f"{registry.host}/{repo}/setup:main"
    manifest = workload(
        "Deployment", "web", ns, [("app", app, "IfNotPresent")], init=[("setup", setup, "Never")]
    )

    result = apply(cluster, manifest)

    assert warnings_in(result.stderr) == [
        f'kube-autorollout: init container "setup" ({setup}): imagePullPolicy Never set to Always',
        f'kube-autorollout: container "app" ({app}): imagePullPolicy IfNotPresent set to Always',
    ]
    pod_spec = get(cluster, "Deployment", ns, "web")["spec"]["template"]["spec"]
    assert [c["imagePullPolicy"] for c in pod_spec["initContainers"] + pod_spec["containers"]] == [
        "Always"
    ] * 2


@pytest.mark.parametrize("policy", ["warn", "deny"])
def test_warn_and_deny_modes(
    policy: str,
    cluster: LocalCluster,
    registry: LocalRegistry,
    namespace: str,
    probe_image: str,
    tmp_path: Path,
) -> None:
    repo = short_repo()
    digest = registry.push_image(f"{repo}/app", "1.0", seed=6)
    app, setup = f"{registry.host}/{repo}/app:1.0", f"{registry.host}/{repo}/app:1.0"
    manifest = workload(
        "Deployment", "web", namespace, [("app", app, "IfNotPresent")], init=[("setup", setup, "Never")]
    )
    process = start_webhook(tmp_path / "webhook", cluster, policy=policy)
    try:
        with registered(cluster, process, [namespace], probe_image):
            result = apply(cluster, manifest, check=False)
    finally:
        assert process.stop() == 0

    if policy == "warn":
        assert result.returncode == 0, result.stderr
        assert warnings_in(result.stderr) == [
            f'kube-autorollout: init container "setup" ({setup}): imagePullPolicy Never, not Always',
            f'kube-autorollout: container "app" ({app}): imagePullPolicy IfNotPresent, not Always',
        ]
        deployment = get(cluster, "Deployment", namespace, "web")
        assert deployment["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] == "IfNotPresent"
        assert digests_of(deployment) == {"app": f"{app}@{digest}", "setup": f"{setup}@{digest}"}
    else:
        assert result.returncode != 0
        assert (
            f'admission webhook "{WEBHOOK}" denied the request: kube-autorollout requires imagePullPolicy: '
            'Always on opted-in workloads: init container "setup" (Never), container "app" (IfNotPresent)'
        ) in result.stderr
        missing = cluster.kubectl("get", "deployment", "web", "-n", namespace, check=False)
        assert "NotFound" in missing.stderr


def test_unlabeled_workloads_are_untouched(cluster: LocalCluster, registry: LocalRegistry, ns: str) -> None:
    repo = short_repo()
    registry.push_image(f"{repo}/app", "latest", seed=8)
    image = f"{registry.host}/{repo}/app:latest"
    result = apply(
        cluster, workload("Deployment", "plain", ns, [("app", image, "IfNotPresent")], labeled=False)
    )
    assert warnings_in(result.stderr) == []
    deployment = get(cluster, "Deployment", ns, "plain")
    assert digests_of(deployment) == {}
    assert deployment["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] == "IfNotPresent"
    assert manifest_requests(registry, f"{repo}/app") == 0


def reviews_seen(process: WebhookProcess, namespace: str, name: str, operation: str) -> int:
    """Admission requests for one workload that reached the webhook (its debug log has one line each)."""
    seen = 0
    for line in process.log_text().splitlines():
        if not line.startswith("{"):
            continue
        entry = json.loads(line)
        if entry.get("msg", "").startswith("admission") and (
            entry.get("namespace"),
            entry.get("name"),
            entry.get("operation"),
        ) == (namespace, name, operation):
            seen += 1
    return seen


def test_scale_keeps_digests_and_a_new_image_records_again(
    cluster: LocalCluster, registry: LocalRegistry, ns: str, mutate_webhook: WebhookProcess
) -> None:
    repo = short_repo()
    first = registry.push_image(f"{repo}/app", "latest", seed=9)
    side_digest = registry.push_image(f"{repo}/side", "latest", seed=10)
    app, side = f"{registry.host}/{repo}/app:latest", f"{registry.host}/{repo}/side:latest"
    apply(cluster, workload("Deployment", "web", ns, [("app", app), ("side", side)]))
    assert digests_of(get(cluster, "Deployment", ns, "web")) == {
        "app": f"{app}@{first}",
        "side": f"{side}@{side_digest}",
    }
    moved = registry.push_image(f"{repo}/app", "latest", seed=11)
    assert moved != first
    lookups = manifest_requests(registry, f"{repo}/app")
    reviews = reviews_seen(mutate_webhook, ns, "web", "UPDATE")

    cluster.kubectl("scale", "deployment", "web", "-n", ns, "--replicas=3")
    cluster.kubectl("label", "deployment", "web", "-n", ns, "tier=front")
    cluster.kubectl("annotate", "deployment", "web", "-n", ns, "owner=team-a")

    # The running pods did not change, so neither did the recorded digests, and nothing was looked up:
    # the matchConditions expression kept these updates from even reaching the webhook.
    assert digests_of(get(cluster, "Deployment", ns, "web"))["app"] == f"{app}@{first}"
    assert manifest_requests(registry, f"{repo}/app") == lookups
    assert reviews_seen(mutate_webhook, ns, "web", "UPDATE") == reviews

    pinned_next = registry.push_image(f"{repo}/app", "next", seed=12)
    next_image = f"{registry.host}/{repo}/app:next"
    cluster.kubectl("set", "image", "deployment/web", "-n", ns, f"app={next_image}")
    assert reviews_seen(mutate_webhook, ns, "web", "UPDATE") == reviews + 1
    assert digests_of(get(cluster, "Deployment", ns, "web")) == {
        "app": f"{next_image}@{pinned_next}",
        "side": f"{side}@{side_digest}",
    }

    apply(cluster, workload("Deployment", "web", ns, [("app", next_image)]))
    assert digests_of(get(cluster, "Deployment", ns, "web")) == {"app": f"{next_image}@{pinned_next}"}


def test_reconciler_rollout_patch_keeps_its_digests_without_lookups(
    cluster: LocalCluster, registry: LocalRegistry, ns: str
) -> None:
    repo = short_repo()
    first = registry.push_image(f"{repo}/app", "latest", seed=13)
    image = f"{registry.host}/{repo}/app:latest"
    apply(cluster, workload("Deployment", "web", ns, [("app", image)]))
    moved = registry.push_image(f"{repo}/app", "latest", seed=14)
    lookups = manifest_requests(registry, f"{repo}/app")
    patch = [
        {
            "op": "test",
            "path": "/metadata/annotations/digest.kube-autorollout~1app",
            "value": f"{image}@{first}",
        },
        {
            "op": "replace",
            "path": "/metadata/annotations/digest.kube-autorollout~1app",
            "value": f"{image}@{moved}",
        },
        {
            "op": "add",
            "path": "/spec/template/metadata/annotations",
            "value": {"kube-autorollout/restartedAt": "2025-01-01T00:00:00.000000Z"},
        },
    ]

    cluster.kubectl("patch", "deployment", "web", "-n", ns, "--type=json", "-p", json.dumps(patch))

    assert digests_of(get(cluster, "Deployment", ns, "web")) == {"app": f"{image}@{moved}"}
    assert manifest_requests(registry, f"{repo}/app") == lookups


def test_server_dry_run_gets_the_same_answer_and_persists_nothing(
    cluster: LocalCluster, registry: LocalRegistry, ns: str
) -> None:
    repo = short_repo()
    digest = registry.push_image(f"{repo}/app", "latest", seed=15)
    image = f"{registry.host}/{repo}/app:latest"
    manifest = workload("Deployment", "web", ns, [("app", image, "IfNotPresent")])

    result = apply(cluster, manifest, "--dry-run=server", "-o", "json")

    assert digests_of(json.loads(result.stdout)) == {"app": f"{image}@{digest}"}
    assert len(warnings_in(result.stderr)) == 1
    assert "NotFound" in cluster.kubectl("get", "deployment", "web", "-n", ns, check=False).stderr


def test_stopped_registry_admits_within_the_budget_with_a_warning(
    cluster: LocalCluster, registry_factory: Callable[[Mode], LocalRegistry], ns: str
) -> None:
    down = registry_factory("plain")
    down.push_image("gone/app", "latest", seed=16)
    image = f"{down.host}/gone/app:latest"
    down.stop()

    started = time.monotonic()
    result = apply(cluster, workload("Deployment", "web", ns, [("app", image)]))
    elapsed = time.monotonic() - started

    assert elapsed < BUDGET + 3.0
    (warning,) = warnings_in(result.stderr)
    assert warning.startswith(f'kube-autorollout: container "app" ({image}): digest not recorded (')
    assert warning.endswith(("(registry unreachable)", f"(timed out, {BUDGET:g}s budget)"))
    assert digests_of(get(cluster, "Deployment", ns, "web")) == {}


def test_pull_secrets_are_read_through_the_api(
    cluster: LocalCluster, registry_basic: LocalRegistry, ns: str
) -> None:
    repo = short_repo()
    digest = registry_basic.push_image(f"{repo}/app", "latest", seed=17)
    image = f"{registry_basic.host}/{repo}/app:latest"
    assert registry_basic.username is not None
    assert registry_basic.password is not None
    cluster.kubectl(
        "create",
        "secret",
        "docker-registry",
        "regcred",
        "-n",
        ns,
        f"--docker-server={registry_basic.host}",
        f"--docker-username={registry_basic.username}",
        f"--docker-password={registry_basic.password}",
    )

    with_secret = apply(
        cluster, workload("Deployment", "private", ns, [("app", image)], pull_secrets=["regcred"])
    )
    without = apply(cluster, workload("Deployment", "anonymous", ns, [("app", image)]))

    assert warnings_in(with_secret.stderr) == []
    assert digests_of(get(cluster, "Deployment", ns, "private")) == {"app": f"{image}@{digest}"}
    assert warnings_in(without.stderr) == [
        f'kube-autorollout: container "app" ({image}): digest not recorded (unauthorized)'
    ]
    assert digests_of(get(cluster, "Deployment", ns, "anonymous")) == {}


def test_stopped_webhook_does_not_block_applies(
    cluster: LocalCluster, registry: LocalRegistry, namespace: str, probe_image: str, tmp_path: Path
) -> None:
    repo = short_repo()
    registry.push_image(f"{repo}/app", "latest", seed=18)
    image = f"{registry.host}/{repo}/app:latest"
    process = start_webhook(tmp_path / "webhook", cluster)
    with registered(cluster, process, [namespace], probe_image):
        assert process.stop() == 0
        started = time.monotonic()
        result = apply(cluster, workload("Deployment", "web", namespace, [("app", image, "IfNotPresent")]))
        elapsed = time.monotonic() - started

    assert result.returncode == 0
    assert elapsed < 5.0
    deployment = get(cluster, "Deployment", namespace, "web")
    assert digests_of(deployment) == {}
    assert deployment["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] == "IfNotPresent"
