"""The scheduled loop, a thin driver of cycles: fire `Cycle.run` on the cron schedule (never
overlapping; missed ticks skipped), only while holding the Lease when leader election is on, resync
the cache between cycles, and stop cleanly on request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from autorollout import metrics
from autorollout.kube import KubeError
from reconciler.cache import WorkloadCache
from reconciler.cycle import Cycle
from reconciler.due import Due, due_between, next_wake, overrides
from reconciler.leader import LeaderElector
from reconciler.schedule import CronSchedule

log = logging.getLogger("kube_autorollout.reconciler")


class ScheduledLoop:
    """Starts the cache (retrying), then runs a cycle per tick while leading, until stopped."""

    def __init__(
        self,
        *,
        cycle: Cycle,
        cache: WorkloadCache,
        schedule: CronSchedule,
        start: Callable[[], Awaitable[None]],
        elector: LeaderElector | None,
        namespaces: Sequence[str] | None,
    ) -> None:
        self._cycle = cycle
        self._cache = cache
        self._schedule = schedule
        self._start = start
        self._elector = elector
        self._namespaces = namespaces

    async def run(self, stop: asyncio.Event) -> None:
        """Run cycles on the cron schedule until `stop` is set; with leader election only while leading."""
        elector_task: asyncio.Task[None] | None = None
        elector_stop = asyncio.Event()
        if self._elector is not None:
            elector_task = asyncio.create_task(self._elector.run(elector_stop), name="leader election")
        try:
            if not await self._start_with_retry(stop):
                return
            log.info(
                "reconciler started",
                extra={
                    "fields": {
                        "schedule": self._schedule.expression,
                        "namespaces": self._namespaces or "all",
                        "workloads": len(self._cache),
                        "leader_election": self._elector is not None,
                    }
                },
            )
            await self._loop(stop)
        finally:
            elector_stop.set()
            if elector_task is not None:
                await elector_task

    async def _start_with_retry(self, stop: asyncio.Event) -> bool:
        delay = 1.0
        while not stop.is_set():
            try:
                await self._start()
                return True
            except KubeError as exc:
                log.error("cannot list workloads; retrying", extra={"fields": {"error": str(exc)}})
                await _wait_any([stop], timeout=delay)
                delay = min(delay * 2, 30.0)
        return False

    async def _loop(self, stop: asyncio.Event) -> None:
        elector = self._elector
        if elector is not None:
            await _wait_any([stop, elector.decided])
        last = datetime.now(UTC)
        tick = self._next_wake(last)
        while not stop.is_set():
            if elector is not None and not elector.is_leader:
                log.info("standing by: another replica holds the lease")
                await _wait_any([stop, elector.leading])
                last = datetime.now(UTC)
                tick = self._next_wake(last)
                continue
            lost = [elector.not_leading] if elector is not None else []
            delay = (tick - datetime.now(UTC)).total_seconds()
            if delay > 0:
                await _wait_any([stop, *lost], timeout=delay)
                if stop.is_set() or any(e.is_set() for e in lost):
                    continue
                if datetime.now(UTC) < tick:
                    continue
            await self._guarded_cycle(stop, lost, due_between(self._schedule.spec, last, tick))
            await self._cache.resync()
            now = datetime.now(UTC)
            next_tick = self._schedule.tick_after(tick, now)
            if next_tick.skipped:
                metrics.CYCLES_SKIPPED.inc(next_tick.skipped)
                log.warning(
                    "cycle outlasted the schedule; missed ticks skipped",
                    extra={"fields": {"skipped": next_tick.skipped, "next": next_tick.at.isoformat()}},
                )
            last = tick
            tick = min(next_tick.at, self._next_wake(now))

    def _next_wake(self, after: datetime) -> datetime:
        """The next fire time of the global schedule or of a workload's own (schedule override)."""
        return next_wake(self._schedule.spec, overrides(self._cache.workloads()), after)

    async def _guarded_cycle(
        self, stop: asyncio.Event, lost: list[asyncio.Event], due: Due | None = None
    ) -> None:
        """One cycle over the workloads `due`, cancelled at once if the lease is lost; on stop, a patch
        in flight may finish."""
        started = time.monotonic()

        def should_stop() -> bool:
            return stop.is_set() or any(e.is_set() for e in lost)

        cycle = asyncio.create_task(self._cycle.run(should_stop=should_stop, due=due), name="reconcile cycle")
        outcome = "ok"
        try:
            while not cycle.done():
                await _wait_any([stop, *lost], task=cycle)
                if any(e.is_set() for e in lost):
                    log.warning("lease lost: abandoning the cycle")
                    cycle.cancel()
                    outcome = "abandoned"
                    break
                if stop.is_set() and not self._cycle.in_patch:
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
            metrics.LAST_CYCLE_TIMESTAMP.labels(
                outcome="success" if outcome == "ok" else "failure"
            ).set_to_current_time()
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
