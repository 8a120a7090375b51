"""One reconcile cycle, data running one way: observe -> plan -> act -> report.

`Cycle.run` is the one entry: the schedule drives it for every cached workload, and a registry event
can drive it for the workloads using one image (`images=`). A guarded patch rejected because the
workload changed comes back from act as a CONFLICT; the cycle re-reads, re-observes and re-plans
those workloads and acts again, a few rounds at most (the actuator's attempt bound).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Collection, Sequence

from autorollout import metrics
from autorollout.kube import KubeClient, KubeError, KubeNotFoundError
from autorollout.references import ImageReference
from reconciler.act import Actuator, Outcome, Result
from reconciler.cache import WorkloadCache
from reconciler.events import EventRecorder, warn_registry_errors
from reconciler.observe import Observation, Observer
from reconciler.plan import WorkloadPlan, plan_cycle
from reconciler.report import (
    CycleReport,
    PullPolicyWarnings,
    log_outcome,
    log_plan,
    log_summary,
    report_registry_errors,
)
from reconciler.workload import RecordError, Workload

BeforeAct = Callable[[WorkloadPlan], Awaitable[None]]
# (index in the cycle's plans, plan, patches sent for that workload so far)
_Pending = tuple[int, WorkloadPlan, int]
# Plans acted on at once; the patch rate limit still paces what is sent. Enough to keep the API
# server busy over its round trip at a lifted limit, few enough not to flood it.
MAX_CONCURRENT_PATCHES = 16


def _plans(observation: Observation) -> list[WorkloadPlan]:
    return plan_cycle(observation.workloads, observation.resolutions, observation.pods)


class Cycle:
    """Runs cycles over the workload cache; `in_patch` is true while a write is in flight."""

    def __init__(
        self,
        *,
        kube: KubeClient,
        cache: WorkloadCache,
        observer: Observer,
        actuator: Actuator,
        events: EventRecorder,
        conflict_pause: float = 0.05,
        before_act: BeforeAct | None = None,
    ) -> None:
        self._kube = kube
        self._cache = cache
        self._observer = observer
        self._actuator = actuator
        self._events = events
        self._conflict_pause = conflict_pause
        self._pull_policies = PullPolicyWarnings()
        self.before_act = before_act

    @property
    def in_patch(self) -> bool:
        """A PATCH in flight or a rollout's Event not written yet: a stop lets the cycle finish them."""
        return self._actuator.writing

    def _in_scope(self, images: Collection[ImageReference] | None) -> list[Workload]:
        workloads = self._cache.workloads()
        return workloads if images is None else self._observer.using(workloads, images)

    async def plan(self, *, images: Collection[ImageReference] | None = None) -> list[WorkloadPlan]:
        """The plans a cycle would make now, without logging or acting (what `status` shows)."""
        workloads = self._in_scope(images)
        return _plans(await self._observer.observe(workloads, fresh_after=self._observer.now()))

    async def run(
        self,
        *,
        images: Collection[ImageReference] | None = None,
        dry_run: bool = False,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> CycleReport:
        """Observe, plan and (unless `dry_run`) act on the cached workloads, or those using `images`."""
        started = time.monotonic()
        # The cycle's start on the resolver's clock: no cached digest older than that is believed.
        fresh_after = self._observer.now()
        before = Counter(self._kube.requests)
        workloads = self._in_scope(images)
        report = CycleReport(dry_run=dry_run, workloads=len(workloads))
        if images is None:
            metrics.WORKLOADS_IN_SCOPE.set(len(workloads))
        self._pull_policies.check(workloads)
        observation = await self._observer.observe(workloads, fresh_after=fresh_after)
        report.unique_images = observation.unique_images
        report.plans = _plans(observation)
        report_registry_errors(report, observation.errors)
        for plan in report.plans:
            log_plan(plan, dry_run=dry_run)
        if not dry_run:
            await warn_registry_errors(self._events, report.plans)
            report.outcomes = await self._act(report, fresh_after, should_stop)
        report.duration = time.monotonic() - started
        report.api_requests = {
            verb: n - before.get(verb, 0)
            for verb, n in self._kube.requests.items()
            if n - before.get(verb, 0)
        }
        log_summary(report)
        return report

    async def _act(
        self, report: CycleReport, fresh_after: float | None, should_stop: Callable[[], bool]
    ) -> list[Outcome]:
        outcomes: dict[int, Outcome] = {}
        pending: list[_Pending] = [(i, p, 0) for i, p in enumerate(report.plans) if p.action is not None]
        first_round = True
        gate = asyncio.Semaphore(MAX_CONCURRENT_PATCHES)

        def may_send() -> bool:
            if not report.interrupted and should_stop():
                report.interrupted = True
            return not report.interrupted

        async def act(i: int, plan: WorkloadPlan, attempts: int, first: bool) -> None:
            async with gate:
                if first and self.before_act is not None:
                    await self.before_act(plan)
                if not may_send():
                    return
                outcome = await self._actuator.apply(plan, attempts=attempts, may_send=may_send)
            if outcome is None:
                return
            outcomes[i] = outcome
            if outcome.result is not Result.CONFLICT:
                log_outcome(outcome)

        try:
            while pending:
                await asyncio.gather(*(act(i, plan, n, first_round) for i, plan, n in pending))
                conflicts = [
                    i for i, _, _ in pending if i in outcomes and outcomes[i].result is Result.CONFLICT
                ]
                if report.interrupted or not conflicts:
                    break
                pending = await self._replan(conflicts, outcomes, fresh_after)
                first_round = False
        finally:
            await self._actuator.drain()
        for i in sorted(outcomes):
            if outcomes[i].result is Result.CONFLICT:  # left by a stop before it was planned again
                log_outcome(outcomes[i])
        return [outcomes[i] for i in sorted(outcomes)]

    async def _replan(
        self, conflicts: Sequence[int], outcomes: dict[int, Outcome], fresh_after: float | None
    ) -> list[_Pending]:
        """Re-read the conflicting workloads, observe and plan them again; settle those gone or unread."""
        # A write to a workload is usually followed by its controller's status write; reading after
        # that one saves a second conflict.
        await asyncio.sleep(self._conflict_pause * max(outcomes[i].attempts for i in conflicts))
        fresh: list[tuple[int, Workload]] = []
        for i in conflicts:
            old = outcomes[i]
            try:
                fresh.append((i, await self._observer.reread(old.plan.workload)))
                continue
            except KubeNotFoundError:
                outcomes[i] = Outcome(old.plan, Result.GONE, old.attempts)
            except (KubeError, RecordError) as err:
                outcomes[i] = Outcome(old.plan, Result.FAILED, old.attempts, f"re-read failed: {err}")
            log_outcome(outcomes[i])
        if not fresh:
            return []
        observation = await self._observer.observe([w for _, w in fresh], fresh_after=fresh_after)
        return [
            (i, plan, outcomes[i].attempts) for (i, _), plan in zip(fresh, _plans(observation), strict=True)
        ]
