"""The health watch (docs/health.md): follows the rollouts this reconciler started, from the watch-fed
cache, and writes each one's verdict on the workload.

The cache tells it about every change (`on_change`); it keeps the few keys whose record carries a
watch record, and judges those (pure: autorollout.health) when they change, every few seconds while
any is watched, and after each cycle. Nothing is done per workload while none is watched. Pods are
read only when a verdict is due (why it failed; whether ready pods run the recorded digest) and, for a
workload marked mixed, at most once per resync period until the mark clears. Everything pending
lives in annotations, so a restarted process, or another replica, resumes where this one stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime

from autorollout import metrics
from autorollout.health import (
    STABLE_SECONDS,
    Judgement,
    RolledDigest,
    Verdict,
    WatchRecord,
    confirm,
    judge,
    parse_watch,
)
from autorollout.kube import (
    JSON_PATCH,
    ConflictError,
    InvalidError,
    KubeClient,
    KubeError,
    KubeNotFoundError,
    workload_path,
)
from autorollout.notify import Notice, NoticeOutcome
from reconciler.cache import WorkloadCache
from reconciler.events import (
    REASON_FAILED,
    REASON_HELD,
    REASON_MIXED,
    REASON_SUCCEEDED,
    EventRecorder,
)
from reconciler.health_pods import MixedDigest, mixed_digests, parse_mixed, pod_health
from reconciler.holds import HeldChange
from reconciler.plan import recorded_digest
from reconciler.pods import own_pods
from reconciler.verdicts import (
    failed_message,
    lift_command,
    mixed_message,
    mixed_patch,
    succeeded_message,
    verdict_patch,
)
from reconciler.workload import Workload, WorkloadKey, log_fields

log = logging.getLogger("kube_autorollout.reconciler.health")

#: How often watched rollouts are judged between changes (a StatefulSet's deadline passes silently).
TICK_SECONDS = 2.0
_MAX_REMEMBERED = 10_000


def _wall_clock() -> datetime:
    return datetime.now(UTC)


class HealthWatcher:
    """Judges watched rollouts; `active()` false (a standby replica) judges nothing."""

    def __init__(
        self,
        kube: KubeClient,
        cache: WorkloadCache,
        events: EventRecorder,
        *,
        default_deadline: int,
        recheck_seconds: float,
        clock: Callable[[], datetime] = _wall_clock,
        monotonic: Callable[[], float] = time.monotonic,
        active: Callable[[], bool] = lambda: True,
    ) -> None:
        self._kube = kube
        self._cache = cache
        self._events = events
        self._default_deadline = default_deadline
        self._recheck_seconds = recheck_seconds
        self._clock = clock
        self._monotonic = monotonic
        self.active = active
        self._watched: dict[WorkloadKey, str] = {}
        self._settled: dict[WorkloadKey, str] = {}  # watch records judged here, until the cache drops them
        self._held: dict[WorkloadKey, dict[str, str]] = {}
        self._mixed: dict[WorkloadKey, dict[str, str]] = {}
        self._mixed_read: dict[WorkloadKey, float] = {}
        self._pods_read: dict[WorkloadKey, float] = {}
        self._held_told: set[tuple[str, str, str]] = set()
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        cache.subscribe(self.on_change)

    # -- what the cache says -------------------------------------------------------------------

    def on_change(self, key: WorkloadKey, record: Workload | None) -> None:
        """A record changed (None: gone); keeps the watched, held and mixed sets and their metrics."""
        if (record is None or not (record.watch or record.holds or record.mixed)) and not (
            key in self._watched or key in self._held or key in self._mixed
        ):
            return  # the steady state: nothing to follow
        watch = record.watch if record is not None else None
        if watch:
            if self._watched.get(key) != watch:
                self._watched[key] = watch
                self._wake.set()
        elif self._watched.pop(key, None) is not None:
            self._settled.pop(key, None)
            self._pods_read.pop(key, None)
        holds = record.holds if record is not None else None
        if holds:
            self._held[key] = holds
        else:
            self._held.pop(key, None)
        self._track_mixed(key, record.mixed if record is not None else None)
        metrics.ROLLOUTS_WATCHED.set(len(self._watched))
        metrics.HELD_WORKLOADS.set(len(self._held))

    def _track_mixed(self, key: WorkloadKey, marks: Mapping[str, str] | None) -> None:
        before = self._mixed.get(key, {})
        for container in before.keys() - (marks or {}).keys():
            with contextlib.suppress(KeyError):
                metrics.MIXED_DIGEST_PODS.remove(key.namespace, key.kind, key.name, container)
        if not marks:
            self._mixed.pop(key, None)
            self._mixed_read.pop(key, None)
            return
        self._mixed[key] = dict(marks)
        for container, value in marks.items():
            mark = parse_mixed(value)
            gauge = metrics.MIXED_DIGEST_PODS.labels(key.namespace, key.kind, key.name, container)
            gauge.set(mark.pods if mark is not None else 0)

    def held_digests(self) -> set[str]:
        """Every digest a workload is held at (for `rolloutPolicy.holdOtherWorkloads`)."""
        return {digest for holds in self._held.values() for digest in holds.values()}

    @property
    def watched(self) -> int:
        return len(self._watched)

    # -- judging -------------------------------------------------------------------------------

    def start(self) -> None:
        """Judge watched rollouts as they change and every TICK_SECONDS (until `aclose`)."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="health watch")

    def wake(self) -> None:
        """Judge soon (after a cycle): a no-op while nothing is watched or marked."""
        if self._watched or self._mixed:
            self._wake.set()

    async def aclose(self) -> None:
        task, self._task = self._task, None
        self._closing = True
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        # The flag too: 3.11's wait primitives can swallow a cancel that races a wake-up.
        while not self._closing:
            timeout = TICK_SECONDS if self._watched or self._mixed else None
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._wake.wait()
            self._wake.clear()
            try:
                await self.check()
            except Exception:  # a bug here must not end the watch
                log.exception("health check crashed")

    async def check(self) -> None:
        """Judge every watched rollout now, and recheck the mixed marks that are due."""
        if not (self._watched or self._mixed) or not self.active():
            return
        async with self._lock:
            for key in list(self._watched):
                record = self._cache.get(key)
                if record is None or not record.watch:
                    continue
                if self._settled.get(key) != record.watch:
                    await self._judge(record)
            now = self._monotonic()
            for key in list(self._mixed):
                if (
                    key in self._watched
                    or now - self._mixed_read.get(key, float("-inf")) < self._recheck_seconds
                ):
                    continue
                self._mixed_read[key] = now
                if (record := self._cache.get(key)) is not None and not record.holds:
                    await self._recheck_mixed(record)

    async def _judge(self, workload: Workload) -> None:
        watch = parse_watch(workload.watch)
        if watch is None:
            log.warning("unreadable watch record; not judged", extra={"fields": log_fields(workload)})
            self._settled[workload.key] = workload.watch or ""
            return
        now = self._clock()
        judgement = judge(workload.kind, workload.health, watch, now, self._default_deadline)
        if judgement.verdict is Verdict.WATCHING:
            return
        if judgement.verdict is Verdict.DONE:
            # Done says the controller: the new pods confirm, read at most every STABLE_SECONDS / 2.
            last = self._pods_read.get(workload.key)
            if last is not None and self._monotonic() - last < STABLE_SECONDS / 2:
                return
            self._pods_read[workload.key] = self._monotonic()
        pods = await self._pods(workload)
        problem, stable = pod_health(pods or (), now, STABLE_SECONDS) if pods is not None else ("", False)
        judgement = confirm(judgement, problem, stable)
        if judgement.verdict is Verdict.WATCHING:
            return
        log.info(
            "verdict due",
            extra={"fields": log_fields(workload, verdict=str(judgement.verdict), reason=judgement.reason)},
        )
        reason, mixed = "", None
        if judgement.verdict is Verdict.FAILED:
            reason = "; ".join(dict.fromkeys(p for p in (judgement.reason, problem) if p))
        elif pods is not None:
            mixed = mixed_digests(pods, self._recorded(workload))
        ops = verdict_patch(workload, watch, judgement, now=now, reason=reason, mixed=mixed)
        if not await self._patch(workload, ops, "verdict"):
            return
        self._settled[workload.key] = workload.watch or ""
        metrics.ROLLOUT_VERDICTS.labels(kind=workload.kind, verdict=str(judgement.verdict)).inc()
        metrics.ROLLOUT_SECONDS.labels(verdict=str(judgement.verdict)).observe(judgement.took)
        if judgement.verdict is Verdict.SUCCEEDED:
            await self._tell_succeeded(workload, watch, judgement, now)
        else:
            await self._tell_failed(workload, watch, judgement, reason, now)
        await self._tell_mixed(workload, mixed or {})

    def _recorded(self, workload: Workload) -> dict[str, str]:
        found: dict[str, str] = {}
        for spec in workload.watched():
            if (digest := recorded_digest(workload, spec)) is not None:
                found[spec.name] = digest
        return found

    async def _pods(self, workload: Workload) -> list[dict[str, object]] | None:
        try:
            return list(await own_pods(self._kube, workload))
        except KubeError as exc:
            log.warning("pods not read", extra={"fields": log_fields(workload, error=str(exc))})
            return None

    async def _patch(self, workload: Workload, ops: list[dict[str, object]], what: str) -> bool:
        path = workload_path(workload.kind, workload.namespace, workload.name)
        try:
            await self._kube.patch(path, ops, JSON_PATCH)
        except (ConflictError, InvalidError) as exc:
            # Judged already (another replica, or this process before a restart), or rolled again.
            fields = log_fields(workload, error=str(exc))
            log.info(f"{what} not written: the workload changed", extra={"fields": fields})
            self._settled[workload.key] = workload.watch or ""
            return False
        except KubeNotFoundError:
            return False
        except KubeError as exc:
            log.warning(f"{what} not written", extra={"fields": log_fields(workload, error=str(exc))})
            return False
        return True

    async def _recheck_mixed(self, workload: Workload) -> None:
        pods = await self._pods(workload)
        if pods is None:
            return
        mixed = mixed_digests(pods, self._recorded(workload))
        ops = mixed_patch(workload, mixed)
        if ops and await self._patch(workload, ops, "mixed digests"):
            await self._tell_mixed(workload, mixed)

    # -- telling -------------------------------------------------------------------------------

    def _notice(
        self, w: Workload, outcome: NoticeOutcome, now: datetime, rolled: RolledDigest, detail: str
    ) -> Notice:
        spec = w.container(rolled.container)
        return Notice(
            outcome=outcome, kind=w.kind, namespace=w.namespace, name=w.name, at=now,
            container=rolled.container, image=spec.image if spec is not None else None,
            old_digest=rolled.old, new_digest=rolled.new, detail=detail,
        )  # fmt: skip

    async def _tell_succeeded(
        self, workload: Workload, watch: WatchRecord, judgement: Judgement, now: datetime
    ) -> None:
        message = succeeded_message(watch, judgement)
        log.info(
            "rollout succeeded", extra={"fields": log_fields(workload, seconds=round(judgement.took, 1))}
        )
        await self._events.emit(workload, type_="Normal", reason=REASON_SUCCEEDED, message=message)
        for r in watch.rolled:
            self._events.notices.submit(self._notice(workload, NoticeOutcome.SUCCEEDED, now, r, message))

    async def _tell_failed(
        self, workload: Workload, watch: WatchRecord, judgement: Judgement, reason: str, now: datetime
    ) -> None:
        message = failed_message(workload, watch, judgement, reason)
        log.warning("rollout failed; held", extra={"fields": log_fields(workload, reason=message)})
        await self._events.emit(workload, type_="Warning", reason=REASON_FAILED, message=message)
        for r in watch.rolled:
            self._events.notices.submit(self._notice(workload, NoticeOutcome.FAILED, now, r, message))
            lift = lift_command(workload, r.container)
            held = f"held at {r.new}: not rolled to it again until the tag moves on; lift: {lift}"
            self._events.notices.submit(self._notice(workload, NoticeOutcome.HELD, now, r, held))

    async def _tell_mixed(self, workload: Workload, mixed: Mapping[str, MixedDigest]) -> None:
        before = workload.mixed or {}
        for container, mark in sorted(mixed.items()):
            old = parse_mixed(before.get(container))
            if old is not None and old.digest == mark.digest:
                continue  # said already when it was first marked
            spec = workload.container(container)
            recorded = recorded_digest(workload, spec) if spec is not None else None
            message = mixed_message(container, mark, recorded)
            log.warning(
                "mixed digests",
                extra={"fields": log_fields(workload, container=container, digest=mark.digest)},
            )
            await self._events.emit(workload, type_="Warning", reason=REASON_MIXED, message=message)

    async def tell_held(self, dropped: Sequence[HeldChange]) -> None:
        """A Warning Event and a HELD notice per workload, container and digest that a cycle did not
        roll to because another workload's rollout to it failed (`holdOtherWorkloads`), once per
        process. A workload's own hold was told by its RolloutFailed Event."""
        for held in dropped:
            w, change = held.plan.workload, held.change
            key = (w.uid, change.container, change.new)
            if held.own or key in self._held_told:
                continue
            if len(self._held_told) > _MAX_REMEMBERED:
                self._held_told.clear()
            self._held_told.add(key)
            message = (
                f"container {change.container}: not rolled to {change.new} ({change.image}): a rollout of "
                "another workload to that digest failed; it rolls when the tag moves on"
            )
            fields = log_fields(w, container=change.container, digest=change.new)
            log.info("rollout held", extra={"fields": fields})
            await self._events.emit(w, type_="Warning", reason=REASON_HELD, message=message)
            self._events.notices.submit(
                Notice(
                    outcome=NoticeOutcome.HELD, kind=w.kind, namespace=w.namespace, name=w.name,
                    at=self._clock(), container=change.container, image=change.image,
                    old_digest=change.old, new_digest=change.new, detail=message,
                )
            )  # fmt: skip
