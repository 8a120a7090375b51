"""The life of a long-running command: its parts and a real probe server (on a free loopback port)
run until a signal or a failure, then every part is stopped and waited for."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest

from autorollout.cli.lifecycle import serve_until_signalled
from autorollout.probes import ProbeServer, Readiness

pytestmark = pytest.mark.unit


def _probes() -> ProbeServer:
    return ProbeServer(Readiness(), host="127.0.0.1", port=0)


def test_a_failing_part_stops_the_others_and_ends_the_command() -> None:
    finished: list[str] = []

    async def scenario() -> None:
        stop = asyncio.Event()

        async def failing() -> None:
            await asyncio.sleep(0.05)
            raise RuntimeError("part failed")

        async def waiting() -> None:
            await stop.wait()
            finished.append("waiting")

        await serve_until_signalled(
            {"failing": failing(), "waiting": waiting()}, probes=_probes(), stoppers=[stop.set]
        )

    with pytest.raises(RuntimeError, match="part failed"):
        asyncio.run(asyncio.wait_for(scenario(), 10))
    assert finished == ["waiting"]


def test_sigterm_stops_every_part_once() -> None:
    stops: list[str] = []

    async def scenario() -> None:
        stop = asyncio.Event()

        async def waiting() -> None:
            await stop.wait()

        asyncio.get_running_loop().call_later(0.1, os.kill, os.getpid(), signal.SIGTERM)
        await serve_until_signalled(
            {"a": waiting(), "b": waiting()},
            probes=_probes(),
            stoppers=[lambda: stops.append("asked"), stop.set],
        )

    asyncio.run(asyncio.wait_for(scenario(), 10))
    assert stops == ["asked"]


def test_when_every_part_returns_the_probe_server_stops_too() -> None:
    async def scenario() -> None:
        async def quick() -> None:
            await asyncio.sleep(0.05)

        await serve_until_signalled({"quick": quick()}, probes=_probes(), stoppers=[])

    asyncio.run(asyncio.wait_for(scenario(), 10))
