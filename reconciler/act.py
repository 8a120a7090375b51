"""Acting on plans: send the one guarded JSON patch per workload, rate limited, and record the Event.

A rejected `test` op (the workload changed since it was planned) is a CONFLICT outcome: the cycle
re-reads that workload, observes and plans it again and hands the new plan back, a few times at most.
Nothing here decides *whether* to roll; `plan` did.

The cycle applies many plans at once; the token buckets alone pace the PATCHes. A rollout's Event is
written in the background (`drain` waits for them), so the next PATCH does not wait for it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from autorollout.annotations import format_restarted_at
from autorollout.health.watch import RolledDigest, format_watch
from autorollout.kube import (
    JSON_PATCH,
    ConflictError,
    InvalidError,
    KubeApiError,
    KubeClient,
    KubeError,
    KubeNotFoundError,
    TooManyRequestsError,
    workload_path,
)
from autorollout.patches import JsonPatch
from reconciler.events import REASON_ROLLOUT, EventRecorder, rollout_message, rollout_notices
from reconciler.patch import adoption_patch, rollout_patch
from reconciler.plan import Adoption, Rollout, WorkloadPlan
from reconciler.ratelimit import TokenBucket
from reconciler.workload import Workload

log = logging.getLogger("kube_autorollout.reconciler")

MAX_ATTEMPTS = 4
_EVENT_CONCURRENCY = 8
_MAX_THROTTLED_ROUNDS = 2  # each round is the client's own 1 + 3 attempts


class Result(StrEnum):
    ROLLED_OUT = "rolled-out"
    ADOPTED = "adopted"
    MARKED = "marked"  # only the rollout policy's settle marks were written
    NOTHING = "nothing-to-do"
    GONE = "gone"
    FAILED = "failed"
    # The guarded patch was rejected: the workload changed since it was planned. The cycle plans it
    # again; a report shows this only when the cycle stopped before it could.
    CONFLICT = "conflict"


@dataclass(frozen=True, slots=True)
class Outcome:
    """What happened to one planned workload; `plan` is the plan finally acted on (after re-plans)."""

    plan: WorkloadPlan
    result: Result
    attempts: int = 1
    error: str = ""


class Actuator:
    """Applies WorkloadPlans: one guarded patch each, rollouts and adoptions rate limited separately."""

    def __init__(
        self,
        kube: KubeClient,
        events: EventRecorder,
        *,
        restarted_key: str,
        rollouts: TokenBucket,
        adoptions: TokenBucket,
        max_attempts: int = MAX_ATTEMPTS,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._kube = kube
        self._events = events
        self._restarted_key = restarted_key
        self._rollouts = rollouts
        self._adoptions = adoptions
        self._max_attempts = max_attempts
        self._now = now
        self._patching = 0
        self._event_gate = asyncio.Semaphore(_EVENT_CONCURRENCY)
        self._event_tasks: set[asyncio.Task[bool]] = set()

    @property
    def writing(self) -> bool:
        """True while a PATCH is in flight or a rollout's Event is not written yet."""
        return self._patching > 0 or bool(self._event_tasks)

    async def drain(self) -> None:
        """Wait until the Events of the rollouts done so far are written (or failed, which is logged)."""
        while self._event_tasks:
            await asyncio.wait(set(self._event_tasks))

    async def apply(
        self, plan: WorkloadPlan, *, attempts: int = 0, may_send: Callable[[], bool] = lambda: True
    ) -> Outcome | None:
        """Patch the workload as planned; `attempts` counts the patches sent for it before this plan.

        None: `may_send` said no once the rate limiter let this patch go (the cycle is stopping).
        """
        throttled = 0
        while True:
            action = plan.action
            if action is None:
                return Outcome(plan, Result.NOTHING, attempts)
            attempts += 1
            workload = plan.workload
            path = workload_path(workload.kind, workload.namespace, workload.name)
            bucket = self._rollouts if isinstance(action, Rollout) else self._adoptions
            await bucket.acquire()
            if not may_send():
                return None
            self._patching += 1
            try:
                patched = await self._kube.patch(path, self._ops(workload, action), JSON_PATCH)
            except (ConflictError, InvalidError) as exc:
                log.info(
                    "workload changed since it was planned; re-reading",
                    extra={
                        "fields": {"workload": str(workload.key), "attempt": attempts, "error": exc.reason}
                    },
                )
                if attempts >= self._max_attempts:
                    return Outcome(plan, Result.FAILED, attempts, f"still conflicting: {exc}")
                return Outcome(plan, Result.CONFLICT, attempts, exc.reason)
            except TooManyRequestsError as exc:
                # The client already waited out a few 429s; slow every later patch down too, and give
                # this workload one more round only: the next cycle decides again.
                bucket.pause(exc.retry_after or 1.0)
                throttled += 1
                if throttled >= _MAX_THROTTLED_ROUNDS or attempts >= self._max_attempts:
                    return Outcome(plan, Result.FAILED, attempts, str(exc))
                continue
            except KubeNotFoundError:
                return Outcome(plan, Result.GONE, attempts)
            except (KubeApiError, KubeError) as exc:
                return Outcome(plan, Result.FAILED, attempts, str(exc))
            finally:
                self._patching -= 1
            if isinstance(action, Adoption):
                marks_only = not action.records and not action.stale and not action.platforms
                return Outcome(plan, Result.MARKED if marks_only else Result.ADOPTED, attempts)
            new_rv = str((patched.get("metadata") or {}).get("resourceVersion") or workload.resource_version)
            self._emit_later(workload, rollout_message(action), new_rv)
            for notice in rollout_notices(workload, action, self._now()):
                self._events.notices.submit(notice)
            return Outcome(plan, Result.ROLLED_OUT, attempts)

    def _emit_later(self, workload: Workload, message: str, resource_version: str) -> None:
        async def emit() -> bool:
            async with self._event_gate:
                return await self._events.emit(
                    workload,
                    type_="Normal",
                    reason=REASON_ROLLOUT,
                    message=message,
                    resource_version=resource_version,
                )

        task = asyncio.create_task(emit(), name=f"event {workload.key}")
        self._event_tasks.add(task)
        task.add_done_callback(self._event_done)

    def _event_done(self, task: asyncio.Task[bool]) -> None:
        self._event_tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            # The recorder logs API failures itself; anything else is a bug, logged and not raised.
            log.error("event not recorded", exc_info=exc, extra={"fields": {"task": task.get_name()}})

    def _ops(self, workload: Workload, action: Rollout | Adoption) -> JsonPatch:
        if isinstance(action, Rollout):
            now = self._now()
            return rollout_patch(
                workload,
                action.records,
                restarted_key=self._restarted_key,
                restarted_at=format_restarted_at(now),
                stale=action.stale,
                marks=action.marks,
                platforms=action.platforms,
                watch=format_watch(now, (RolledDigest(c.container, c.old, c.new) for c in action.changes)),
            )
        return adoption_patch(
            workload, action.records, stale=action.stale, marks=action.marks, platforms=action.platforms
        )
