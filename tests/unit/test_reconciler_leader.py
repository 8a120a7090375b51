"""When a Lease held by someone else may be taken over: judged by our own clock, never theirs."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from reconciler.leader import LeaderElector, LeaseRecord, micro_time

pytestmark = pytest.mark.unit


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def elector(clock: Clock) -> LeaderElector:
    # No API calls are made by `expired`; the client is never used here.
    return LeaderElector(None, namespace="ns", name="l", identity="me", lease_duration=15, monotonic=clock)  # type: ignore[arg-type]


def record(holder: str, renew: str, duration: int = 15) -> LeaseRecord:
    return LeaseRecord(
        holder=holder, renew_time=renew, duration=duration, transitions=0, resource_version="1"
    )


def test_free_lease_is_expired() -> None:
    assert elector(Clock()).expired(record("", ""))


def test_held_lease_expires_only_after_staying_unchanged_for_its_duration_on_our_clock() -> None:
    clock = Clock()
    e = elector(clock)
    # Its renewTime says 1970: other nodes' clocks are not trusted, only changes we observe.
    held = record("other", "1970-01-01T00:00:00.000000Z")
    assert not e.expired(held)  # first sight starts our own timer
    clock.now += 14.9
    assert not e.expired(held)
    clock.now += 0.2
    assert e.expired(held)


def test_a_renewal_restarts_the_timer() -> None:
    clock = Clock()
    e = elector(clock)
    assert not e.expired(record("other", "t1"))
    clock.now += 14
    assert not e.expired(record("other", "t2"))  # renewed: seen changed
    clock.now += 14
    assert not e.expired(record("other", "t2"))
    clock.now += 2
    assert e.expired(record("other", "t2"))


def test_the_lease_own_duration_wins_over_ours() -> None:
    clock = Clock()
    e = elector(clock)
    short = record("other", "t", duration=2)
    assert not e.expired(short)
    clock.now += 2.5
    assert e.expired(short)


def test_timings() -> None:
    e = LeaderElector(None, namespace="ns", name="l", identity="me", lease_duration=15, renew_interval=5)  # type: ignore[arg-type]
    assert e.renew_deadline == 10.0  # steps down before anyone may take over (15 s)
    assert e.renew_interval == 5.0
    assert not e.is_leader
    assert e.not_leading.is_set()


def test_micro_time_format() -> None:
    assert micro_time(datetime(2025, 1, 2, 3, 4, 5, 6, tzinfo=UTC)) == "2025-01-02T03:04:05.000006Z"
