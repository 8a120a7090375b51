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
    DONE = "done"  # the controller says done: the new pods confirm (see `confirm`)
    SUCCEEDED = "succeeded"
    FAILED = "failed"


#: How long every container of the new pods must have run, unrestarted, before a rollout succeeds:
#: without a readiness probe a container that exits at once is Ready, and its Deployment complete,
#: for a moment.
STABLE_SECONDS = 10.0


@dataclass(frozen=True, slots=True)
class Judgement:
    verdict: Verdict
    took: float  # seconds from the rollout's start to now
    reason: str = ""
    past_deadline: bool = False


def judge(
    kind: str, status: HealthStatus | None, watch: WatchRecord, now: datetime, default_deadline: int
) -> Judgement:
    """The verdict at `now` from the workload's status; `default_deadline` (seconds) applies to kinds
    without a deadline of their own. DONE still needs the pods' word (`confirm`)."""
    took = max(0.0, (now - watch.started).total_seconds())
    if status is None:
        return Judgement(Verdict.WATCHING, took)
    own = kind == "Deployment" and status.deadline_seconds
    deadline = status.deadline_seconds if own and status.deadline_seconds else default_deadline
    past = now >= watch.started + timedelta(seconds=deadline)
    if status.done:
        return Judgement(Verdict.DONE, took, past_deadline=past)
    if kind == "Deployment":
        if status.deadline_exceeded:
            reason = f"{status.reason}: {status.message}" if status.message else status.reason
            return Judgement(Verdict.FAILED, took, reason)
        if past and status.current and status.reason == "NewReplicaSetAvailable":
            # It completed, then its new pods stopped being available: its controller counts no
            # deadline after completion, so ours (the same number of seconds, from the start) ends it.
            return Judgement(
                Verdict.FAILED, took, f"new pods not available {deadline}s after the rollout", past
            )
        return Judgement(Verdict.WATCHING, took)
    if past:
        what = "updated and ready" if kind == "StatefulSet" else "updated and available"
        return Judgement(Verdict.FAILED, took, f"not {what} within {deadline}s", past)
    return Judgement(Verdict.WATCHING, took)


def confirm(judgement: Judgement, problem: str, stable: bool) -> Judgement:
    """A DONE judgement once the new pods were read: `problem` is what a failing pod says ("" none),
    `stable` whether every one has run unrestarted for STABLE_SECONDS. A problem fails the rollout
    only once its deadline passed (a pod may still recover); until then, and until stable, watching."""
    if judgement.verdict is not Verdict.DONE:
        return judgement
    if problem:
        if judgement.past_deadline:
            return Judgement(Verdict.FAILED, judgement.took, problem, True)
        return Judgement(Verdict.WATCHING, judgement.took)
    return Judgement(Verdict.SUCCEEDED if stable else Verdict.WATCHING, judgement.took)
