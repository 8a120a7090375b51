"""The guarded JSON patch: applied here with `jsonpatch` to the raw object, as the API server would."""

from __future__ import annotations

import copy
from typing import Any

import jsonpatch
import pytest

from autorollout.patches import escape_pointer
from reconciler.events import rollout_message
from reconciler.patch import adoption_patch, rollout_patch
from reconciler.plan import DigestChange, Rollout
from reconciler.workload import parse_workload
from tests.unit.reconciler_objects import D1, D2, IMAGE, SIDECAR, workload_object

pytestmark = pytest.mark.unit

STAMP = "2025-03-01T12:00:00.000000Z"


def apply(obj: dict[str, Any], ops: list[dict[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = jsonpatch.apply_patch(copy.deepcopy(obj), ops)
    return result


def test_escape_pointer() -> None:
    assert escape_pointer("digest.kube-autorollout/app") == "digest.kube-autorollout~1app"
    assert escape_pointer("a~b/c") == "a~0b~1c"


def test_rollout_patch_sets_restarted_at_and_records_in_one_guarded_patch() -> None:
    obj = workload_object(
        containers=[("app", IMAGE), ("side", SIDECAR)],
        annotations={"digest.kube-autorollout/app": f"{IMAGE}@{D1}", "keep": "me"},
        template_annotations={"prometheus.io/scrape": "true"},
    )
    w = parse_workload("Deployment", obj)
    ops = rollout_patch(
        w, {"app": f"{IMAGE}@{D2}"}, restarted_key="kube-autorollout/restartedAt", restarted_at=STAMP
    )
    assert ops[0] == {"op": "test", "path": "/metadata/resourceVersion", "value": "42"}
    patched = apply(obj, ops)
    assert patched["metadata"]["annotations"] == {
        "digest.kube-autorollout/app": f"{IMAGE}@{D2}",
        "keep": "me",
    }
    assert patched["spec"]["template"]["metadata"]["annotations"] == {
        "prometheus.io/scrape": "true",
        "kube-autorollout/restartedAt": STAMP,
    }
    # Nothing else changed.
    patched["metadata"]["annotations"] = obj["metadata"]["annotations"]
    patched["spec"]["template"]["metadata"]["annotations"] = obj["spec"]["template"]["metadata"][
        "annotations"
    ]
    assert patched == obj


def test_rollout_patch_creates_missing_annotation_maps() -> None:
    obj = workload_object()  # no metadata.annotations, no template annotations
    w = parse_workload("Deployment", obj)
    ops = rollout_patch(
        w, {"app": f"{IMAGE}@{D2}"}, restarted_key="kubectl.kubernetes.io/restartedAt", restarted_at=STAMP
    )
    patched = apply(obj, ops)
    assert patched["metadata"]["annotations"] == {"digest.kube-autorollout/app": f"{IMAGE}@{D2}"}
    assert patched["spec"]["template"]["metadata"]["annotations"] == {
        "kubectl.kubernetes.io/restartedAt": STAMP
    }
    assert patched["spec"]["template"]["metadata"]["labels"] == {"app": "app"}


def test_rollout_patch_creates_missing_template_metadata() -> None:
    obj = workload_object(kind="DaemonSet", template_metadata=False, annotations={})
    w = parse_workload("DaemonSet", obj)
    patched = apply(obj, rollout_patch(w, {"app": f"{IMAGE}@{D2}"}, restarted_key="k/r", restarted_at=STAMP))
    assert patched["spec"]["template"]["metadata"] == {"annotations": {"k/r": STAMP}}
    assert patched["metadata"]["annotations"] == {"digest.kube-autorollout/app": f"{IMAGE}@{D2}"}


def test_existing_restarted_at_is_replaced() -> None:
    obj = workload_object(template_annotations={"kube-autorollout/restartedAt": "2020-01-01T00:00:00Z"})
    w = parse_workload("Deployment", obj)
    patched = apply(
        obj, rollout_patch(w, {}, restarted_key="kube-autorollout/restartedAt", restarted_at=STAMP)
    )
    assert patched["spec"]["template"]["metadata"]["annotations"] == {"kube-autorollout/restartedAt": STAMP}


def test_stale_records_are_removed() -> None:
    obj = workload_object(
        annotations={"digest.kube-autorollout/app": f"{IMAGE}@{D1}", "digest.kube-autorollout/old": "x@" + D1}
    )
    w = parse_workload("Deployment", obj)
    ops = rollout_patch(w, {"app": f"{IMAGE}@{D2}"}, restarted_key="r", restarted_at=STAMP, stale=("old",))
    assert apply(obj, ops)["metadata"]["annotations"] == {"digest.kube-autorollout/app": f"{IMAGE}@{D2}"}


def test_adoption_patch_leaves_the_pod_template_alone() -> None:
    obj = workload_object(annotations={"a": "b"})
    w = parse_workload("Deployment", obj)
    patched = apply(obj, adoption_patch(w, {"app": f"{IMAGE}@{D1}"}))
    assert patched["spec"] == obj["spec"]
    assert patched["metadata"]["annotations"] == {"a": "b", "digest.kube-autorollout/app": f"{IMAGE}@{D1}"}


def test_test_op_rejects_a_concurrently_changed_object() -> None:
    obj = workload_object(annotations={})
    w = parse_workload("Deployment", obj)
    ops = rollout_patch(w, {"app": f"{IMAGE}@{D2}"}, restarted_key="r", restarted_at=STAMP)
    changed = copy.deepcopy(obj)
    changed["metadata"]["resourceVersion"] = "43"
    with pytest.raises(jsonpatch.JsonPatchTestFailed):
        apply(changed, ops)


def test_rollout_message_names_container_old_and_new_digest() -> None:
    action = Rollout((DigestChange("app", IMAGE, D1, D2), DigestChange("side", SIDECAR, None, D1)), {})
    message = rollout_message(action)
    assert message == (
        f"container app: {D1} -> {D2} ({IMAGE}); container side: unrecorded -> {D1} ({SIDECAR})"
    )
