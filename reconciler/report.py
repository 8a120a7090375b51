"""Reporting a cycle: the report the CLI prints and tests assert on, one log line per decision and
outcome, one summary line, and the metrics. No decisions and no I/O besides logging.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from autorollout import metrics
from autorollout.policy.decide import WaitReason
from autorollout.registry.errors import RegistryError
from reconciler.act import Outcome, Result
from reconciler.cache import WorkloadCache
from reconciler.plan import Adoption, ContainerState, Rollout, WorkloadPlan
from reconciler.workload import Workload, WorkloadKey, log_fields

log = logging.getLogger("kube_autorollout.reconciler")


@dataclass
class CycleReport:
    """What one cycle saw and did; the CLI prints it, tests and benchmarks assert on it."""

    dry_run: bool
    workloads: int = 0
    unique_images: int = 0
    plans: list[WorkloadPlan] = field(default_factory=list)
    outcomes: list[Outcome] = field(default_factory=list)
    registry_errors: dict[str, str] = field(default_factory=dict)
    api_requests: dict[str, int] = field(default_factory=dict)
    duration: float = 0.0
    interrupted: bool = False
    in_flight: int = 0  # rollouts in flight when the cycle planned (counted only with a cap)

    def count(self, result: Result) -> int:
        return sum(1 for o in self.outcomes if o.result is result)

    @property
    def failed(self) -> bool:
        return bool(self.registry_errors) or self.count(Result.FAILED) > 0

    @property
    def planned_rollouts(self) -> list[WorkloadPlan]:
        return [p for p in self.plans if isinstance(p.action, Rollout)]

    @property
    def pending(self) -> list[WorkloadPlan]:
        """Plans whose moved tag the rollout policy holds back."""
        return [p for p in self.plans if p.pending is not None]

    @property
    def planned_adoptions(self) -> list[WorkloadPlan]:
        return [
            p for p in self.plans if isinstance(p.action, Adoption) and (p.action.records or p.action.stale)
        ]


def _error_text(error: RegistryError) -> str:
    return f"{type(error).__name__}: {error.message or error}"


class PullPolicyWarnings:
    """A warning per workload, container and imagePullPolicy that is not Always, once per process."""

    def __init__(self) -> None:
        self._warned: set[tuple[str, str, str]] = set()

    def check(self, workloads: Sequence[Workload]) -> None:
        for w in workloads:
            for c in w.containers:
                policy = c.pull_policy or "unset"
                if policy == "Always" or (w.uid, c.name, policy) in self._warned:
                    continue
                self._warned.add((w.uid, c.name, policy))
                log.warning(
                    "imagePullPolicy is not Always: a rollout may restart pods on the old image",
                    extra={
                        "fields": log_fields(w, container=c.name, image=c.image, image_pull_policy=policy)
                    },
                )


def report_registry_errors(report: CycleReport, errors: Mapping[str, tuple[RegistryError, int]]) -> None:
    """Record the failed lookups in `report` and log one line per image."""
    report.registry_errors = {image: _error_text(e) for image, (e, _) in errors.items()}
    for image, (error, affected) in sorted(errors.items()):
        metrics.count_lookup_failure(error.registry or image.partition("/")[0], error.reason)
        log.warning(
            "registry lookup failed; no rollout for this image",
            extra={"fields": {"image": image, "error": _error_text(error), "workloads": affected}},
        )


def log_plan(plan: WorkloadPlan, *, dry_run: bool) -> None:
    w = plan.workload
    if plan.skipped:
        log.info(f"skipped: {plan.skipped}", extra={"fields": log_fields(w)})
        return
    for verdict in plan.verdicts if plan.action is None else ():
        if verdict.state is ContainerState.WAITING:
            log.debug(
                "adoption waits: no Ready pod of its own reports what runs; nothing recorded",
                extra={"fields": log_fields(w, container=verdict.container.name, pods=verdict.detail)},
            )
    prefix = "would " if dry_run else ""
    action = plan.action
    if isinstance(action, Rollout):
        for change in action.changes:
            log.info(
                f"{prefix}roll out: tag moved",
                extra={
                    "fields": log_fields(
                        w, container=change.container, image=change.image, old=change.old, new=change.new
                    )
                },
            )
    elif isinstance(action, Adoption):
        for name, value in action.records.items():
            log.info(
                f"{prefix}record digest without rollout (adoption)",
                extra={"fields": log_fields(w, container=name, recorded=value)},
            )


def log_pending(plan: WorkloadPlan) -> None:
    """One line per held rollout: what moved and why it waits."""
    if plan.pending is None:
        return
    log.info(
        "rollout pending: " + plan.pending.text(),
        extra={
            "fields": log_fields(
                plan.workload,
                reason=str(plan.pending.reason),
                containers=[v.container.name for v in plan.verdicts if v.state is ContainerState.WILL_ROLL],
            )
        },
    )


class PendingGauge:
    """The pending-rollouts gauge by reason: each cycle updates the workloads it planned (a scheduled
    cycle may plan only those whose schedule fired), workloads gone from the cache drop out."""

    def __init__(self) -> None:
        self._reasons: dict[WorkloadKey, WaitReason] = {}

    def update(self, plans: Sequence[WorkloadPlan], cache: WorkloadCache) -> None:
        for plan in plans:
            if plan.pending is None:
                self._reasons.pop(plan.workload.key, None)
            else:
                self._reasons[plan.workload.key] = plan.pending.reason
        for key in [k for k in self._reasons if cache.get(k) is None]:
            del self._reasons[key]
        counts = Counter(self._reasons.values())
        for reason in WaitReason:
            metrics.PENDING_ROLLOUTS.labels(reason=str(reason)).set(counts[reason])


def log_outcome(outcome: Outcome) -> None:
    w = outcome.plan.workload
    if outcome.result is Result.ROLLED_OUT:
        metrics.ROLLOUTS.labels(kind=w.kind).inc()
    elif outcome.result is Result.ADOPTED:
        metrics.ADOPTIONS.labels(kind=w.kind).inc()
    fields = log_fields(w, result=str(outcome.result), attempts=outcome.attempts)
    if outcome.result is Result.FAILED:
        log.error("patch failed", extra={"fields": {**fields, "error": outcome.error}})
    elif outcome.result in (Result.ROLLED_OUT, Result.ADOPTED, Result.MARKED):
        log.info("patched", extra={"fields": fields})
    else:
        log.info("nothing patched", extra={"fields": fields})


def log_summary(report: CycleReport) -> None:
    states = Counter(v.state for p in report.plans for v in p.verdicts)
    log.info(
        "cycle finished" + (" (dry run)" if report.dry_run else ""),
        extra={
            "fields": {
                "workloads": report.workloads,
                "unique_images": report.unique_images,
                "rolled_out": report.count(Result.ROLLED_OUT),
                "adopted": report.count(Result.ADOPTED),
                "would_roll_out": len(report.planned_rollouts) if report.dry_run else 0,
                "would_adopt": len(report.planned_adoptions) if report.dry_run else 0,
                "up_to_date": states[ContainerState.UP_TO_DATE],
                "waiting_for_pods": states[ContainerState.WAITING],
                "registry_errors": len(report.registry_errors),
                "failed": report.count(Result.FAILED),
                "pending": len(report.pending),
                "interrupted": report.interrupted,
                "duration_ms": round(report.duration * 1000, 1),
                "api_requests": report.api_requests,
            }
        },
    )
