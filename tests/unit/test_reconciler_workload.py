"""Slim workload records parsed from raw API objects, and the watch-event handling of the cache."""

from __future__ import annotations

import pytest

from reconciler.cache import WorkloadCache, parse_items
from reconciler.workload import RecordError, SelectorRequirement, WorkloadKey, parse_workload
from tests.unit.reconciler_objects import D1, IMAGE, SIDECAR, workload_object

pytestmark = pytest.mark.unit


def test_parses_what_planning_and_patching_need() -> None:
    obj = workload_object(
        containers=[("app", IMAGE), ("side", SIDECAR)],
        init_containers=[("migrate", IMAGE)],
        annotations={"digest.kube-autorollout/app": f"{IMAGE}@{D1}", "other": "x"},
        template_annotations={"kube-autorollout/restartedAt": "2025-01-01T00:00:00Z"},
        pull_secrets=["regcred"],
    )
    w = parse_workload("Deployment", obj)
    assert (w.kind, w.namespace, w.name, w.uid, w.resource_version) == (
        "Deployment",
        "ns",
        "app",
        "uid-app",
        "42",
    )
    assert [(c.name, c.image, c.is_init) for c in w.containers] == [
        ("migrate", IMAGE, True),
        ("app", IMAGE, False),
        ("side", SIDECAR, False),
    ]
    assert w.recorded == {"app": f"{IMAGE}@{D1}"}
    assert w.pull_secrets == ("regcred",)
    assert w.restarted_at == "2025-01-01T00:00:00Z"
    assert w.kubectl_restarted_at is None
    assert (w.has_annotations, w.has_template_metadata, w.has_template_annotations) == (True, True, True)
    assert str(w.key) == "ns/Deployment/app"


def test_missing_maps_are_noted_for_the_patch() -> None:
    w = parse_workload("DaemonSet", workload_object(kind="DaemonSet", template_metadata=False))
    assert (w.has_annotations, w.has_template_metadata, w.has_template_annotations) == (False, False, False)
    assert w.recorded == {}


def test_paused_only_counts_for_deployments() -> None:
    assert parse_workload("Deployment", workload_object(paused=True)).paused
    assert not parse_workload("StatefulSet", workload_object(kind="StatefulSet", paused=True)).paused


def test_label_selector_from_match_labels_and_expressions() -> None:
    obj = workload_object()
    obj["spec"]["selector"]["matchExpressions"] = [
        {"key": "tier", "operator": "In", "values": ["web", "api"]},
        {"key": "canary", "operator": "DoesNotExist"},
        {"key": "track", "operator": "NotIn", "values": ["old"]},
        {"key": "team", "operator": "Exists"},
    ]
    w = parse_workload("Deployment", obj)
    assert w.match_expressions[0] == SelectorRequirement("tier", "In", ("web", "api"))
    assert w.label_selector() == "app=app,tier in (web,api),!canary,track notin (old),team"


@pytest.mark.parametrize(
    "obj",
    [
        {"metadata": {"namespace": "ns"}, "spec": {"template": {}}},
        {"metadata": {"name": "x", "namespace": "ns"}, "spec": {}},
    ],
)
def test_objects_without_identity_or_template_are_rejected(obj: dict[str, object]) -> None:
    with pytest.raises(RecordError):
        parse_workload("Deployment", obj)  # type: ignore[arg-type]


def test_parse_items_skips_unusable_objects() -> None:
    items = parse_items(
        "Deployment", [workload_object(name="a"), {"metadata": {}}, workload_object(name="b")]
    )
    assert sorted(items) == [("ns", "a"), ("ns", "b")]


def test_cache_applies_watch_events_and_bookmarks() -> None:
    cache = WorkloadCache(None, namespaces=["ns"])  # type: ignore[arg-type]  # events only, no API calls
    cache.apply_event("Deployment", "ADDED", workload_object(name="a", resource_version="5"))
    cache.apply_event("Deployment", "ADDED", workload_object(name="b", resource_version="6"))
    cache.apply_event(
        "StatefulSet", "ADDED", workload_object(kind="StatefulSet", name="s", resource_version="7")
    )
    cache.apply_event("Deployment", "MODIFIED", workload_object(name="a", resource_version="8", paused=True))
    cache.apply_event("Deployment", "DELETED", workload_object(name="b", resource_version="9"))
    cache.apply_event("Deployment", "BOOKMARK", {"metadata": {"resourceVersion": "12"}})
    names = sorted((w.kind, w.name, w.resource_version, w.paused) for w in cache.workloads())
    assert names == [("Deployment", "a", "8", True), ("StatefulSet", "s", "7", False)]
    assert len(cache) == 2
    found = cache.get(WorkloadKey("Deployment", "ns", "a"))
    assert found is not None
    assert found.resource_version == "8"
    assert cache.get(WorkloadKey("Deployment", "other", "a")) is None


def test_all_namespace_scope_has_one_stream_per_kind() -> None:
    cache = WorkloadCache(None, namespaces=None)  # type: ignore[arg-type]
    cache.apply_event("DaemonSet", "ADDED", workload_object(kind="DaemonSet", namespace="x", name="d"))
    cache.apply_event("DaemonSet", "ADDED", workload_object(kind="DaemonSet", namespace="y", name="d"))
    assert sorted(w.namespace for w in cache.workloads()) == ["x", "y"]


def test_desired_pods_from_replicas_or_the_daemonset_status() -> None:
    obj = workload_object()
    assert parse_workload("Deployment", obj).desired_pods == 1  # the API server's default
    obj["spec"]["replicas"] = 0
    assert parse_workload("Deployment", obj).desired_pods == 0
    assert parse_workload("StatefulSet", workload_object(kind="StatefulSet")).desired_pods == 1
    daemonset = workload_object(kind="DaemonSet")
    daemonset["spec"]["replicas"] = 3  # not a DaemonSet field: ignored
    assert parse_workload("DaemonSet", daemonset).desired_pods is None  # not reported yet
    daemonset["status"] = {"desiredNumberScheduled": 0}
    assert parse_workload("DaemonSet", daemonset).desired_pods == 0
