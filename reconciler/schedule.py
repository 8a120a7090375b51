"""The reconcile schedule: cron expressions as upstream writes them (seconds first), or classic 5-field.

Pure: fire times are computed from given instants; the loop does the sleeping.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from croniter import croniter

from autorollout.config import CronSpec, parse_cron
from autorollout.errors import AutorolloutError

# Counting skipped ticks of a one-second schedule after an hour-long stall must stay cheap.
_MAX_COUNTED_MISSES = 1000


class ScheduleError(AutorolloutError, ValueError):
    """A cron expression that neither the 6-field (seconds first) nor the 5-field form accepts."""


@dataclass(frozen=True, slots=True)
class Tick:
    """The next fire time and how many fire times were skipped before it (capped, see `capped`)."""

    at: datetime
    skipped: int
    capped: bool = False


@dataclass(frozen=True, slots=True)
class CronSchedule:
    """A validated `cronSchedule`; validation is the config's (`parse_cron`), so both agree."""

    expression: str
    spec: CronSpec

    @classmethod
    def parse(cls, expression: str) -> CronSchedule:
        """Accept `sec min hour dom month dow` (upstream), `min hour dom month dow`, or an @macro."""
        try:
            return cls(expression, parse_cron(expression))
        except ValueError as exc:
            raise ScheduleError(str(exc)) from None

    @property
    def seconds_first(self) -> bool:
        return self.spec.has_seconds

    def next_after(self, instant: datetime) -> datetime:
        """The first fire time strictly after `instant` (UTC)."""
        return self.spec.next_after(instant.astimezone(UTC))

    def tick_after(self, previous: datetime, now: datetime) -> Tick:
        """The next fire time after a cycle that was due at `previous` and ended at `now`.

        Fire times in (previous, now] were missed while the cycle ran: they are skipped, not queued,
        so cycles never overlap and never run back to back to catch up.
        """
        it = croniter(self.spec.croniter_expression, previous.astimezone(UTC))
        skipped = 0
        while True:
            candidate: datetime = it.get_next(datetime)
            if candidate > now:
                return Tick(candidate, skipped)
            skipped += 1
            if skipped >= _MAX_COUNTED_MISSES:
                return Tick(self.next_after(now), skipped, capped=True)
