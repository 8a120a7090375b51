"""Kubernetes Events about workloads: a Normal one per rollout, a Warning (at most hourly per image)
while an image does not resolve. Failures to write one are logged, never raised into the cycle.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from autorollout.kube import KubeClient, KubeError, core_collection
from autorollout.notify import DISCARD, Notice, NoticeOutcome, NoticeSink
from autorollout.policy.errors import PolicyProblem
from reconciler.plan import Rollout, WorkloadPlan
from reconciler.workload import Workload

log = logging.getLogger("kube_autorollout.reconciler")

COMPONENT = "kube-autorollout"
REASON_ROLLOUT = "RolloutTriggered"
REASON_REGISTRY_ERROR = "RegistryLookupFailed"
REASON_INVALID_POLICY = "InvalidRolloutPolicy"
# The health watch's (reconciler/health.py, docs/health.md).
REASON_SUCCEEDED = "RolloutSucceeded"
REASON_FAILED = "RolloutFailed"
REASON_HELD = "RolloutHeld"
REASON_MIXED = "MixedDigests"
# The Event's `action` (what was done about the workload) by reason; the rest are lookups.
_ACTIONS = {
    REASON_ROLLOUT: "Rollout",
    REASON_INVALID_POLICY: "ReadPolicy",
    REASON_SUCCEEDED: "WatchRollout",
    REASON_FAILED: "WatchRollout",
    REASON_MIXED: "WatchRollout",
    REASON_HELD: "Hold",
}
_MAX_MESSAGE = 1000
_MAX_REMEMBERED_WARNINGS = 10_000
_EVENT_CONCURRENCY = 8


def rollout_message(action: Rollout) -> str:
    """`container app: sha256:old -> sha256:new (host/app:latest)`, one clause per moved container."""
    clauses = [
        f"container {c.container}: {c.old or 'unrecorded'} -> {c.new} ({c.image})" for c in action.changes
    ]
    text = "; ".join(clauses)
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 3] + "..."


def rollout_notices(workload: Workload, action: Rollout, at: datetime) -> list[Notice]:
    """A ROLLED_OUT notice per moved container, with the RolloutTriggered Event's text as detail."""
    detail = rollout_message(action)
    return [
        Notice(
            NoticeOutcome.ROLLED_OUT,
            workload.kind,
            workload.namespace,
            workload.name,
            at,
            container=c.container,
            image=c.image,
            old_digest=c.old,
            new_digest=c.new,
            detail=detail,
        )
        for c in action.changes
    ]


class EventRecorder:
    """Writes core/v1 Events about workloads; failures are logged, never raised into the cycle."""

    def __init__(
        self,
        kube: KubeClient,
        *,
        instance: str,
        clock: Callable[[], float] = time.time,
        warning_interval: float = 3600.0,
        notices: NoticeSink = DISCARD,
    ) -> None:
        self._kube = kube
        #: Where the decisions that produce Events are also sent as notifications.
        self.notices = notices
        self._instance = instance
        self._clock = clock
        self._warning_interval = warning_interval
        self._warned: dict[tuple[str, str], float] = {}

    def now(self) -> float:
        """The recorder's clock (Unix seconds)."""
        return self._clock()

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
            "action": _ACTIONS.get(reason, "Lookup"),
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

    async def warn_once(
        self, workload: Workload, subject: str, *, reason: str, message: str, notice: Notice | None = None
    ) -> bool:
        """A Warning Event, at most once per `warning_interval` per workload and subject (an image);
        `notice` goes to the notification sinks just as often."""
        key = (workload.uid or str(workload.key), subject)
        now = self._clock()
        if len(self._warned) > _MAX_REMEMBERED_WARNINGS:
            self._warned = {k: t for k, t in self._warned.items() if now - t < self._warning_interval}
        last = self._warned.get(key)
        if last is not None and now - last < self._warning_interval:
            return False
        self._warned[key] = now
        if notice is not None:
            self.notices.submit(notice)
        return await self.emit(workload, type_="Warning", reason=reason, message=message)

    def forget(self, subject_of: Callable[[tuple[str, str]], bool]) -> None:
        """Drop remembered warnings for which `subject_of(key)` is true (e.g. the image recovered)."""
        for key in [k for k in self._warned if subject_of(k)]:
            del self._warned[key]


async def warn_registry_errors(events: EventRecorder, plans: Sequence[WorkloadPlan]) -> None:
    """A Warning Event per workload and image that did not resolve (rate limited by `warn_once`)."""
    gate = asyncio.Semaphore(_EVENT_CONCURRENCY)

    async def warn(plan: WorkloadPlan) -> None:
        for verdict in plan.errors:
            message = (
                f"container {verdict.container.name}: cannot resolve {verdict.container.image}: "
                f"{verdict.detail}; no rollout until it resolves"
            )
            w = plan.workload
            notice = Notice(
                NoticeOutcome.REGISTRY_ERROR,
                w.kind,
                w.namespace,
                w.name,
                datetime.fromtimestamp(events.now(), UTC),
                container=verdict.container.name,
                image=verdict.container.image,
                old_digest=verdict.recorded,
                detail=message,
            )
            async with gate:
                await events.warn_once(
                    w, verdict.container.image, reason=REASON_REGISTRY_ERROR, message=message, notice=notice
                )

    await asyncio.gather(*(warn(p) for p in plans if p.errors))


class PolicyWarnings:
    """A Warning Event per workload and invalid policy annotation value, once per process."""

    def __init__(self, events: EventRecorder) -> None:
        self._events = events
        self._warned: set[tuple[str, str, str]] = set()

    async def warn(self, problems: Sequence[tuple[Workload, PolicyProblem]]) -> None:
        for workload, problem in problems:
            value = dict(workload.policy_raw).get(problem.key, "")
            key = (workload.uid or str(workload.key), problem.key, value)
            if key in self._warned:
                continue
            if len(self._warned) > _MAX_REMEMBERED_WARNINGS:
                self._warned.clear()
            self._warned.add(key)
            log.warning(
                "invalid rollout policy annotation; the global default applies",
                extra={
                    "fields": {
                        "workload": str(workload.key),
                        "annotation": problem.key,
                        "error": problem.message,
                    }
                },
            )
            await self._events.emit(
                workload,
                type_="Warning",
                reason=REASON_INVALID_POLICY,
                message=f"{problem}; the global default applies for it",
            )
