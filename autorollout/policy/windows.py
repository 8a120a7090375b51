"""Rollout windows: a 5-field cron start, a duration and an explicit IANA timezone, several allowed.

`0 2 * * 1-5 2h Europe/Berlin; 0 12 * * 6 30m UTC` opens on weekdays at 02:00 Berlin time for two
hours and on Saturdays at 12:00 UTC for thirty minutes. Start times are wall-clock times in the zone;
durations are elapsed time. Across DST changes a start that falls into the spring-forward gap opens
at the same distance after the gap's start (02:30 in a 02:00-03:00 gap opens at 03:30, as PEP 495
reads a missing time), and a start that occurs twice on the fall-back night opens once, at its first
occurrence.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from autorollout.config.cron import parse_cron
from autorollout.policy.durations import parse_duration
from autorollout.policy.errors import PolicyError

_NEAR = timedelta(hours=3)  # how far around `now` an offset change can matter (largest DST shift is 2h)
_MAX_STEPS = 2_000  # cron fires looked at per question: a minutely cron within an hour of slack fits


@dataclass(frozen=True, slots=True)
class Window:
    """One window: opens when `cron` fires in `zone` (wall clock), stays open `seconds`."""

    cron: str  # croniter's 5-field expression
    seconds: int
    zone: str

    @property
    def tz(self) -> tzinfo:
        return _zone(self.zone)

    def __str__(self) -> str:
        return f"{self.cron} {self.seconds}s {self.zone}"


@dataclass(frozen=True, slots=True)
class WindowState:
    """Whether a set of windows is open at an instant, and until when (open) or from when (closed)."""

    open: bool
    change_at: datetime | None  # closes at (open) / opens at (closed); None: never again


@functools.lru_cache(maxsize=256)
def _zone(name: str) -> tzinfo:
    return ZoneInfo(name)


def parse_window(text: str) -> Window:
    """`<minute> <hour> <day> <month> <weekday> <duration> <timezone>`; raises PolicyError."""
    fields = text.split()
    if len(fields) != 7:
        raise PolicyError(f"a window has {len(fields)} fields; expected 7: cron (5), duration, zone")
    cron, duration, zone = " ".join(fields[:5]), fields[5], fields[6]
    try:
        spec = parse_cron(cron)
    except ValueError as exc:
        raise PolicyError(f"start: {exc}") from None
    seconds = parse_duration(duration)
    if seconds <= 0:
        raise PolicyError("duration must be longer than 0s")
    try:
        _zone(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise PolicyError("timezone is not an IANA zone name (e.g. Europe/Berlin)") from None
    return Window(spec.croniter_expression, seconds, zone)


@functools.lru_cache(maxsize=1024)
def parse_windows(text: str) -> tuple[Window, ...]:
    """Windows separated by `;`; raises PolicyError naming the first bad one (1-based)."""
    parts = [p for p in text.split(";") if p.strip()]
    if not parts:
        raise PolicyError("no window given")
    windows = []
    for i, part in enumerate(parts, 1):
        try:
            windows.append(parse_window(part))
        except PolicyError as exc:
            raise PolicyError(f"window {i}: {exc}" if len(parts) > 1 else str(exc)) from None
    return tuple(windows)


def _absolute(naive: datetime, tz: tzinfo) -> datetime:
    # fold=0: a missing (gap) time reads with the offset before the change, a repeated one as the first.
    return naive.replace(tzinfo=tz, fold=0).astimezone(UTC)


def _slack(now: datetime, tz: tzinfo) -> timedelta:
    """How much later than `now`'s wall time a start may lie and still be absolute-earlier."""
    here = now.astimezone(tz).utcoffset() or timedelta(0)
    offsets = [(now + d).astimezone(tz).utcoffset() or timedelta(0) for d in (-_NEAR, _NEAR)]
    return max(timedelta(0), *(o - here for o in offsets))


def last_start(window: Window, now: datetime) -> datetime | None:
    """The latest absolute start at or before `now` (aware), or None within the look-back."""
    tz = window.tz
    wall = now.astimezone(tz).replace(tzinfo=None) + _slack(now, tz)
    # croniter's get_prev is strict: from one microsecond later it includes a start at `wall` itself.
    it = croniter(window.cron, wall + timedelta(microseconds=1))
    for _ in range(_MAX_STEPS):
        start = _absolute(it.get_prev(datetime), tz)
        if start <= now:
            return start
    return None


def next_start(window: Window, now: datetime) -> datetime | None:
    """The earliest absolute start strictly after `now` (aware)."""
    tz = window.tz
    wall = now.astimezone(tz).replace(tzinfo=None) - _slack(now, tz) - _NEAR
    it = croniter(window.cron, wall)
    for _ in range(_MAX_STEPS):
        try:
            start = _absolute(it.get_next(datetime), tz)
        except (StopIteration, ValueError, OverflowError):  # pragma: no cover - croniter's end of time
            return None
        if start > now:
            return start
    return None


def window_state(windows: tuple[Window, ...], now: datetime) -> WindowState:
    """Open if any window is; closes when the last open one does (overlaps chained), else opens next."""
    closes: datetime | None = None
    for window in windows:
        start = last_start(window, now)
        if start is not None and now < start + timedelta(seconds=window.seconds):
            end = start + timedelta(seconds=window.seconds)
            closes = end if closes is None else max(closes, end)
    if closes is not None:
        return WindowState(True, closes)
    opens = [s for s in (next_start(w, now) for w in windows) if s is not None]
    return WindowState(False, min(opens) if opens else None)
