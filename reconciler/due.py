"""Which workloads a scheduled cycle checks: those on the global schedule when it fired, and those
with their own schedule (`policy.kube-autorollout/schedule`) when theirs fired, pure.

The loop wakes at the earliest next fire time of the global schedule and of every override in the
cache, so an override finer than the global schedule is honoured, and a coarser one skips the
global ticks in between. Fire times missed while a cycle ran are caught up once, at the next wake.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime

from autorollout.config.cron import CronSpec
from reconciler.workload import Workload

Due = Callable[[Workload], bool]


def overrides(workloads: Iterable[Workload]) -> set[CronSpec]:
    """The distinct schedule overrides among `workloads`."""
    return {w.policy.schedule for w in workloads if w.policy.schedule is not None}


def next_wake(default: CronSpec, schedules: Iterable[CronSpec], after: datetime) -> datetime:
    """The earliest fire time strictly after `after` of the global schedule or any override."""
    return min(spec.next_after(after) for spec in (default, *schedules))


def fired(spec: CronSpec, since: datetime, until: datetime) -> bool:
    """Whether `spec` fires in (since, until]."""
    return spec.next_after(since) <= until


def due_between(default: CronSpec, since: datetime, until: datetime) -> Due | None:
    """The workloads a wake at `until` checks (the previous wake was at `since`); None: every one."""
    default_fired = fired(default, since, until)
    known: dict[CronSpec, bool] = {}

    def due(workload: Workload) -> bool:
        spec = workload.policy.schedule
        if spec is None:
            return default_fired
        found = known.get(spec)
        if found is None:
            found = known[spec] = fired(spec, since, until)
        return found

    return due
