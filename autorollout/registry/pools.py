"""One HTTP connection pool per registry host, so that a slow host only uses up its own connections.

With one shared pool, lookups stuck at a few silent registries hold every pooled connection and
lookups of a healthy registry wait for the pool (then fail) without a request reaching it. Here
each (scheme, host, port) gets its own `httpx.AsyncHTTPTransport`, created on first use; pools with
no request in progress are dropped, oldest first, once there are more than `max_hosts` of them.
"""

from __future__ import annotations

import ssl
from collections import OrderedDict
from collections.abc import AsyncIterator
from typing import Final

import httpx

from autorollout.registry.network import cancel_safe

DEFAULT_MAX_HOSTS: Final = 256

PoolKey = tuple[bytes, bytes, int | None]


class _Pool:
    def __init__(self, transport: httpx.AsyncHTTPTransport) -> None:
        self.transport = transport
        self.active = 0  # requests sent whose response stream is not closed yet


class _TrackedStream(httpx.AsyncByteStream):
    """A response stream that tells its pool when it is closed."""

    def __init__(self, stream: httpx.AsyncByteStream, pool: _Pool) -> None:
        self._stream = stream
        self._pool: _Pool | None = pool

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._stream:
            yield chunk

    async def aclose(self) -> None:
        try:
            await self._stream.aclose()
        finally:
            self._release()

    def _release(self) -> None:
        if self._pool is not None:
            self._pool.active -= 1
            self._pool = None


class HostPools(httpx.AsyncBaseTransport):
    """An httpx transport with a connection pool of `limits` for each host it talks to."""

    def __init__(
        self, *, verify: ssl.SSLContext, limits: httpx.Limits, max_hosts: int = DEFAULT_MAX_HOSTS
    ) -> None:
        self._verify = verify
        self._limits = limits
        self._max_hosts = max(1, max_hosts)
        self._pools: OrderedDict[PoolKey, _Pool] = OrderedDict()

    def __len__(self) -> int:
        return len(self._pools)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        pool = self._pool_for(request.url)  # counted as active from here
        try:
            await self._evict_idle()
            response = await pool.transport.handle_async_request(request)
        except BaseException:
            pool.active -= 1
            raise
        assert isinstance(response.stream, httpx.AsyncByteStream)
        response.stream = _TrackedStream(response.stream, pool)
        return response

    async def aclose(self) -> None:
        pools = [p.transport for p in self._pools.values()]
        self._pools.clear()
        for transport in pools:
            await transport.aclose()

    def _pool_for(self, url: httpx.URL) -> _Pool:
        key: PoolKey = (url.raw_scheme, url.raw_host, url.port)
        pool = self._pools.get(key)
        if pool is not None:
            self._pools.move_to_end(key)
            pool.active += 1
            return pool
        # Counted as active at once, so that no eviction can close it before its request is sent.
        transport = cancel_safe(httpx.AsyncHTTPTransport(verify=self._verify, limits=self._limits))
        pool = self._pools[key] = _Pool(transport)
        pool.active += 1
        return pool

    async def _evict_idle(self) -> None:
        excess = len(self._pools) - self._max_hosts
        if excess <= 0:
            return
        idle = [key for key, pool in self._pools.items() if pool.active == 0][:excess]
        for key in idle:
            await self._pools.pop(key).transport.aclose()


__all__ = ["DEFAULT_MAX_HOSTS", "HostPools"]
