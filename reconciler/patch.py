"""The one RFC 6902 JSON patch per decision, pure.

Every patch starts with `test /metadata/resourceVersion`: it is JSON patch's spelling of Kubernetes'
optimistic concurrency. The decision read the images, the container set, `paused` and the presence
or absence of each record; a resourceVersion test covers all of them at once, whereas testing the old
annotation values cannot express "this annotation is absent" (adoption) and misses an image edit
made with the webhook down. The price, a conflict when only status changed, is one GET and a
re-plan of that one workload.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from autorollout.annotations import digest_annotation_key
from reconciler.records import Workload

JsonPatch = list[dict[str, Any]]


def escape_pointer(token: str) -> str:
    """One JSON pointer reference token (RFC 6901): `~` -> `~0`, `/` -> `~1`."""
    return token.replace("~", "~0").replace("/", "~1")


def _record_ops(workload: Workload, records: Mapping[str, str], stale: Sequence[str]) -> JsonPatch:
    values = {digest_annotation_key(name): value for name, value in sorted(records.items())}
    if not workload.has_annotations:
        return [{"op": "add", "path": "/metadata/annotations", "value": values}] if values else []
    ops: JsonPatch = [
        {"op": "add", "path": f"/metadata/annotations/{escape_pointer(key)}", "value": value}
        for key, value in values.items()
    ]
    ops += [
        {"op": "remove", "path": f"/metadata/annotations/{escape_pointer(digest_annotation_key(name))}"}
        for name in stale
        if name in workload.recorded
    ]
    return ops


def _guard(workload: Workload) -> JsonPatch:
    return [{"op": "test", "path": "/metadata/resourceVersion", "value": workload.resource_version}]


def rollout_patch(
    workload: Workload,
    records: Mapping[str, str],
    *,
    restarted_key: str,
    restarted_at: str,
    stale: Sequence[str] = (),
) -> JsonPatch:
    """Restart the pod template (`restarted_key` = `restarted_at`) and write the new records."""
    if not workload.has_template_metadata:
        restart = {
            "op": "add",
            "path": "/spec/template/metadata",
            "value": {"annotations": {restarted_key: restarted_at}},
        }
    elif not workload.has_template_annotations:
        restart = {
            "op": "add",
            "path": "/spec/template/metadata/annotations",
            "value": {restarted_key: restarted_at},
        }
    else:
        restart = {
            "op": "add",
            "path": f"/spec/template/metadata/annotations/{escape_pointer(restarted_key)}",
            "value": restarted_at,
        }
    return [*_guard(workload), restart, *_record_ops(workload, records, stale)]


def adoption_patch(workload: Workload, records: Mapping[str, str], *, stale: Sequence[str] = ()) -> JsonPatch:
    """Record digests on the workload's metadata only: the pod template, and so the pods, stay as they are."""
    return [*_guard(workload), *_record_ops(workload, records, stale)]
