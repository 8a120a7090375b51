"""The token bucket that bounds rollout PATCHes per second."""

from __future__ import annotations

import asyncio

import pytest

from reconciler.ratelimit import TokenBucket

pytestmark = pytest.mark.unit


class FakeClock:
    """A clock that only moves when the bucket sleeps: waits are measured, never spent."""

    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_first_token_is_free_then_one_per_interval() -> None:
    clock = FakeClock()
    bucket = TokenBucket(5.0, clock=clock, sleep=clock.sleep)
    waits = [bucket.reserve() for _ in range(4)]
    assert waits == pytest.approx([0.0, 0.2, 0.4, 0.6])


def test_burst_saves_up_tokens_but_no_more_than_burst() -> None:
    clock = FakeClock()
    bucket = TokenBucket(2.0, burst=3, clock=clock, sleep=clock.sleep)
    for _ in range(3):
        assert bucket.reserve() == 0.0
    clock.now += 100  # a long quiet period refills to `burst`, not to 200 tokens
    assert [bucket.reserve() for _ in range(4)] == pytest.approx([0.0, 0.0, 0.0, 0.5])


def test_acquire_paces_callers_at_the_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket(10.0, clock=clock, sleep=clock.sleep)

    async def run() -> None:
        await asyncio.gather(*(bucket.acquire() for _ in range(21)))

    start = clock.now
    asyncio.run(run())
    # 21 patches at 10/s: the first immediately, the last two seconds later.
    assert clock.now - start == pytest.approx(2.0)


def test_pause_holds_the_next_caller_for_retry_after() -> None:
    clock = FakeClock()
    bucket = TokenBucket(5.0, clock=clock, sleep=clock.sleep)
    bucket.pause(3.0)
    assert bucket.reserve() == pytest.approx(3.0)


def test_rate_must_be_positive() -> None:
    with pytest.raises(ValueError):
        TokenBucket(0)
