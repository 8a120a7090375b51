"""What a workload's own Ready pods run (adoption), from raw pod objects as a kubelet reports them."""

from __future__ import annotations

from typing import Any

import pytest

from reconciler.pods import (
    PodReport,
    controlled_replicasets,
    digest_of_image_id,
    is_owned,
    pod_report,
)
from reconciler.workload import Workload, parse_workload
from tests.unit.reconciler_objects import D1, D2, D3, workload_object

pytestmark = pytest.mark.unit

DEPLOYMENT = parse_workload("Deployment", workload_object(name="web"))  # uid "uid-web"
RS_UID = "uid-rs-web"
OWNED_RS = {RS_UID: "web-5d8f7c"}


def owner(kind: str, name: str, uid: str, *, controller: bool = True) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": kind, "name": name, "uid": uid, "controller": controller}


def pod(
    name: str,
    created: str,
    *,
    ready: bool = True,
    phase: str = "Running",
    deleting: bool = False,
    image_ids: dict[str, str] | None = None,
    owners: list[dict[str, Any]] | None = None,
    template_hash: str | None = "5d8f7c",
) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": name,
        "creationTimestamp": created,
        "labels": {"app": "web", **({"pod-template-hash": template_hash} if template_hash else {})},
        "ownerReferences": owners if owners is not None else [owner("ReplicaSet", "web-5d8f7c", RS_UID)],
    }
    if deleting:
        meta["deletionTimestamp"] = "2025-01-01T00:00:00Z"
    statuses = [{"name": n, "imageID": i} for n, i in (image_ids or {"app": f"host/app@{D1}"}).items()]
    return {
        "metadata": meta,
        "status": {
            "phase": phase,
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
            "containerStatuses": statuses,
            "initContainerStatuses": [{"name": "init", "imageID": f"host/init@{D3}"}],
        },
    }


def replicaset(name: str, uid: str, owners: list[dict[str, Any]]) -> dict[str, Any]:
    return {"metadata": {"name": name, "uid": uid, "ownerReferences": owners}}


@pytest.mark.parametrize(
    ("image_id", "expected"),
    [
        (f"docker-pullable://nginx@{D1}", D1),
        (f"registry.local:5000/team/app@{D1}", D1),
        (f"docker.io/library/nginx@{D2}", D2),
        (D1, None),  # Docker's local image ID, not a registry digest
        (f"docker://{D1}", None),
        ("", None),
    ],
)
def test_digest_of_image_id(image_id: str, expected: str | None) -> None:
    assert digest_of_image_id(image_id) == expected


def test_newest_ready_pod_speaks() -> None:
    pods = [
        pod("old", "2025-01-01T00:00:00Z", image_ids={"app": f"h/app@{D1}"}),
        pod("new-not-ready", "2025-01-03T00:00:00Z", ready=False, image_ids={"app": f"h/app@{D3}"}),
        pod("new-pending", "2025-01-03T00:00:00Z", phase="Pending", image_ids={"app": f"h/app@{D3}"}),
        pod("terminating", "2025-01-04T00:00:00Z", deleting=True, image_ids={"app": f"h/app@{D3}"}),
        pod("newest-ready", "2025-01-02T00:00:00Z", image_ids={"app": f"h/app@{D2}"}),
    ]
    report = pod_report(DEPLOYMENT, pods, OWNED_RS)
    assert report == PodReport(pods=5, ready=2, images={"app": D2, "init": D3})


def test_pods_without_a_ready_one_report_nothing_that_runs() -> None:
    unready = pod("p", "2025-01-01T00:00:00Z", ready=False)
    assert pod_report(DEPLOYMENT, [unready], OWNED_RS) == PodReport(pods=1, ready=0)
    assert pod_report(DEPLOYMENT, [], OWNED_RS) == PodReport(0, 0)


