"""Coalescing: many events for one tag in a window are one image in one round; events that come
while a round runs go to the next; the queue is bounded; the per-source request rate."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from autorollout.events.coalesce import EventCoalescer, PendingImage
from autorollout.events.limits import RequestRate
from autorollout.events.model import event_for_reference

pytestmark = pytest.mark.unit


def test_events_for_one_tag_are_one_pending_image_with_their_sources() -> None:
    clock = iter([10.0, 11.0, 12.0]).__next__

    async def unused(_: Sequence[PendingImage]) -> None:  # pragma: no cover - never dispatched here
        raise AssertionError

    async def body() -> None:
        coalescer = EventCoalescer(unused, window=0.1, clock=clock)
        index = [event_for_reference("r.example/app:main")] * 3  # one per platform manifest and the index
        assert coalescer.add(index, "distribution")
        assert coalescer.add([event_for_reference("r.example/app:main")], "generic")
        assert coalescer.add([event_for_reference("nginx")], "dockerhub")
        [app, nginx] = coalescer.take()
        assert str(app.image) == "r.example/app:main"
        assert (app.received, app.events, app.sources) == (10.0, 4, {"distribution", "generic"})
        assert str(nginx.image) == "docker.io/library/nginx:latest"
        assert coalescer.take() == []

    asyncio.run(body())


def test_the_pending_queue_is_bounded_but_known_images_still_join() -> None:
    async def unused(_: Sequence[PendingImage]) -> None:  # pragma: no cover
        raise AssertionError

    async def body() -> None:
        coalescer = EventCoalescer(unused, window=0.1, max_pending=2)
        assert coalescer.add(
            [event_for_reference("a.example/x:1"), event_for_reference("a.example/y:1")], "generic"
        )
        assert not coalescer.add([event_for_reference("a.example/z:1")], "generic")
        assert coalescer.add([event_for_reference("a.example/x:1")], "generic")
        assert len(coalescer) == 2

    asyncio.run(body())


def test_rounds_one_at_a_time_and_events_during_a_round_wait_for_the_next() -> None:
    rounds: list[list[str]] = []
    release = asyncio.Event()
    started = [asyncio.Event(), asyncio.Event()]

    async def dispatch(batch: Sequence[PendingImage]) -> None:
        rounds.append(sorted(str(p.image) for p in batch))
        started[len(rounds) - 1].set()
        if len(rounds) == 1:
            await release.wait()

    async def body() -> None:
        stop = asyncio.Event()
        coalescer = EventCoalescer(dispatch, window=0.01)
        runner = asyncio.create_task(coalescer.run(stop))
        for _ in range(5):
            coalescer.add([event_for_reference("r.example/app:main")], "distribution")
        await asyncio.wait_for(started[0].wait(), 1)
        coalescer.add([event_for_reference("r.example/app:main")], "distribution")  # during round 1
        coalescer.add([event_for_reference("r.example/db:main")], "distribution")
        await asyncio.sleep(0.05)
        assert len(rounds) == 1  # round 2 waits for round 1
        release.set()
        await asyncio.wait_for(started[1].wait(), 1)
        stop.set()
        await asyncio.wait_for(runner, 1)

    asyncio.run(body())
    assert rounds == [["r.example/app:main"], ["r.example/app:main", "r.example/db:main"]]


def test_a_failing_round_does_not_end_the_rounds() -> None:
    calls = 0
    called = [asyncio.Event(), asyncio.Event()]

    async def dispatch(_: Sequence[PendingImage]) -> None:
        nonlocal calls
        calls += 1
        called[calls - 1].set()
        if calls == 1:
            raise RuntimeError("boom")

    async def body() -> None:
        stop = asyncio.Event()
        coalescer = EventCoalescer(dispatch, window=0)
        runner = asyncio.create_task(coalescer.run(stop))
        coalescer.add([event_for_reference("r.example/a:1")], "generic")
        await asyncio.wait_for(called[0].wait(), 1)
        coalescer.add([event_for_reference("r.example/a:1")], "generic")
        await asyncio.wait_for(called[1].wait(), 1)
        stop.set()
        await asyncio.wait_for(runner, 1)

    asyncio.run(body())
    assert calls == 2


def test_request_rate_allows_a_burst_then_says_how_long_to_wait() -> None:
    now = [0.0]
    rate = RequestRate(2.0, 3, clock=lambda: now[0])
    assert [rate.admit() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert rate.admit() == pytest.approx(0.5)
    now[0] = 0.5
    assert rate.admit() == 0.0
    assert rate.admit() == pytest.approx(0.5)
    now[0] = 100.0
    assert [rate.admit() for _ in range(4)][:3] == [0.0, 0.0, 0.0]  # never more than the burst saved up
