"""Acting on plans: send the one guarded JSON patch per workload, rate limited, and record Events.

A rejected `test` op (the workload changed since it was planned) means: re-read that workload, plan it
again, try again — a few times at most. Nothing here decides *whether* to roll; `plan` did.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from autorollout.annotations import format_restarted_at
from autorollout.kube import (
    JSON_PATCH,
    ConflictError,
    InvalidError,
    KubeApiError,
    KubeClient,
    KubeError,
    KubeNotFoundError,
    TooManyRequestsError,
    core_collection,
    workload_path,
)
from reconciler.patch import JsonPatch, adoption_patch, rollout_patch
from reconciler.plan import Adoption, Rollout, WorkloadPlan
from reconciler.ratelimit import TokenBucket
from reconciler.records import RecordError, Workload, parse_workload

log = logging.getLogger("kube_autorollout.reconciler")

COMPONENT = "kube-autorollout"
REASON_ROLLOUT = "RolloutTriggered"
REASON_REGISTRY_ERROR = "RegistryLookupFailed"
_MAX_MESSAGE = 1000
_MAX_REMEMBERED_WARNINGS = 10_000
_MAX_THROTTLED_ROUNDS = 2  # each round is the client's own 1 + 3 attempts


class Result(StrEnum):
    ROLLED_OUT = "rolled-out"
    ADOPTED = "adopted"
    NOTHING = "nothing-to-do"
    GONE = "gone"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Outcome:
    """What happened to one planned workload; `plan` is the plan finally acted on (after re-plans)."""

    plan: WorkloadPlan
    result: Result
    attempts: int = 1
    error: str = ""


def rollout_message(action: Rollout) -> str:
    """`container app: sha256:old -> sha256:new (host/app:latest)`, one clause per moved container."""
    clauses = [
        f"container {c.container}: {c.old or 'unrecorded'} -> {c.new} ({c.image})" for c in action.changes
    ]
    text = "; ".join(clauses)
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 3] + "..."


class EventRecorder:
    """Writes core/v1 Events about workloads; failures are logged, never raised into the cycle."""

    def __init__(
        self,
        kube: KubeClient,
        *,
        instance: str,
        clock: Callable[[], float] = time.time,
        warning_interval: float = 3600.0,
    ) -> None:
        self._kube = kube
        self._instance = instance
        self._clock = clock
        self._warning_interval = warning_interval
        self._warned: dict[tuple[str, str], float] = {}

    def event_body(
        self, workload: Workload, *, type_: str, reason: str, message: str, resource_version: str
    ) -> dict[str, object]:
        stamp = datetime.fromtimestamp(self._clock(), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "name": f"{workload.name}.{time.time_ns():x}",
                "namespace": workload.namespace,
            },
            "involvedObject": {
                "apiVersion": "apps/v1",
                "kind": workload.kind,
                "namespace": workload.namespace,
                "name": workload.name,
                "uid": workload.uid,
                "resourceVersion": resource_version,
            },
            "type": type_,
            "reason": reason,
            "message": message[:_MAX_MESSAGE],
            "action": "Rollout" if reason == REASON_ROLLOUT else "Lookup",
            "source": {"component": COMPONENT},
            "reportingComponent": COMPONENT,
            "reportingInstance": self._instance,
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
        }

    async def emit(
        self,
        workload: Workload,
        *,
        type_: str,
        reason: str,
        message: str,
        resource_version: str | None = None,
    ) -> bool:
        body = self.event_body(
            workload,
            type_=type_,
            reason=reason,
            message=message,
            resource_version=resource_version or workload.resource_version,
        )
        try:
            await self._kube.create(core_collection("events", workload.namespace), body)
        except KubeError as exc:
            log.warning(
                "event not recorded",
                extra={"fields": {"workload": str(workload.key), "reason": reason, "error": str(exc)}},
            )
            return False
        return True

    async def warn_once(self, workload: Workload, subject: str, *, reason: str, message: str) -> bool:
        """A Warning Event, at most once per `warning_interval` per workload and subject (an image)."""
        key = (workload.uid or str(workload.key), subject)
        now = self._clock()
        if len(self._warned) > _MAX_REMEMBERED_WARNINGS:
            self._warned = {k: t for k, t in self._warned.items() if now - t < self._warning_interval}
        last = self._warned.get(key)
        if last is not None and now - last < self._warning_interval:
            return False
        self._warned[key] = now
        return await self.emit(workload, type_="Warning", reason=reason, message=message)

    def forget(self, subject_of: Callable[[tuple[str, str]], bool]) -> None:
        """Drop remembered warnings for which `subject_of(key)` is true (e.g. the image recovered)."""
        for key in [k for k in self._warned if subject_of(k)]:
            del self._warned[key]


Replan = Callable[[Workload], Awaitable[WorkloadPlan]]


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
        max_attempts: int = 4,
        conflict_pause: float = 0.05,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._kube = kube
        self._events = events
        self._restarted_key = restarted_key
        self._rollouts = rollouts
        self._adoptions = adoptions
        self._max_attempts = max_attempts
        self._conflict_pause = conflict_pause
        self._now = now

    async def apply(self, plan: WorkloadPlan, replan: Replan) -> Outcome:
        """Patch the workload as planned; on a rejected test op re-read, re-plan and retry."""
        attempts = throttled = 0
        while True:
            action = plan.action
            if action is None:
                return Outcome(plan, Result.NOTHING, attempts)
            attempts += 1
            workload = plan.workload
            path = workload_path(workload.kind, workload.namespace, workload.name)
            bucket = self._rollouts if isinstance(action, Rollout) else self._adoptions
            await bucket.acquire()
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
                # A write to the workload is usually followed by its controller's status write;
                # reading after that one saves a second conflict.
                await asyncio.sleep(self._conflict_pause * attempts)
                try:
                    fresh = parse_workload(workload.kind, await self._kube.get(path))
                except KubeNotFoundError:
                    return Outcome(plan, Result.GONE, attempts)
                except (KubeError, RecordError) as err:
                    return Outcome(plan, Result.FAILED, attempts, f"re-read failed: {err}")
                plan = await replan(fresh)
                continue
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
            if isinstance(action, Adoption):
                return Outcome(plan, Result.ADOPTED, attempts)
            new_rv = str((patched.get("metadata") or {}).get("resourceVersion") or workload.resource_version)
            await self._events.emit(
                workload,
                type_="Normal",
                reason=REASON_ROLLOUT,
                message=rollout_message(action),
                resource_version=new_rv,
            )
            return Outcome(plan, Result.ROLLED_OUT, attempts)

    def _ops(self, workload: Workload, action: Rollout | Adoption) -> JsonPatch:
        if isinstance(action, Rollout):
            return rollout_patch(
                workload,
                action.records,
                restarted_key=self._restarted_key,
                restarted_at=format_restarted_at(self._now()),
                stale=action.stale,
            )
        return adoption_patch(workload, action.records, stale=action.stale)
