"""Cron parsing and fire times of the reconcile schedule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from reconciler.schedule import CronSchedule, ScheduleError

pytestmark = pytest.mark.unit

T0 = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)


def fires(expression: str, start: datetime, n: int) -> list[datetime]:
    schedule = CronSchedule.parse(expression)
    out, at = [], start
    for _ in range(n):
        at = schedule.next_after(at)
        out.append(at)
    return out


def test_upstream_default_fires_at_second_0_and_45_of_every_minute() -> None:
    assert fires("*/45 * * * * *", T0, 4) == [
        T0 + timedelta(seconds=45),
        T0 + timedelta(minutes=1),
        T0 + timedelta(minutes=1, seconds=45),
        T0 + timedelta(minutes=2),
    ]


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("0 */5 * * * *", [T0 + timedelta(minutes=5), T0 + timedelta(minutes=10)]),  # seconds first
        ("30 0 * * * *", [T0 + timedelta(seconds=30), T0 + timedelta(hours=1, seconds=30)]),
        ("0 0 13 * * *", [T0 + timedelta(hours=1), T0 + timedelta(days=1, hours=1)]),
        ("*/5 * * * *", [T0 + timedelta(minutes=5), T0 + timedelta(minutes=10)]),  # classic 5 fields
        ("@hourly", [T0 + timedelta(hours=1), T0 + timedelta(hours=2)]),
    ],
)
def test_fire_times(expression: str, expected: list[datetime]) -> None:
    assert fires(expression, T0, 2) == expected


def test_weekday_names_in_six_field_form() -> None:
    # 2025-03-01 is a Saturday: the next weekday 09:00:00 is Monday the 3rd.
    assert fires("0 0 9 * * MON-FRI", T0, 1) == [datetime(2025, 3, 3, 9, 0, 0, tzinfo=UTC)]


def test_six_fields_are_seconds_first_not_seconds_last() -> None:
    schedule = CronSchedule.parse("15 * * * * *")
    assert schedule.seconds_first
    assert schedule.next_after(T0) == T0 + timedelta(seconds=15)
    assert not CronSchedule.parse("15 * * * *").seconds_first


def test_next_after_is_strictly_after() -> None:
    schedule = CronSchedule.parse("0 * * * * *")
    assert schedule.next_after(T0) == T0 + timedelta(minutes=1)


@pytest.mark.parametrize(
    "expression", ["", "* * * *", "* * * * * * * *", "61 * * * * *", "* * 32 * * *", "nonsense"]
)
def test_invalid_expressions_are_rejected_with_a_reason(expression: str) -> None:
    with pytest.raises(ScheduleError) as info:
        CronSchedule.parse(expression)
    assert str(info.value)


def test_tick_after_a_quick_cycle_skips_nothing() -> None:
    schedule = CronSchedule.parse("*/45 * * * * *")
    tick = schedule.tick_after(T0, T0 + timedelta(seconds=2))
    assert (tick.at, tick.skipped) == (T0 + timedelta(seconds=45), 0)


def test_tick_after_a_slow_cycle_skips_missed_ticks_instead_of_queueing_them() -> None:
    schedule = CronSchedule.parse("*/45 * * * * *")
    # Due at 12:00:00, ended at 12:02:00: 12:00:45, 12:01:00, 12:01:45 and 12:02:00 were missed.
    tick = schedule.tick_after(T0, T0 + timedelta(minutes=2))
    assert tick.at == T0 + timedelta(minutes=2, seconds=45)
    assert tick.skipped == 4
    assert not tick.capped


def test_skip_count_is_capped_for_very_long_stalls() -> None:
    schedule = CronSchedule.parse("* * * * * *")
    end = T0 + timedelta(hours=2)
    tick = schedule.tick_after(T0, end)
    assert tick.capped
    assert tick.at == end + timedelta(seconds=1)
