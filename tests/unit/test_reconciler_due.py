"""Schedule overrides: which workloads a wake checks, and when the loop wakes."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from autorollout.config.cron import parse_cron
from reconciler.due import due_between, next_wake, overrides
from reconciler.workload import Workload, parse_workload
from tests.unit.reconciler_objects import workload_object

pytestmark = pytest.mark.unit

GLOBAL = parse_cron("0 */10 * * * *")  # every ten minutes, seconds first as upstream
T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def with_schedule(name: str, schedule: str | None) -> Workload:
    annotations = {"policy.kube-autorollout/schedule": schedule} if schedule else {}
    return parse_workload("Deployment", workload_object(name=name, annotations=annotations))


def at(minute: int, second: int = 0) -> datetime:
    return T0.replace(minute=minute, second=second)


def test_the_loop_wakes_for_the_finest_schedule_in_the_cache() -> None:
    fine = with_schedule("fine", "*/30 * * * * *")
    plain = with_schedule("plain", None)
    specs = overrides([fine, plain])
    assert next_wake(GLOBAL, specs, at(0, 1)) == at(0, 30)
    assert next_wake(GLOBAL, set(), at(0, 1)) == at(10)


def test_a_wake_checks_only_the_workloads_whose_schedule_fired() -> None:
    fine = with_schedule("fine", "*/30 * * * * *")
    coarse = with_schedule("coarse", "0 0 * * *")  # daily, 5 fields
    plain = with_schedule("plain", None)
    due = due_between(GLOBAL, at(0, 0), at(0, 30))
    assert due is not None
    assert [due(w) for w in (fine, coarse, plain)] == [True, False, False]
    on_global = due_between(GLOBAL, at(9, 30), at(10))
    assert on_global is not None
    assert [on_global(w) for w in (fine, coarse, plain)] == [True, False, True]


def test_a_fire_time_missed_while_a_cycle_ran_is_caught_up_at_the_next_wake() -> None:
    coarse = with_schedule("coarse", "5 12 * * *")  # 12:05 daily
    due = due_between(GLOBAL, at(0), at(10))  # the wake meant for 12:05 came at 12:10
    assert due is not None
    assert due(coarse) is True
    later = due_between(GLOBAL, at(10), at(20))
    assert later is not None
    assert later(coarse) is False


def test_an_invalid_schedule_falls_back_to_the_global_one() -> None:
    broken = with_schedule("broken", "every minute")
    assert broken.policy.schedule is None
    assert [str(p) for p in broken.policy.problems] == [
        "annotation policy.kube-autorollout/schedule: cron expression has 2 fields; expected 6 (second "
        "minute hour day-of-month month day-of-week, as upstream) or 5 (minute hour day-of-month month "
        "day-of-week)"
    ]
