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

from autorollout.annotations import (
    WATCH,
    digest_annotation_key,
    platforms_annotation_key,
    seen_annotation_key,
)
from autorollout.patches import JsonPatch, annotation_operations, escape_pointer
from reconciler.workload import Workload


def _record_ops(
    workload: Workload,
    records: Mapping[str, str],
    stale: Sequence[str],
    marks: Mapping[str, str | None] | None = None,
    platforms: Mapping[str, str | None] | None = None,
) -> JsonPatch:
    changes: dict[str, str | None] = {
        digest_annotation_key(name): value for name, value in sorted(records.items())
    }
    changes.update((digest_annotation_key(name), None) for name in stale)
    # The records and settle marks are the only annotations the decision read (and changes).
    recorded = {digest_annotation_key(name): value for name, value in workload.recorded.items()}
    if marks:
        changes.update((seen_annotation_key(name), value) for name, value in sorted(marks.items()))
        recorded.update((seen_annotation_key(name), value) for name, value in (workload.seen or {}).items())
    if platforms:
        changes.update((platforms_annotation_key(n), value) for n, value in sorted(platforms.items()))
        recorded.update(
            (platforms_annotation_key(name), value) for name, value in (workload.platforms or {}).items()
        )
    return annotation_operations(recorded if workload.has_annotations else None, changes)


def _guard(workload: Workload) -> JsonPatch:
    return [{"op": "test", "path": "/metadata/resourceVersion", "value": workload.resource_version}]


def rollout_patch(
    workload: Workload,
    records: Mapping[str, str],
    *,
    restarted_key: str,
    restarted_at: str,
    stale: Sequence[str] = (),
    marks: Mapping[str, str | None] | None = None,
    platforms: Mapping[str, str | None] | None = None,
    watch: str | None = None,
) -> JsonPatch:
    """Restart the pod template (`restarted_key` = `restarted_at`) and write the new records, and
    `watch` (the health watch's pending verdict, docs/health.md) when given."""
    # The timestamp is new, so what the template's annotations hold besides does not matter.
    restart = annotation_operations(
        {} if workload.has_template_annotations else None,
        {restarted_key: restarted_at},
        has_metadata=workload.has_template_metadata,
        metadata="/spec/template/metadata",
    )
    # An `add` replaces a previous rollout's watch record, if any.
    pending = [{"op": "add", "path": "/metadata/annotations/" + escape_pointer(WATCH), "value": watch}]
    ops = [*_guard(workload), *restart, *_record_ops(workload, records, stale, marks, platforms)]
    return ops + pending if watch is not None else ops


def adoption_patch(
    workload: Workload,
    records: Mapping[str, str],
    *,
    stale: Sequence[str] = (),
    marks: Mapping[str, str | None] | None = None,
    platforms: Mapping[str, str | None] | None = None,
) -> JsonPatch:
    """Record digests on the workload's metadata only: the pod template, and so the pods, stay as they are."""
    return [*_guard(workload), *_record_ops(workload, records, stale, marks, platforms)]
