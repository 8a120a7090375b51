"""`kube-autorollout reconcile --once [--dry-run]` and `status` as real processes against the local
control plane (with kube-controller-manager) and a real registry."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.real_node_helpers import ROLLOUT_TIMEOUT
from tests.e2e.reconciler_helpers import (
    DIGEST_PREFIX,
    KUBECTL_RESTARTED_AT,
    RESTARTED_AT,
    apply,
    events,
    list_items,
    run_cli,
    running_image_ids,
    wait_for,
    wait_replicasets,
    workload,
    write_config,
)
from tests.e2e.webhook_process import get
from tests.harness.cluster import LocalCluster
from tests.harness.kubelet import image_id
from tests.harness.node import LocalNode
from tests.harness.podimages import push_runnable
from tests.harness.registry import LocalRegistry

pytestmark = pytest.mark.e2e


def test_moved_tag_rolls_a_deployment_out_exactly_once(
    cluster: LocalCluster, registry: LocalRegistry, namespace: str, unique_repo: str, tmp_path: Path
) -> None:
    image = f"{registry.host}/{unique_repo}:latest"
    v1 = registry.push_image(unique_repo, "latest", seed=1)
    apply(cluster, workload("Deployment", "web", namespace, [("app", image)], recorded={"app": v1}))
    wait_replicasets(cluster, namespace, "web", 1)
    v2 = registry.push_image(unique_repo, "latest", seed=2)
    assert v2 != v1
    config = write_config(tmp_path / "config.yaml", [namespace])

    first = run_cli(cluster, config, "reconcile", "--once")

    assert first.returncode == 0, first.stderr
    assert (
        f"{'roll out':<15} {namespace}/deployment/web: container app ({image}): {v1} -> {v2}" in first.stdout
    )
    wait_replicasets(cluster, namespace, "web", 2)  # kube-controller-manager rolled the template
    deployment = get(cluster, "Deployment", namespace, "web")
    assert deployment["metadata"]["annotations"][f"{DIGEST_PREFIX}app"] == f"{image}@{v2}"
    template_annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert RESTARTED_AT in template_annotations
    assert template_annotations[RESTARTED_AT].endswith("Z")
    assert KUBECTL_RESTARTED_AT not in template_annotations
    [event] = events(cluster, namespace, "RolloutTriggered")
    assert event["type"] == "Normal"
    assert event["involvedObject"]["kind"] == "Deployment"
    assert event["involvedObject"]["name"] == "web"
    assert event["involvedObject"]["uid"] == deployment["metadata"]["uid"]
    assert event["reportingComponent"] == "kube-autorollout"
    assert "container app" in event["message"]
    assert v1 in event["message"]
    assert v2 in event["message"]

    generation = deployment["metadata"]["generation"]
    second = run_cli(cluster, config, "reconcile", "--once")

    assert second.returncode == 0, second.stderr
    assert "rolled out 0" in second.stdout
    assert get(cluster, "Deployment", namespace, "web")["metadata"]["generation"] == generation
    assert len(events(cluster, namespace, "RolloutTriggered")) == 1
    wait_replicasets(cluster, namespace, "web", 2)


@pytest.mark.parametrize("kind", ["StatefulSet", "DaemonSet"])
def test_statefulsets_and_daemonsets_roll_out_too(
    kind: str,
    cluster: LocalCluster,
    registry: LocalRegistry,
    namespace: str,
    unique_repo: str,
    tmp_path: Path,
) -> None:
    image = f"{registry.host}/{unique_repo}:main"
    v1 = registry.push_image(unique_repo, "main", seed=11)
    apply(cluster, workload(kind, "svc", namespace, [("app", image)], recorded={"app": v1}))
    revisions = wait_for(
        f"a ControllerRevision of the {kind}",
        lambda: len(list_items(cluster, "controllerrevisions", namespace, "app=svc")),
    )
    assert revisions == 1
    v2 = registry.push_image(unique_repo, "main", seed=12)
    config = write_config(tmp_path / "config.yaml", [namespace])

    result = run_cli(cluster, config, "reconcile", "--once")

    assert result.returncode == 0, result.stderr
    obj = get(cluster, kind, namespace, "svc")
    assert obj["metadata"]["annotations"][f"{DIGEST_PREFIX}app"] == f"{image}@{v2}"
    assert RESTARTED_AT in obj["spec"]["template"]["metadata"]["annotations"]
    # The controller recorded the new pod template as a new revision.
    wait_for(
        f"a second ControllerRevision of the {kind}",
        lambda: len(list_items(cluster, "controllerrevisions", namespace, "app=svc")) == 2,
    )
    [event] = events(cluster, namespace, "RolloutTriggered")
    assert event["involvedObject"]["kind"] == kind
    assert run_cli(cluster, config, "reconcile", "--once").stdout.count("roll out") == 0


def test_kubectl_annotation_flag_is_honoured(
    cluster: LocalCluster, registry: LocalRegistry, namespace: str, unique_repo: str, tmp_path: Path
) -> None:
    image = f"{registry.host}/{unique_repo}:latest"
    v1 = registry.push_image(unique_repo, "latest", seed=21)
    apply(cluster, workload("Deployment", "gitops", namespace, [("app", image)], recorded={"app": v1}))
    registry.push_image(unique_repo, "latest", seed=22)
    config = write_config(
        tmp_path / "config.yaml", [namespace], featureFlags={"enableKubectlAnnotation": True}
    )

    result = run_cli(cluster, config, "reconcile", "--once")

    assert result.returncode == 0, result.stderr
    template = get(cluster, "Deployment", namespace, "gitops")["spec"]["template"]["metadata"]["annotations"]
    assert KUBECTL_RESTARTED_AT in template
    assert RESTARTED_AT not in template
    wait_replicasets(cluster, namespace, "gitops", 2)


def test_dry_run_prints_the_plan_and_changes_nothing(
    cluster: LocalCluster, registry: LocalRegistry, namespace: str, unique_repo: str, tmp_path: Path
) -> None:
    image = f"{registry.host}/{unique_repo}:latest"
    v1 = registry.push_image(unique_repo, "latest", seed=31)
    apply(cluster, workload("Deployment", "moved", namespace, [("app", image)], recorded={"app": v1}))
    # Scaled to zero: nothing runs, so it is adopted at the registry's digest without asking pods.
    apply(cluster, workload("Deployment", "fresh", namespace, [("app", image)], replicas=0))
    v2 = registry.push_image(unique_repo, "latest", seed=32)
    before = {
        n: get(cluster, "Deployment", namespace, n)["metadata"]["resourceVersion"] for n in ("moved", "fresh")
    }
    config = write_config(tmp_path / "config.yaml", [namespace])

    result = run_cli(cluster, config, "reconcile", "--once", "--dry-run")

    assert result.returncode == 0, result.stderr
    assert (
        f"would roll out  {namespace}/deployment/moved: container app ({image}): {v1} -> {v2}"
        in result.stdout
    )
    assert f"would record    {namespace}/deployment/fresh: container app: {image}@{v2}" in result.stdout
    assert "nothing was changed" in result.stdout
    after = {
        n: get(cluster, "Deployment", namespace, n)["metadata"]["resourceVersion"] for n in ("moved", "fresh")
    }
    assert after == before
    assert events(cluster, namespace, "RolloutTriggered") == []


def test_dry_run_needs_once(cluster: LocalCluster, tmp_path: Path) -> None:
    result = run_cli(cluster, write_config(tmp_path / "c.yaml", ["default"]), "reconcile", "--dry-run")
    assert result.returncode == 2
    assert "--dry-run needs --once" in result.stderr


def test_adoption_records_without_rolling_out(
    cluster: LocalCluster,
    registry: LocalRegistry,
    node_namespace: str,
    node: LocalNode,
    unique_repo: str,
    tmp_path: Path,
) -> None:
    namespace = node_namespace
    node.trust_registry(registry)
    image = f"{registry.host}/{unique_repo}:latest"
    digest = push_runnable(registry, unique_repo, "latest", seed=41)
    # Created before kube-autorollout was installed (or with the webhook down): nothing recorded.
    apply(cluster, workload("Deployment", "legacy", namespace, [("app", image)]))
    wait_replicasets(cluster, namespace, "legacy", 1)
    running = {image_id(image, digest)}
    wait_for(
        "a Running pod", lambda: running_image_ids(cluster, namespace, "legacy") == running, ROLLOUT_TIMEOUT
    )
    template = get(cluster, "Deployment", namespace, "legacy")["spec"]["template"]
    config = write_config(tmp_path / "config.yaml", [namespace])

    result = run_cli(cluster, config, "reconcile", "--once")

    assert result.returncode == 0, result.stderr
    assert f"{'record':<15} {namespace}/deployment/legacy: container app: {image}@{digest}" in result.stdout
    deployment = get(cluster, "Deployment", namespace, "legacy")
    assert deployment["metadata"]["annotations"][f"{DIGEST_PREFIX}app"] == f"{image}@{digest}"
    assert deployment["spec"]["template"] == template  # the pod template was not touched
    assert events(cluster, namespace, "RolloutTriggered") == []
    again = run_cli(cluster, config, "reconcile", "--once")
    assert again.stdout.splitlines()[0].startswith(
        "cycle: 1 workloads, 1 unique images; rolled out 0, recorded 0"
    )
    wait_replicasets(cluster, namespace, "legacy", 1)


def test_registry_down_means_no_rollout_and_a_warning_event(
    cluster: LocalCluster,
    registry_factory,  # type: ignore[no-untyped-def]
    namespace: str,
    unique_repo: str,
    tmp_path: Path,
) -> None:
    own: LocalRegistry = registry_factory("plain")
    image = f"{own.host}/{unique_repo}:latest"
    v1 = own.push_image(unique_repo, "latest", seed=51)
    apply(cluster, workload("Deployment", "offline", namespace, [("app", image)], recorded={"app": v1}))
    wait_replicasets(cluster, namespace, "offline", 1)
    own.stop()
    config = write_config(tmp_path / "config.yaml", [namespace])
    before = get(cluster, "Deployment", namespace, "offline")["metadata"]["resourceVersion"]

    result = run_cli(cluster, config, "reconcile", "--once")

    assert result.returncode == 1
    assert f"{'error':<15} {namespace}/deployment/offline: container app: UnreachableError" in result.stdout
    assert "registry errors 1" in result.stdout
    assert get(cluster, "Deployment", namespace, "offline")["metadata"]["resourceVersion"] == before
    assert events(cluster, namespace, "RolloutTriggered") == []
    [warning] = events(cluster, namespace, "RegistryLookupFailed")
    assert warning["type"] == "Warning"
    assert image in warning["message"]
    assert warning["involvedObject"]["name"] == "offline"
    wait_replicasets(cluster, namespace, "offline", 1)


def test_status_table(
    cluster: LocalCluster, registry: LocalRegistry, namespace: str, unique_repo: str, tmp_path: Path
) -> None:
    image = f"{registry.host}/{unique_repo}:latest"
    v1 = registry.push_image(unique_repo, "latest", seed=61)
    apply(cluster, workload("Deployment", "api", namespace, [("app", image)], recorded={"app": v1}))
    apply(cluster, workload("StatefulSet", "db", namespace, [("db", image)], replicas=0))
    apply(
        cluster, workload("DaemonSet", "agent", namespace, [("agent", f"{registry.host}/{unique_repo}:nope")])
    )
    apply(cluster, workload("Deployment", "unlabeled", namespace, [("app", image)], labeled=False))
    v2 = registry.push_image(unique_repo, "latest", seed=62)
    config = write_config(tmp_path / "config.yaml", [namespace])

    result = run_cli(cluster, config, "status")

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == [
        "NAMESPACE",
        "KIND/NAME",
        "CONTAINER",
        "IMAGE",
        "RECORDED",
        "REGISTRY",
        "STATE",
    ]
    rows = {line.split()[1]: line for line in lines[1:]}
    assert set(rows) == {"daemonset/agent", "deployment/api", "statefulset/db"}
    short = lambda d: d.split(":")[1][:12]  # noqa: E731
    assert rows["deployment/api"].split() == [
        namespace,
        "deployment/api",
        "app",
        image,
        short(v1),
        short(v2),
        "will-roll",
    ]
    assert rows["statefulset/db"].split() == [
        namespace,
        "statefulset/db",
        "db",
        image,
        "<none>",
        short(v2),
        "unrecorded",
    ]
    assert rows["daemonset/agent"].split()[4:7] == ["<none>", "<none>", "error:"]
    assert "NotFound" in rows["daemonset/agent"]

    wide = run_cli(cluster, config, "status", "-o", "wide")
    assert v1 in wide.stdout
    assert v2 in wide.stdout

    assert run_cli(cluster, config, "reconcile", "--once").returncode == 1  # the missing tag is an error
    after = run_cli(cluster, config, "status").stdout
    # The table, then (after a blank line) one line per rollout the health watch follows.
    table, _, health = after.partition("\n\n")
    rows = {line.split()[1]: line for line in table.splitlines()[1:]}
    assert all(line.startswith("watching") for line in health.splitlines()), after
    assert rows["deployment/api"].split()[-1] == "up-to-date"
    assert rows["statefulset/db"].split()[-1] == "up-to-date"


def test_default_scope_is_the_kubeconfig_namespace(
    cluster: LocalCluster, registry: LocalRegistry, namespace: str, unique_repo: str, tmp_path: Path
) -> None:
    image = f"{registry.host}/{unique_repo}:latest"
    registry.push_image(unique_repo, "latest", seed=71)
    apply(cluster, workload("Deployment", "mine", namespace, [("app", image)]))
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(cluster.kubeconfig.read_text())
    cluster.kubectl(
        "config", "set-context", "--current", f"--namespace={namespace}", f"--kubeconfig={kubeconfig}"
    )
    config = write_config(tmp_path / "config.yaml", None)

    result = run_cli(cluster, config, "status", kubeconfig=kubeconfig)

    assert result.returncode == 0, result.stderr
    [row] = result.stdout.splitlines()[1:]
    assert row.split()[:2] == [namespace, "deployment/mine"]
