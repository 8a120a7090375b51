"""The reconcile cycle and the scheduled loop around it.

One cycle: take the cached workloads, resolve each unique image once, plan, act, log one line per
decision and one summary. `run_forever` fires cycles on the cron schedule (never overlapping; missed
ticks skipped), only while holding the Lease when leader election is on, and stops cleanly on request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from autorollout import metrics
from autorollout.annotations import restarted_at_key
from autorollout.config import Config
from autorollout.credentials import CredentialStore, RegistryCredentials
from autorollout.kube import KubeClient, KubeError
from autorollout.kube.pull_secrets import PullSecretReader
from autorollout.references import ImageReference, InvalidReferenceError, parse_image_reference
from autorollout.registry.errors import RegistryError
from autorollout.registry.manifests import ManifestDigest
from autorollout.registry.resolver import DigestResolver, Lookup
from reconciler.act import REASON_REGISTRY_ERROR, Actuator, EventRecorder, Outcome, Result
from reconciler.leader import LeaderElector
from reconciler.plan import (
    Adoption,
    ContainerState,
    Resolution,
    Rollout,
    Unchecked,
    WorkloadPlan,
    needs_running_digests,
    plan_workload,
    recorded_digest,
)
from reconciler.pods import PodReport, read_pods
from reconciler.ratelimit import TokenBucket
from reconciler.records import Workload
from reconciler.schedule import CronSchedule
from reconciler.workloads import WorkloadCache

log = logging.getLogger("kube_autorollout.reconciler")

# Adoption patches only write metadata (no pods restart), so they may go faster than rollouts.
ADOPTION_RATE_FACTOR = 10.0
_POD_LOOKUP_CONCURRENCY = 8
_EVENT_CONCURRENCY = 8
_REFERENCE_MEMO_MAX = 50_000

BeforeAct = Callable[[WorkloadPlan], Awaitable[None]]


def scope_namespaces(config: Config, own_namespace: str) -> list[str] | None:
    """The namespaces in scope: all (None), the configured list, or the one it runs in (as upstream)."""
    if config.reconciler.all_namespaces:
        return None
    return list(config.reconciler.namespaces) or [own_namespace]


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

    def count(self, result: Result) -> int:
        return sum(1 for o in self.outcomes if o.result is result)

    @property
    def failed(self) -> bool:
        return bool(self.registry_errors) or self.count(Result.FAILED) > 0

    @property
    def planned_rollouts(self) -> list[WorkloadPlan]:
        return [p for p in self.plans if isinstance(p.action, Rollout)]

    @property
    def planned_adoptions(self) -> list[WorkloadPlan]:
        return [p for p in self.plans if isinstance(p.action, Adoption)]


def _fields(workload: Workload, **more: object) -> dict[str, object]:
    return {"workload": f"{workload.namespace}/{workload.name}", "kind": workload.kind, **more}


class Reconciler:
    """Everything a reconcile cycle needs, composed once by the command line (`reconcile`, `run`)."""

    def __init__(
        self,
        *,
        config: Config,
        kube: KubeClient,
        resolver: DigestResolver,
        credentials: CredentialStore,
        pull_secrets: PullSecretReader,
        identity: str,
        namespaces: Sequence[str] | None = (),
        before_act: BeforeAct | None = None,
    ) -> None:
        """`namespaces=()` means: as configured (see `scope_namespaces`); None means all namespaces."""
        self.config = config
        self.kube = kube
        self.identity = identity
        self.namespaces = scope_namespaces(config, kube.namespace) if namespaces == () else namespaces
        self.schedule = CronSchedule.parse(config.cron_schedule)
        self.cache = WorkloadCache(
            kube, namespaces=self.namespaces, resync_seconds=config.reconciler.resync_seconds
        )
        self.events = EventRecorder(kube, instance=identity)
        rate = config.reconciler.max_patches_per_second
        self.actuator = Actuator(
            kube,
            self.events,
            restarted_key=restarted_at_key(config.feature_flags.enable_kubectl_annotation),
            rollouts=TokenBucket(rate, burst=1.0),
            adoptions=TokenBucket(rate * ADOPTION_RATE_FACTOR, burst=rate * ADOPTION_RATE_FACTOR),
        )
        self.before_act = before_act
        self._resolver = resolver
        self._credentials = credentials
        self._pull_secrets = pull_secrets
        self._references: dict[str, ImageReference | InvalidReferenceError] = {}
        self._policy_warned: set[tuple[str, str, str]] = set()
        self._in_patch = False
        self._started = False
        # The cycle's start on the resolver's clock: no cached digest older than that is believed.
        self._fresh_after: float | None = None
        self.elector: LeaderElector | None = None
        self._elector_kube: KubeClient | None = None
        if config.leader_election.enabled:
            # Its own connection: lease renewals neither queue behind a cycle's requests nor show up
            # in a cycle's API request counts.
            self._elector_kube = KubeClient(kube.settings)
            self.elector = LeaderElector(
                self._elector_kube,
                namespace=kube.namespace,
                name=config.leader_election.lease_name,
                identity=identity,
                lease_duration=config.leader_election.lease_duration_seconds,
                renew_interval=config.leader_election.renew_seconds,
            )

    # -- looking up --------------------------------------------------------------------------------

    def _reference(self, image: str) -> ImageReference | InvalidReferenceError:
        found = self._references.get(image)
        if found is None:
            if len(self._references) >= _REFERENCE_MEMO_MAX:
                self._references.clear()
            try:
                found = parse_image_reference(image)
            except InvalidReferenceError as exc:
                found = exc
            self._references[image] = found
        return found

    async def _lookups(self, workload: Workload) -> dict[str, Lookup | Unchecked]:
        """Per container: the registry lookup to make, or why none is made."""
        pull: list[Mapping[str, RegistryCredentials]] = []
        if workload.pull_secrets:
            pull = list(await self._pull_secrets.read(workload.namespace, workload.pull_secrets))
        found: dict[str, Lookup | Unchecked] = {}
        for container in workload.containers:
            ref = self._reference(container.image)
            if isinstance(ref, InvalidReferenceError):
                found[container.name] = Unchecked(f"invalid image reference: {ref.reason}")
            elif ref.is_pinned:
                found[container.name] = Unchecked("pinned by digest", pinned=True)
            else:
                found[container.name] = Lookup(ref, self._credentials.lookup(ref.registry, pull))
        return found

    async def _resolve(
        self, lookups: Iterable[Lookup], *, platforms: bool = False
    ) -> dict[Lookup, ManifestDigest | RegistryError]:
        unique = set(lookups)
        if not unique:
            return {}
        return await self._resolver.resolve_many(
            unique,
            timeout=self.config.reconciler.cycle_timeout_seconds,
            platforms=platforms,
            fresh_after=self._fresh_after,
        )

    async def _observe(
        self, workloads: Sequence[Workload]
    ) -> tuple[list[WorkloadPlan], dict[str, tuple[RegistryError, int]], int]:
        """Plans, the registry errors by image (with how many workloads use it), unique image count."""
        per_workload = [await self._lookups(w) for w in workloads]
        lookups = {x for found in per_workload for x in found.values() if isinstance(x, Lookup)}
        results = await self._resolve(lookups)
        resolutions: list[dict[str, Resolution]] = [
            {name: results[x] if isinstance(x, Lookup) else x for name, x in found.items()}
            for found in per_workload
        ]
        # Adoption only: platform digests and what the newest pods run (never in a steady state).
        adopting = [
            i for i, w in enumerate(workloads) if not w.paused and needs_running_digests(w, resolutions[i])
        ]
        pods: dict[int, PodReport | None] = {}
        if adopting:
            pods, resolutions = await self._adoption_facts(workloads, per_workload, resolutions, adopting)
        plans = [plan_workload(w, resolutions[i], pods.get(i)) for i, w in enumerate(workloads)]
        users = Counter(x for found in per_workload for x in set(found.values()) if isinstance(x, Lookup))
        errors = {str(x.reference): (r, users[x]) for x, r in results.items() if isinstance(r, RegistryError)}
        return plans, errors, len(lookups)

    async def _adoption_facts(
        self,
        workloads: Sequence[Workload],
        per_workload: list[dict[str, Lookup | Unchecked]],
        resolutions: list[dict[str, Resolution]],
        adopting: list[int],
    ) -> tuple[dict[int, PodReport | None], list[dict[str, Resolution]]]:
        unrecorded = {
            x
            for i in adopting
            for c in workloads[i].containers
            if isinstance(x := per_workload[i].get(c.name), Lookup)
            and recorded_digest(workloads[i], c) is None
        }
        with_platforms = await self._resolve(unrecorded, platforms=True)
        for i in adopting:
            for name, x in per_workload[i].items():
                got = with_platforms.get(x) if isinstance(x, Lookup) else None
                if isinstance(got, ManifestDigest):
                    resolutions[i][name] = got
        gate = asyncio.Semaphore(_POD_LOOKUP_CONCURRENCY)

        async def pods_of(i: int) -> tuple[int, PodReport | None]:
            async with gate:
                try:
                    return i, await read_pods(self.kube, workloads[i])
                except KubeError as exc:
                    log.warning("pods not read", extra={"fields": _fields(workloads[i], error=str(exc))})
                    return i, None

        pods = dict(await asyncio.gather(*(pods_of(i) for i in adopting)))
        return pods, resolutions

    async def observe(self) -> list[WorkloadPlan]:
        """Plans for every cached workload, computed as a cycle would, without logging or acting."""
        self._fresh_after = self._resolver.now()
        plans, _, _ = await self._observe(self.cache.workloads())
        return plans

    async def replan(self, workload: Workload) -> WorkloadPlan:
        """Plan one freshly read workload again (after its guarded patch was rejected)."""
        plans, _, _ = await self._observe([workload])
        return plans[0]

    # -- one cycle ---------------------------------------------------------------------------------

    async def run_cycle(
        self, *, dry_run: bool = False, should_stop: Callable[[], bool] = lambda: False
    ) -> CycleReport:
        """Observe, plan and (unless `dry_run`) act on every workload in the cache."""
        started = time.monotonic()
        self._fresh_after = self._resolver.now()
        before = Counter(self.kube.requests)
        workloads = self.cache.workloads()
        report = CycleReport(dry_run=dry_run, workloads=len(workloads))
        metrics.WORKLOADS_IN_SCOPE.set(len(workloads))
        self._warn_pull_policies(workloads)
        plans, errors, report.unique_images = await self._observe(workloads)
        report.plans = plans
        report.registry_errors = {
            image: f"{type(e).__name__}: {e.message or e}" for image, (e, _) in errors.items()
        }
        for image, (error, affected) in sorted(errors.items()):
            log.warning(
                "registry lookup failed; no rollout for this image",
                extra={
                    "fields": {
                        "image": image,
                        "error": f"{type(error).__name__}: {error.message or error}",
                        "workloads": affected,
                    }
                },
            )
        for plan in plans:
            self._log_plan(plan, dry_run=dry_run)
        if not dry_run:
            await self._warn_registry_errors(plans)
            for plan in plans:
                if plan.action is None:
                    continue
                if self.before_act is not None:
                    await self.before_act(plan)
                if should_stop():
                    report.interrupted = True
                    break
                self._in_patch = True
                try:
                    outcome = await self.actuator.apply(plan, self.replan)
                finally:
                    self._in_patch = False
                report.outcomes.append(outcome)
                self._log_outcome(outcome)
        report.duration = time.monotonic() - started
        report.api_requests = {
            verb: n - before.get(verb, 0) for verb, n in self.kube.requests.items() if n - before.get(verb, 0)
        }
        self._log_summary(report)
        return report

    def _warn_pull_policies(self, workloads: Sequence[Workload]) -> None:
        for w in workloads:
            for c in w.containers:
                policy = c.pull_policy or "unset"
                if policy == "Always" or (w.uid, c.name, policy) in self._policy_warned:
                    continue
                self._policy_warned.add((w.uid, c.name, policy))
                log.warning(
                    "imagePullPolicy is not Always: a rollout may restart pods on the old image",
                    extra={"fields": _fields(w, container=c.name, image=c.image, image_pull_policy=policy)},
                )

    async def _warn_registry_errors(self, plans: Sequence[WorkloadPlan]) -> None:
        gate = asyncio.Semaphore(_EVENT_CONCURRENCY)

        async def warn(plan: WorkloadPlan) -> None:
            for verdict in plan.errors:
                async with gate:
                    await self.events.warn_once(
                        plan.workload,
                        verdict.container.image,
                        reason=REASON_REGISTRY_ERROR,
                        message=(
                            f"container {verdict.container.name}: cannot resolve {verdict.container.image}: "
                            f"{verdict.detail}; no rollout until it resolves"
                        ),
                    )

        await asyncio.gather(*(warn(p) for p in plans if p.errors))

    def _log_plan(self, plan: WorkloadPlan, *, dry_run: bool) -> None:
        w = plan.workload
        if plan.skipped:
            log.info(f"skipped: {plan.skipped}", extra={"fields": _fields(w)})
            return
        for verdict in plan.verdicts if plan.action is None else ():
            if verdict.state is ContainerState.WAITING:
                log.debug(
                    "adoption waits: no Ready pod of its own reports what runs; nothing recorded",
                    extra={"fields": _fields(w, container=verdict.container.name, pods=verdict.detail)},
                )
        prefix = "would " if dry_run else ""
        action = plan.action
        if isinstance(action, Rollout):
            for change in action.changes:
                log.info(
                    f"{prefix}roll out: tag moved",
                    extra={
                        "fields": _fields(
                            w, container=change.container, image=change.image, old=change.old, new=change.new
                        )
                    },
                )
        elif isinstance(action, Adoption):
            for name, value in action.records.items():
                log.info(
                    f"{prefix}record digest without rollout (adoption)",
                    extra={"fields": _fields(w, container=name, recorded=value)},
                )

    def _log_outcome(self, outcome: Outcome) -> None:
        w = outcome.plan.workload
        if outcome.result is Result.ROLLED_OUT:
            metrics.ROLLOUTS.labels(kind=w.kind).inc()
        elif outcome.result is Result.ADOPTED:
            metrics.ADOPTIONS.labels(kind=w.kind).inc()
        fields = _fields(w, result=str(outcome.result), attempts=outcome.attempts)
        if outcome.result is Result.FAILED:
            log.error("patch failed", extra={"fields": {**fields, "error": outcome.error}})
        elif outcome.result in (Result.ROLLED_OUT, Result.ADOPTED):
            log.info("patched", extra={"fields": fields})
        else:
            log.info("nothing patched", extra={"fields": fields})

    def _log_summary(self, report: CycleReport) -> None:
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
                    "interrupted": report.interrupted,
                    "duration_ms": round(report.duration * 1000, 1),
                    "api_requests": report.api_requests,
                }
            },
        )

    # -- the scheduled loop ------------------------------------------------------------------------

    async def start(self, *, watch: bool = True) -> None:
        """Fill the workload cache (one LIST per kind and namespace), then follow it with watches."""
        await self.cache.start(watch=watch)
        self._started = True

    def readiness(self) -> str | None:
        """None once the workload cache is filled, else why not (a readiness check for `run`)."""
        return None if self._started else "workload cache not filled yet"

    async def aclose(self) -> None:
        await self.cache.aclose()
        if self._elector_kube is not None:
            await self._elector_kube.aclose()

    async def _start_with_retry(self, stop: asyncio.Event) -> bool:
        delay = 1.0
        while not stop.is_set():
            try:
                await self.start()
                return True
            except KubeError as exc:
                log.error("cannot list workloads; retrying", extra={"fields": {"error": str(exc)}})
                await _wait_any([stop], timeout=delay)
                delay = min(delay * 2, 30.0)
        return False

    async def run_forever(self, stop: asyncio.Event) -> None:
        """Run cycles on the cron schedule until `stop` is set; with leader election only while leading."""
        elector_task: asyncio.Task[None] | None = None
        elector_stop = asyncio.Event()
        if self.elector is not None:
            elector_task = asyncio.create_task(self.elector.run(elector_stop), name="leader election")
        try:
            if not await self._start_with_retry(stop):
                return
            log.info(
                "reconciler started",
                extra={
                    "fields": {
                        "schedule": self.schedule.expression,
                        "namespaces": self.namespaces or "all",
                        "workloads": len(self.cache),
                        "leader_election": self.elector is not None,
                    }
                },
            )
            await self._loop(stop)
        finally:
            elector_stop.set()
            if elector_task is not None:
                await elector_task
            await self.aclose()

    async def _loop(self, stop: asyncio.Event) -> None:
        if self.elector is not None:
            await _wait_any([stop, self.elector.decided])
        tick = self.schedule.next_after(datetime.now(UTC))
        while not stop.is_set():
            if self.elector is not None and not self.elector.is_leader:
                log.info("standing by: another replica holds the lease")
                await _wait_any([stop, self.elector.leading])
                tick = self.schedule.next_after(datetime.now(UTC))
                continue
            lost = [self.elector.not_leading] if self.elector is not None else []
            delay = (tick - datetime.now(UTC)).total_seconds()
            if delay > 0:
                await _wait_any([stop, *lost], timeout=delay)
                if stop.is_set() or any(e.is_set() for e in lost):
                    continue
                if datetime.now(UTC) < tick:
                    continue
            await self._guarded_cycle(stop, lost)
            await self.cache.resync()
            next_tick = self.schedule.tick_after(tick, datetime.now(UTC))
            if next_tick.skipped:
                metrics.CYCLES_SKIPPED.inc(next_tick.skipped)
                log.warning(
                    "cycle outlasted the schedule; missed ticks skipped",
                    extra={"fields": {"skipped": next_tick.skipped, "next": next_tick.at.isoformat()}},
                )
            tick = next_tick.at

    async def _guarded_cycle(self, stop: asyncio.Event, lost: list[asyncio.Event]) -> None:
        """One cycle, cancelled at once if the lease is lost; on stop, a patch in flight may finish."""
        started = time.monotonic()

        def should_stop() -> bool:
            return stop.is_set() or any(e.is_set() for e in lost)

        cycle = asyncio.create_task(self.run_cycle(should_stop=should_stop), name="reconcile cycle")
        outcome = "ok"
        try:
            while not cycle.done():
                await _wait_any([stop, *lost], task=cycle)
                if any(e.is_set() for e in lost):
                    log.warning("lease lost: abandoning the cycle")
                    cycle.cancel()
                    outcome = "abandoned"
                    break
                if stop.is_set() and not self._in_patch:
                    cycle.cancel()
                    outcome = "stopped"
                    break
                if stop.is_set():
                    await asyncio.wait({cycle})
            with contextlib.suppress(asyncio.CancelledError):
                report = await cycle
                outcome = "failed" if report.failed else outcome
        except Exception:
            outcome = "error"
            log.exception("cycle crashed")
        finally:
            metrics.CYCLES.labels(outcome=outcome).inc()
            metrics.CYCLE_DURATION.observe(time.monotonic() - started)


async def _wait_any(
    events: Sequence[asyncio.Event],
    *,
    timeout: float | None = None,  # noqa: ASYNC109 (a wait bound, not a cancel scope)
    task: asyncio.Future[Any] | None = None,
) -> None:
    """Return when any event is set, `task` finishes, or `timeout` passes."""
    waiters: set[asyncio.Future[Any]] = {asyncio.ensure_future(e.wait()) for e in events}
    if task is not None:
        waiters.add(task)
    try:
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            if waiter is not task:
                waiter.cancel()
