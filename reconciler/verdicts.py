"""The health watch's writes, pure: the verdict patch and the texts of its Events (docs/health.md).

A verdict patch starts with `test` of the watch record it judged: of two replicas (or a process and
its restarted self) judging the same rollout, one patch applies and the other is rejected, so the
verdict, its Event and its hold happen once. Status writes of the controller do not conflict with it,
as a resourceVersion guard would all through a rollout.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from autorollout.annotations import (
    VERDICT,
    WATCH,
    digest_annotation_key,
    format_recorded,
    format_restarted_at,
    hold_annotation_key,
    mixed_annotation_key,
)
from autorollout.health import Judgement, Verdict, WatchRecord
from autorollout.patches import JsonPatch, annotation_operations, escape_pointer
from reconciler.health_pods import MixedDigest
from reconciler.plan import recorded_digest
from reconciler.workload import Workload

_MAX_VERDICT = 500


def _current(workload: Workload) -> dict[str, str]:
    """The annotations a verdict patch reads (and changes), as the record holds them."""
    found = {digest_annotation_key(name): value for name, value in workload.recorded.items()}
    found.update((hold_annotation_key(c), d) for c, d in (workload.holds or {}).items())
    found.update((mixed_annotation_key(c), v) for c, v in (workload.mixed or {}).items())
    if workload.verdict is not None:
        found[VERDICT] = workload.verdict
    return found


def verdict_text(judgement: Judgement, now: datetime, reason: str) -> str:
    """The `health.kube-autorollout/verdict` value."""
    stamp = format_restarted_at(now)
    if judgement.verdict is Verdict.SUCCEEDED:
        return f"succeeded {stamp} {judgement.took:.0f}s"
    text = f"failed {stamp}: {reason}"
    return text if len(text) <= _MAX_VERDICT else text[: _MAX_VERDICT - 3] + "..."


def mixed_changes(workload: Workload, mixed: Mapping[str, MixedDigest]) -> dict[str, str | None]:
    """Set the mixed marks found, remove those that cleared."""
    changes: dict[str, str | None] = {mixed_annotation_key(c): m.value() for c, m in mixed.items()}
    changes.update((mixed_annotation_key(c), None) for c in workload.mixed or {} if c not in mixed)
    return changes


def verdict_patch(
    workload: Workload,
    watch: WatchRecord,
    judgement: Judgement,
    *,
    now: datetime,
    reason: str = "",
    mixed: Mapping[str, MixedDigest] | None = None,
) -> JsonPatch:
    """End the watch `workload.watch` with `judgement`: on failure hold each rolled container at its new
    digest and record the old digest again (the old pods run it); on success lift those holds."""
    changes: dict[str, str | None] = {VERDICT: verdict_text(judgement, now, reason)}
    for rolled in watch.rolled:
        spec = workload.container(rolled.container)
        if judgement.verdict is Verdict.FAILED:
            changes[hold_annotation_key(rolled.container)] = rolled.new
            if spec is not None and rolled.old and recorded_digest(workload, spec) == rolled.new:
                changes[digest_annotation_key(rolled.container)] = format_recorded(spec.image, rolled.old)
        else:
            changes[hold_annotation_key(rolled.container)] = None
    if mixed is not None:
        changes.update(mixed_changes(workload, mixed))
    watch_path = "/metadata/annotations/" + escape_pointer(WATCH)
    return [
        {"op": "test", "path": watch_path, "value": workload.watch or ""},
        {"op": "remove", "path": watch_path},
        *annotation_operations(_current(workload), changes),
    ]


def mixed_patch(workload: Workload, mixed: Mapping[str, MixedDigest]) -> JsonPatch:
    """Update the mixed marks only (a recheck), guarded by the resourceVersion read."""
    ops = annotation_operations(_current(workload), mixed_changes(workload, mixed))
    if not ops:
        return []
    return [{"op": "test", "path": "/metadata/resourceVersion", "value": workload.resource_version}, *ops]


def lift_command(workload: Workload, container: str) -> str:
    """The one-line `kubectl annotate` that lifts a hold."""
    return (
        f"kubectl annotate -n {workload.namespace} {workload.kind.lower()}/{workload.name} "
        f"{hold_annotation_key(container)}-"
    )


def succeeded_message(watch: WatchRecord, judgement: Judgement) -> str:
    return f"rollout succeeded in {judgement.took:.0f}s: {watch.text()}"


def failed_message(workload: Workload, watch: WatchRecord, judgement: Judgement, reasons: str) -> str:
    """`reasons`: the controller's and the pods' words, as the verdict annotation has them."""
    lift = "; ".join(lift_command(workload, r.container) for r in watch.rolled)
    return (
        f"rollout failed after {judgement.took:.0f}s: {watch.text()}: {reasons or 'no reason given'}; "
        f"held: not rolled to that digest again until the tag moves on (lift: {lift})"
    )


def mixed_message(container: str, mixed: MixedDigest, recorded: str | None) -> str:
    return (
        f"container {container}: {mixed.pods} of {mixed.ready} ready pods run {mixed.digest}, not the "
        f"recorded {recorded or 'digest'} (imagePullPolicy IfNotPresent/Never, or a node's cached tag)"
    )
