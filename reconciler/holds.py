"""Holds, pure: a planned rollout does not move a container to a digest whose rollout failed.

The health watch holds a workload's container at the digest whose rollout failed
(`hold.kube-autorollout/<container>`, docs/health.md). Here, before the rollout policy, a change to
that digest is dropped from the plan: when the tag moves on (the fix is pushed), the change is to
another digest and rolls. With `rolloutPolicy.holdOtherWorkloads`, a digest held on any workload
holds every workload (digests name content, whatever the image reference).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from autorollout.policy.decide import Wait, WaitReason
from reconciler.pending import Pending
from reconciler.plan import Adoption, DigestChange, Rollout, WorkloadPlan


@dataclass(frozen=True, slots=True)
class HeldChange:
    """A change the gate dropped: `own` when the workload itself failed at that digest."""

    plan: WorkloadPlan
    change: DigestChange
    own: bool


def _held(plan: WorkloadPlan, change: DigestChange, elsewhere: Collection[str]) -> HeldChange | None:
    own = (plan.workload.holds or {}).get(change.container) == change.new
    return HeldChange(plan, change, own) if own or change.new in elsewhere else None


def apply_holds(
    plans: Sequence[WorkloadPlan], *, now: datetime, elsewhere: Collection[str] = ()
) -> tuple[list[WorkloadPlan], list[HeldChange]]:
    """The plans without changes to held digests (`elsewhere`: digests held on other workloads that
    hold this one too), and the changes dropped."""
    out: list[WorkloadPlan] = []
    dropped: list[HeldChange] = []
    for plan in plans:
        action = plan.action
        if not isinstance(action, Rollout) or not (plan.workload.holds or elsewhere):
            out.append(plan)
            continue
        held = [h for c in action.changes if (h := _held(plan, c, elsewhere)) is not None]
        if not held:
            out.append(plan)
            continue
        dropped.extend(held)
        names = {h.change.container for h in held}
        changes = tuple(c for c in action.changes if c.container not in names)
        if changes:
            records = {k: v for k, v in action.records.items() if k not in names}
            out.append(replace(plan, action=replace(action, changes=changes, records=records)))
            continue
        detail = ", ".join(f"container {h.change.container} at {h.change.new}" for h in held)
        stale = action.stale
        adoption = Adoption({}, stale, action.marks) if stale or action.marks else None
        out.append(
            replace(plan, action=adoption, pending=Pending((Wait(WaitReason.HELD, detail=detail),), now))
        )
    return out, dropped
