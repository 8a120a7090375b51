"""The verdict on a watched rollout, pure: given the workload's slim status, the watch record and the
clock, still watching, succeeded (with the time it took) or failed (with the controller's reason).

A Deployment's deadline is its own `progressDeadlineSeconds`, enforced by its controller (which says
`ProgressDeadlineExceeded`; it counts from the last progress, so a slow but steady rollout is not cut
short). A StatefulSet or DaemonSet has none: its rollout fails when it is not done the configured
default after it started. Pods are read only once a verdict is due (see reconciler/health.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from autorollout.health.status import HealthStatus
from autorollout.health.watch import WatchRecord


class Verdict(StrEnum):
    WATCHING = "watching"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Judgement:
    verdict: Verdict
    took: float  # seconds from the rollout's start to now
    reason: str = ""


def judge(
    kind: str, status: HealthStatus | None, watch: WatchRecord, now: datetime, default_deadline: int
) -> Judgement:
    """The verdict at `now`; `default_deadline` (seconds) applies to kinds without a deadline of their own."""
    took = max(0.0, (now - watch.started).total_seconds())
    if status is None:
        return Judgement(Verdict.WATCHING, took)
    if status.done:
        return Judgement(Verdict.SUCCEEDED, took)
    if kind == "Deployment":
        if status.deadline_exceeded:
            reason = f"{status.reason}: {status.message}" if status.message else status.reason
            return Judgement(Verdict.FAILED, took, reason)
        return Judgement(Verdict.WATCHING, took)
    if now >= watch.started + timedelta(seconds=default_deadline):
        what = "updated and ready" if kind == "StatefulSet" else "updated and available"
        return Judgement(Verdict.FAILED, took, f"not {what} within {default_deadline}s")
    return Judgement(Verdict.WATCHING, took)