def test_an_empty_image_id_is_not_a_report_and_an_older_ready_pod_fills_in() -> None:
    pods = [
        pod("new", "2025-01-02T00:00:00Z", image_ids={"app": "", "side": f"docker://{D2}"}),
        pod("old", "2025-01-01T00:00:00Z", image_ids={"app": f"h/app@{D1}"}),
    ]
    # `side` reports an imageID that is no registry digest: reported (None), not comparable.
    assert pod_report(DEPLOYMENT, pods, OWNED_RS).images == {"app": D1, "side": None, "init": D3}
    assert pod_report(DEPLOYMENT, pods[:1], OWNED_RS).images == {"side": None, "init": D3}


def test_strangers_pods_under_an_overlapping_selector_do_not_count() -> None:
    stranger_rs = owner("ReplicaSet", "other-5d8f7c", "uid-rs-other")
    pods = [
        pod("mine", "2025-01-01T00:00:00Z", image_ids={"app": f"h/app@{D1}"}),
        # Newer, Ready and running another digest, but controlled by another Deployment's ReplicaSet.
        pod("theirs", "2025-01-02T00:00:00Z", image_ids={"app": f"h/app@{D2}"}, owners=[stranger_rs]),
        # Named like ours but a different ReplicaSet (uid not controlled by us).
        pod(
            "impostor",
            "2025-01-03T00:00:00Z",
            image_ids={"app": f"h/app@{D2}"},
            owners=[owner("ReplicaSet", "web-5d8f7c", "uid-rs-elsewhere")],
        ),
        pod("bare", "2025-01-04T00:00:00Z", image_ids={"app": f"h/app@{D2}"}, owners=[]),
        pod(
            "not-controller",
            "2025-01-05T00:00:00Z",
            image_ids={"app": f"h/app@{D2}"},
            owners=[owner("ReplicaSet", "web-5d8f7c", RS_UID, controller=False)],
        ),
        pod("no-hash", "2025-01-06T00:00:00Z", image_ids={"app": f"h/app@{D2}"}, template_hash=None),
        pod("other-hash", "2025-01-07T00:00:00Z", image_ids={"app": f"h/app@{D2}"}, template_hash="aaaa"),
    ]
    report = pod_report(DEPLOYMENT, pods, OWNED_RS)
    assert (report.pods, report.images["app"]) == (1, D1)


def test_replicasets_count_only_when_the_deployment_controls_them() -> None:
    found = controlled_replicasets(
        DEPLOYMENT,
        [
            replicaset("web-5d8f7c", RS_UID, [owner("Deployment", "web", "uid-web")]),
            replicaset("web-old", "uid-rs-old", [owner("Deployment", "web", "uid-web")]),
            replicaset("web-x", "uid-rs-x", [owner("Deployment", "web", "uid-recreated")]),  # same name
            replicaset("web-y", "uid-rs-y", [owner("Deployment", "web", "uid-web", controller=False)]),
            replicaset("web-z", "uid-rs-z", []),
        ],
    )
    assert found == {RS_UID: "web-5d8f7c", "uid-rs-old": "web-old"}


@pytest.mark.parametrize("kind", ["StatefulSet", "DaemonSet"])
def test_statefulset_and_daemonset_pods_are_owned_directly_by_uid(kind: str) -> None:
    w: Workload = parse_workload(kind, workload_object(kind=kind, name="web"))
    mine = pod("mine", "2025-01-01T00:00:00Z", owners=[owner(kind, "web", "uid-web")], template_hash=None)
    recreated = pod("old", "2025-01-01T00:00:00Z", owners=[owner(kind, "web", "uid-gone")])
    via_rs = pod("rs", "2025-01-01T00:00:00Z")
    assert is_owned(w, mine, {})
    assert not is_owned(w, recreated, {})
    assert not is_owned(w, via_rs, OWNED_RS)
    other_kind = "DaemonSet" if kind == "StatefulSet" else "StatefulSet"
    assert not is_owned(w, pod("k", "2025-01-01T00:00:00Z", owners=[owner(other_kind, "web", "uid-web")]), {})
