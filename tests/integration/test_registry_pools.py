"""HostPools against the real registry and a silent port: one pool per (scheme, host, port), idle
pools dropped beyond `max_hosts`, a pool with a request in progress never dropped."""

from __future__ import annotations

import asyncio
import ssl

import httpx
import pytest

from autorollout.registry.pools import HostPools
from tests.harness.registry import LocalRegistry
from tests.harness.sockets import established_from
from tests.harness.tarpit import Tarpit

pytestmark = pytest.mark.integration

LIMITS = httpx.Limits(max_connections=2, max_keepalive_connections=2)


def test_one_pool_per_host_and_idle_ones_are_dropped_beyond_max_hosts(registry_plain: LocalRegistry) -> None:
    port = registry_plain.host.rsplit(":", 1)[1]
    with Tarpit() as pit:

        async def scenario() -> tuple[int, int, list[int]]:
            pools = HostPools(verify=ssl.create_default_context(), limits=LIMITS, max_hosts=2)
            async with httpx.AsyncClient(transport=pools, timeout=httpx.Timeout(5.0)) as client:
                # A request held open at the silent port: its pool must survive the others.
                stuck = asyncio.create_task(client.get(f"http://{pit.host}/v2/"))
                await asyncio.sleep(0.2)
                statuses = []
                for host in (
                    f"127.0.0.1:{port}",
                    f"localhost:{port}",
                    f"127.0.0.1:{port}",
                    f"localhost:{port}",
                ):
                    statuses.append((await client.get(f"http://{host}/v2/")).status_code)
                held = len(pools)
                assert not stuck.done()
                stuck.cancel()
                await asyncio.gather(stuck, return_exceptions=True)
                await client.get(f"http://127.0.0.1:{port}/v2/")
                return held, len(pools), statuses

        held, after, statuses = asyncio.run(scenario())
    assert statuses == [200, 200, 200, 200]
    assert held == 2  # the silent port's pool and the latest healthy one
    assert after == 2


def test_a_cancelled_tls_handshake_closes_its_socket_at_once() -> None:
    """httpcore closes the socket of a failed handshake but not of a cancelled one; ours must."""
    with Tarpit() as pit:

        async def scenario() -> list[int]:
            pools = HostPools(verify=ssl.create_default_context(), limits=httpx.Limits(max_connections=8))
            async with httpx.AsyncClient(transport=pools, timeout=httpx.Timeout(30.0)) as client:
                requests = [asyncio.create_task(client.get(f"https://{pit.host}/v2/r{i}")) for i in range(8)]
                await asyncio.sleep(0.3)  # connected, each stuck in its handshake
                opened = established_from(pit.port)
                for request in requests:
                    request.cancel()
                await asyncio.gather(*requests, return_exceptions=True)
                await asyncio.sleep(0.1)
                return [opened, established_from(pit.port)]

        opened, left = asyncio.run(scenario())
    print(f"cancelled handshakes: {opened} connections open, {left} left 0.1 s after the cancellation")
    assert (opened, left) == (8, 0)
