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
from datetime import UTC, datetime

from autorollout import metrics
from autorollout.kube import KubeClient, KubeError, KubeNotFoundError
from autorollout.policy.decide import WindowMemo
from autorollout.policy.model import PolicyDefaults
from autorollout.references import ImageReference
from reconciler.act import Actuator, Outcome, Result
from reconciler.cache import WorkloadCache
from reconciler.events import EventRecorder, PolicyWarnings, warn_registry_errors
from reconciler.gate import GateResult, apply_policy
from reconciler.health import HealthWatcher
from reconciler.holds import HeldChange, apply_holds
from reconciler.nodes import NodePlatforms
from reconciler.observe import Observation, Observer
from reconciler.plan import PlanMemo, WorkloadPlan, plan_cycle
from reconciler.platforms import compare_plans, log_platforms, observe_platforms, warn_index_fallback
from reconciler.report import (
    CycleReport,
    PendingGauge,
    PullPolicyWarnings,
    log_outcome,
    log_pending,
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


def _plans(observation: Observation, policy: PolicyDefaults, memo: PlanMemo) -> list[WorkloadPlan]:
    plans = plan_cycle(observation.workloads, observation.resolutions, observation.pods, memo)
    # Platform comparison works on the plans (never on the memo's): they are frozen, it replaces them.
    return compare_plans(plans, observation, policy) if observation.nodes is not None else plans


def _wall_clock() -> datetime:
    return datetime.now(UTC)


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
        policy: PolicyDefaults | None = None,
        clock: Callable[[], datetime] = _wall_clock,
        nodes: NodePlatforms | None = None,
        health: HealthWatcher | None = None,
        hold_others: bool = False,
    ) -> None:
        self._kube = kube
        self._cache = cache
        self._observer = observer
        self._actuator = actuator
        self._events = events
        self._conflict_pause = conflict_pause
        self._pull_policies = PullPolicyWarnings()
        self.before_act = before_act
        self._policy = policy or PolicyDefaults()
        self._clock = clock
        self._windows = WindowMemo()
        self._plans = PlanMemo()
        self._policy_warnings = PolicyWarnings(events)
        self._pending = PendingGauge()
        self._nodes = nodes or NodePlatforms(kube, follow=False)
        self._compared_by_index: list[Workload] = []
        self._health = health
        self._hold_others = hold_others

    @property
    def in_patch(self) -> bool:
        """A PATCH in flight or a rollout's Event not written yet: a stop lets the cycle finish them."""
        return self._actuator.writing

    def _gate(
        self, observation: Observation, *, already_rolling: int = 0, held: list[HeldChange] | None = None
    ) -> GateResult:
        """Plan, drop changes to held digests (into `held`), then pass the plans through the rollout
        policy (settle, cooldown, windows, cap)."""
        plans, dropped = self._holds(_plans(observation, self._policy, self._plans))
        if held is not None:
            held.extend(dropped)
        return apply_policy(
            plans,
            self._policy,
            now=self._clock(),
            cluster=self._cache.workloads() if self._policy.max_in_flight else (),
            memo=self._windows,
            already_rolling=already_rolling,
        )

    async def _observe(self, workloads: Sequence[Workload], fresh_after: float | None) -> Observation:
        """Observe, plus what platform comparison needs for the workloads in platform mode."""
        observation = await self._observer.observe(workloads, fresh_after=fresh_after)
        self._compared_by_index = await observe_platforms(
            self._observer, self._nodes, observation, self._policy, fresh_after=fresh_after
        )
        return observation

    def _holds(self, plans: list[WorkloadPlan]) -> tuple[list[WorkloadPlan], list[HeldChange]]:
        elsewhere = self._health.held_digests() if self._health is not None and self._hold_others else ()
        return apply_holds(plans, now=self._clock(), elsewhere=elsewhere)

    def _in_scope(self, images: Collection[ImageReference] | None) -> list[Workload]:
        workloads = self._cache.workloads()
        return workloads if images is None else self._observer.using(workloads, images)

    async def plan(self, *, images: Collection[ImageReference] | None = None) -> list[WorkloadPlan]:
        """The plans a cycle would make now, without logging or acting (what `status` shows)."""
        workloads = self._in_scope(images)
        return self._gate(await self._observe(workloads, self._observer.now())).plans

    async def run(
        self,
        *,
        images: Collection[ImageReference] | None = None,
        dry_run: bool = False,
        should_stop: Callable[[], bool] = lambda: False,
        due: Callable[[Workload], bool] | None = None,
    ) -> CycleReport:
        """Observe, plan and (unless `dry_run`) act on the cached workloads, or those using `images`;
        `due` (a scheduled cycle's) narrows the cached workloads to those whose schedule fired."""
        started = time.monotonic()
        # The cycle's start on the resolver's clock: no cached digest older than that is believed.
        fresh_after = self._observer.now()
        before = Counter(self._kube.requests)
        workloads = self._in_scope(images)
        if images is None:
            metrics.WORKLOADS_IN_SCOPE.set(len(workloads))
        if due is not None:
            workloads = [w for w in workloads if due(w)]
        report = CycleReport(dry_run=dry_run, workloads=len(workloads))
        self._pull_policies.check(workloads)
        observation = await self._observe(workloads, fresh_after)
        report.unique_images = observation.unique_images
        held: list[HeldChange] = []
        gated = self._gate(observation, held=held)
        report.plans = gated.plans
        report.in_flight = gated.in_flight
        report_registry_errors(report, observation.errors)
        for plan in report.plans:
            log_plan(plan, dry_run=dry_run)
            log_platforms(plan, dry_run=dry_run)
            log_pending(plan)
        self._pending.update(report.plans, self._cache)
        if not dry_run:
            await self._policy_warnings.warn(gated.problems)
            if self._compared_by_index and self._nodes.unavailable:
                await warn_index_fallback(self._events, self._compared_by_index, self._nodes.unavailable)
            await warn_registry_errors(self._events, report.plans)
            report.outcomes = await self._act(report, fresh_after, should_stop)
            if self._health is not None:
                await self._health.tell_held(held)
                self._health.wake()  # judged beside the cycle, not in its time or its request counts
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
        observation = await self._observe([w for _, w in fresh], fresh_after)
        # This cycle's rollouts hold slots the cache may not show yet.
        rolled = sum(1 for o in outcomes.values() if o.result is Result.ROLLED_OUT)
        plans = self._gate(observation, already_rolling=rolled).plans
        return [(i, plan, outcomes[i].attempts) for (i, _), plan in zip(fresh, plans, strict=True)]
