# ruff: noqa: ASYNC109 (the `timeout` parameters are httpcore's interface)
"""httpcore's network backend, made to close a socket whose TLS handshake is cancelled.

httpcore closes the TCP stream when the handshake raises an Exception, not when the task is
cancelled (a BaseException): every lookup the webhook abandons at its budget while the registry
has not finished the handshake would leave its socket open until garbage collection.

It also answers httpcore's "is this pooled connection readable?" from the stream's socket, found
once: anyio rebuilds all of a stream's attributes (a getpeername call among them) for every such
question, and httpcore asks it of every pooled connection whenever a request is assigned one.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterable
from typing import Any

import httpcore
import httpx
from httpcore._utils import is_socket_readable

_UNSET: Any = object()


class _CancelSafeStream(httpcore.AsyncNetworkStream):
    def __init__(self, inner: httpcore.AsyncNetworkStream) -> None:
        self._inner = inner
        self._socket: socket.socket | None = _UNSET

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return await self._inner.read(max_bytes, timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        await self._inner.write(buffer, timeout)

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.AsyncNetworkStream:
        try:
            return _CancelSafeStream(await self._inner.start_tls(ssl_context, server_hostname, timeout))
        except BaseException:
            # The socket is closed before the first await in aclose(), so a second cancellation
            # arriving there cannot keep it open.
            await self._inner.aclose()
            raise

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable":
            if self._socket is _UNSET:
                self._socket = self._inner.get_extra_info("socket")
            return is_socket_readable(self._socket)
        return self._inner.get_extra_info(info)


class CancelSafeBackend(httpcore.AsyncNetworkBackend):
    """Wraps httpcore's default backend; only the TLS handshake's cancellation is handled differently."""

    def __init__(self, inner: httpcore.AsyncNetworkBackend) -> None:
        self._inner = inner

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        return _CancelSafeStream(
            await self._inner.connect_tcp(host, port, timeout, local_address, socket_options)
        )

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.AsyncNetworkStream:
        return _CancelSafeStream(await self._inner.connect_unix_socket(path, timeout, socket_options))

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def cancel_safe(transport: httpx.AsyncHTTPTransport) -> httpx.AsyncHTTPTransport:
    """`transport` with its connection pool on CancelSafeBackend (httpx has no public hook for it)."""
    pool = transport._pool
    pool._network_backend = CancelSafeBackend(pool._network_backend)
    return transport
