"""Cron schedules as upstream writes them (6 fields, seconds first) or classic 5-field, validated.

Pure: fire times are computed from given instants. Messages never quote the expression (it may have
come from the environment).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from croniter import CroniterNotAlphaError, croniter

__all__ = ["CronSpec", "parse_cron"]

_CRON_CHECK_START = datetime(2024, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class CronSpec:
    """A validated cron schedule.

    `expression` is as written; `croniter_expression` has croniter's field order (for 6 fields the
    seconds move from first, upstream's order, to last, croniter's); `has_seconds` says whether the
    schedule has second resolution.
    """

    expression: str
    croniter_expression: str
    has_seconds: bool

    def next_after(self, moment: datetime) -> datetime:
        """The first time strictly after `moment` the schedule fires (same tzinfo as `moment`)."""
        result: datetime = croniter(self.croniter_expression, moment).get_next(datetime)
        return result


def parse_cron(expression: str) -> CronSpec:
    """Validate a cron expression: 6 fields with seconds first (upstream), 5 fields, or an @macro.

    Raises ValueError with a one-line reason.
    """
    if not isinstance(expression, str) or not expression.strip():
        raise ValueError("cron expression is empty")
    fields = expression.split()
    if len(fields) == 6:
        normalized, has_seconds = " ".join([*fields[1:], fields[0]]), True
    elif len(fields) == 5 or (len(fields) == 1 and fields[0].startswith("@")):
        normalized, has_seconds = " ".join(fields), False
    else:
        raise ValueError(
            f"cron expression has {len(fields)} fields; expected 6 (second minute hour "
            "day-of-month month day-of-week, as upstream) or 5 (minute hour day-of-month month day-of-week)"
        )
    try:
        croniter(normalized, _CRON_CHECK_START).get_next(float)
    except (ValueError, KeyError, IndexError, TypeError, OverflowError) as exc:
        raise ValueError(f"invalid cron expression: {_croniter_reason(exc)}") from None
    return CronSpec(expression=expression, croniter_expression=normalized, has_seconds=has_seconds)


def _croniter_reason(exc: Exception) -> str:
    """croniter's reason in words of our own: its messages quote the expression (or part of it), and
    their field numbers refer to croniter's order rather than the user's."""
    text = str(exc)
    for fragment, reason in _CRONITER_REASONS:
        if fragment in text:
            return reason
    if isinstance(exc, CroniterNotAlphaError):
        return "a field holds something cron does not accept (numbers, *, ranges a-b, lists a,b, steps /n)"
    return "not a valid schedule"


_CRONITER_REASONS = (
    ("failed to find next date", "it never fires (no date matches)"),
    ("out of range", "a value is out of range"),
    ("out of bands", "a value is out of range"),
    ("step", "a step (/n) is not acceptable"),
    ("Question mark", "? is only allowed in day-of-month and day-of-week"),
    ("columns", "unknown @macro (@yearly, @monthly, @weekly, @daily, @hourly)"),
)
