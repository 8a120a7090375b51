"""Rollout windows: cron start, duration and timezone, at their edges and across DST changes."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from autorollout.policy import PolicyError, parse_duration, parse_windows, window_state
from autorollout.policy.durations import format_duration

pytestmark = pytest.mark.unit


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_a_window_is_open_from_its_start_inclusive_to_its_end_exclusive() -> None:
    windows = parse_windows("0 2 * * * 1h UTC")
    assert window_state(windows, at("2026-06-01T01:59:59")).open is False
    assert window_state(windows, at("2026-06-01T01:59:59")).change_at == at("2026-06-01T02:00:00")
    assert window_state(windows, at("2026-06-01T02:00:00")).open is True
    assert window_state(windows, at("2026-06-01T02:59:59")).change_at == at("2026-06-01T03:00:00")
    closed = window_state(windows, at("2026-06-01T03:00:00"))
    assert closed.open is False
    assert closed.change_at == at("2026-06-02T02:00:00")


def test_start_times_are_wall_clock_in_the_named_zone() -> None:
    windows = parse_windows("0 2 * * * 1h Europe/Berlin")  # 02:00 CEST is 00:00 UTC in June
    assert window_state(windows, at("2026-06-01T00:30:00")).open is True
    assert window_state(windows, at("2026-06-01T02:30:00")).open is False


def test_weekday_windows_skip_the_weekend() -> None:
    windows = parse_windows("0 9 * * 1-5 8h UTC")
    saturday = at("2026-06-06T10:00:00")
    state = window_state(windows, saturday)
    assert state.open is False
    assert state.change_at == at("2026-06-08T09:00:00")  # Monday


def test_several_windows_open_when_any_is_and_overlaps_chain() -> None:
    windows = parse_windows("0 2 * * * 2h UTC; 0 3 * * * 2h UTC; 0 12 * * 6 30m UTC")
    state = window_state(windows, at("2026-06-01T03:30:00"))
    assert state.open is True
    assert state.change_at == at("2026-06-01T05:00:00")
    assert window_state(windows, at("2026-06-06T12:10:00")).open is True  # Saturday's own window


def test_a_start_in_the_spring_forward_gap_opens_after_the_gap() -> None:
    # Europe/Berlin, 2026-03-29: 02:00 CET jumps to 03:00 CEST (01:00 UTC); 02:30 does not exist.
    windows = parse_windows("30 2 * * * 1h Europe/Berlin")
    assert window_state(windows, at("2026-03-29T01:10:00")).open is False  # 03:10 CEST
    assert window_state(windows, at("2026-03-29T01:10:00")).change_at == at("2026-03-29T01:30:00")
    assert window_state(windows, at("2026-03-29T01:30:00")).open is True  # 03:30 CEST
    assert window_state(windows, at("2026-03-29T02:30:00")).open is False  # one hour elapsed
    # The next day is plain CEST again: 02:30 CEST is 00:30 UTC.
    assert window_state(windows, at("2026-03-29T02:30:00")).change_at == at("2026-03-30T00:30:00")


def test_a_start_repeated_on_the_fall_back_night_opens_once_for_its_elapsed_duration() -> None:
    # Europe/Berlin, 2026-10-25: 03:00 CEST falls back to 02:00 CET (01:00 UTC); 02:30 happens twice.
    windows = parse_windows("30 2 * * * 2h Europe/Berlin")
    assert window_state(windows, at("2026-10-25T00:29:59")).open is False
    assert window_state(windows, at("2026-10-25T00:30:00")).open is True  # first 02:30 (CEST)
    assert window_state(windows, at("2026-10-25T01:40:00")).open is True  # second 02:40, CET
    assert window_state(windows, at("2026-10-25T02:30:00")).open is False  # two hours elapsed
    assert window_state(windows, at("2026-10-25T02:30:00")).change_at == at("2026-10-26T01:30:00")


def test_before_the_fall_back_a_window_across_it_closes_after_its_elapsed_duration() -> None:
    windows = parse_windows("0 1 * * * 3h America/New_York")  # 2026-11-01 02:00 EDT -> 01:00 EST
    start = at("2026-11-01T05:00:00")  # 01:00 EDT
    assert window_state(windows, start).open is True
    assert window_state(windows, start).change_at == at("2026-11-01T08:00:00")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0 2 * * * 1h", "has 6 fields; expected 7"),
        ("0 25 * * * 1h UTC", "start: invalid cron expression"),
        ("0 2 * * * soon UTC", "not a duration"),
        ("0 2 * * * 0s UTC", "longer than 0s"),
        ("0 2 * * * 1h Mars/Olympus", "not an IANA zone name"),
        ("0 2 * * * 1h UTC; nonsense", "window 2: a window has 1 fields"),
        (" ; ", "no window given"),
    ],
)
def test_invalid_windows_say_what_is_wrong_in_one_line(text: str, message: str) -> None:
    with pytest.raises(PolicyError, match=message) as caught:
        parse_windows(text)
    assert "\n" not in str(caught.value)


def test_durations_read_and_print_the_short_forms() -> None:
    written = ("0", "45", "90s", "10m", "1h30m", "2d")
    assert [parse_duration(t) for t in written] == [0, 45, 90, 600, 5400, 172800]
    assert format_duration(5400) == "1h30m"
    assert format_duration(249.2) == "4m10s"
    assert format_duration(0) == "0s"
    for bad in ("", "-5", "1.5h", "10 m", "400d"):
        with pytest.raises(PolicyError):
            parse_duration(bad)
