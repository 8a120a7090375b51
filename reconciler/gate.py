"""The rollout policy step between plan and act, pure: each planned rollout passes the workload's
policy (settle, cooldown, windows) and then the in-flight cap, or is held with its reasons.

A held rollout records nothing but its settle marks (so the moved tag stays pending and the next
cycle decides again); a rollout that passes clears them. Workloads without policy annotations and
without marks, with the defaults (settle and cooldown 0, no windows, no cap), pass unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from autorollout.policy.decide import Wait, WaitReason, WindowMemo, decide, settle_marks
from autorollout.policy.errors import PolicyProblem
from autorollout.policy.inflight import is_rolling
from autorollout.policy.model import PolicyDefaults
from reconciler.pending import Pending
from reconciler.plan import Adoption, Rollout, WorkloadPlan
from reconciler.workload import Workload


@dataclass(frozen=True, slots=True)
class GateResult:
    plans: list[WorkloadPlan]
    in_flight: int
    problems: list[tuple[Workload, PolicyProblem]]


def in_flight(workloads: Iterable[Workload], now: datetime, deadline_seconds: int) -> int:
    """How many workloads hold a slot: still rolling, and within their progress deadline."""
    return sum(
        1 for w in workloads if is_rolling(w.kind, w.progress, w.last_rollout(), now, deadline_seconds)
    )


def _effective(workload: Workload, marks: Mapping[str, str | None]) -> dict[str, str | None]:
    seen = workload.seen or {}
    return {k: v for k, v in marks.items() if seen.get(k) != v}


def _hold(
    plan: WorkloadPlan, waits: tuple[Wait, ...], marks: dict[str, str | None], now: datetime
) -> WorkloadPlan:
    action = plan.action
    stale = action.stale if action is not None else ()
    held = Adoption({}, stale, marks) if marks or stale else None
    return replace(plan, action=held, pending=Pending(waits, now))


def _check(
    plan: WorkloadPlan, defaults: PolicyDefaults, now: datetime, memo: WindowMemo
) -> tuple[WorkloadPlan, dict[str, str | None]]:
    """The plan after the policy, and the settle marks to write should it wait for a slot after all."""
    w = plan.workload
    action = plan.action
    if plan.skipped or (not w.seen and not isinstance(action, Rollout)):
        return plan, {}  # nothing to hold and no settle mark to clear (the steady case)
    # A failed lookup says nothing about the tag: its container's mark stays as it is.
    failed = {v.container.name for v in plan.errors}
    seen = {name: mark for name, mark in (w.seen or {}).items() if name not in failed}
    if not isinstance(action, Rollout):
        if not seen:
            return plan, {}
        # Nothing moved (any more): the marks go.
        _, marks = settle_marks({}, seen, 0, now)
        if isinstance(action, Adoption):
            return replace(plan, action=replace(action, marks=marks)), {}
        return replace(plan, action=Adoption({}, (), marks)), {}
    gate = decide(
        w.policy,
        defaults,
        moved={c.container: c.new for c in action.changes},
        seen=seen,
        last_rollout=w.last_rollout(),
        now=now,
        windows=memo,
    )
    marks = _effective(w, gate.marks)
    if not gate.rolls:
        return _hold(plan, gate.waits, marks, now), {}
    clear = {name: None for name in seen}
    return (replace(plan, action=replace(action, marks=clear)) if clear else plan), marks


def apply_policy(
    plans: Sequence[WorkloadPlan],
    defaults: PolicyDefaults,
    *,
    now: datetime,
    cluster: Iterable[Workload] = (),
    memo: WindowMemo | None = None,
    already_rolling: int = 0,
) -> GateResult:
    """The plans after the rollout policy; `cluster` is every cached workload (for the in-flight cap),
    `already_rolling` rollouts started that `cluster` may not show yet."""
    memo = memo or WindowMemo()
    problems = [(p.workload, problem) for p in plans for problem in p.workload.policy.problems]
    checked = [_check(p, defaults, now, memo) for p in plans]
    gated = [plan for plan, _ in checked]
    rolling = 0
    if defaults.max_in_flight > 0:
        rolling = in_flight(cluster, now, defaults.progress_deadline_seconds) + already_rolling
        free = max(0, defaults.max_in_flight - rolling)
        ready = sorted(
            (i for i, p in enumerate(gated) if isinstance(p.action, Rollout)),
            key=lambda i: (gated[i].workload.namespace, gated[i].workload.kind, gated[i].workload.name),
        )
        for i in ready[free:]:
            wait = Wait(WaitReason.SLOT, detail=f"{rolling} in flight, at most {defaults.max_in_flight}")
            gated[i] = _hold(gated[i], (wait,), checked[i][1], now)
    return GateResult(gated, rolling, problems)
