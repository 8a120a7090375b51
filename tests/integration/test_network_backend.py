"""The cancel-safe network backend (registry and API clients): pooled connections are reused, a
connection the server closed while idle is noticed before a request is sent on it, and the pool's
idle checks no longer rebuild anyio's stream attributes (a getpeername call among them) each time."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import anyio.streams.tls
import httpx
import pytest

from autorollout.registry.network import cancel_safe
from certs.mint import write_bundle

pytestmark = pytest.mark.integration

ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok"


class KeepAliveServer:
    """HTTPS on loopback answering every request with `ok`; counts connections; closes each
    connection after `close_after` answers (0: never)."""

    def __init__(self, context: ssl.SSLContext, close_after: int = 0) -> None:
        self.context, self.close_after, self.connections = context, close_after, 0
        self.port = 0

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        answered = 0
        try:
            while await reader.readuntil(b"\r\n\r\n"):
                writer.write(ANSWER)
                await writer.drain()
                answered += 1
                if self.close_after and answered >= self.close_after:
                    writer.transport.abort()  # the TCP connection goes at once, no TLS goodbye
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()

    async def start(self) -> asyncio.Server:
        server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.context)
        self.port = server.sockets[0].getsockname()[1]
        return server


@pytest.fixture
def contexts(tmp_path: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    bundle = write_bundle(tmp_path / "tls", ["localhost"], ["127.0.0.1"])
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(bundle.tls_cert, bundle.tls_key)
    return server, ssl.create_default_context(cafile=str(bundle.ca_cert))


async def _client(verify: ssl.SSLContext) -> AsyncIterator[httpx.AsyncClient]:
    transport = cancel_safe(httpx.AsyncHTTPTransport(verify=verify))
    async with httpx.AsyncClient(transport=transport, trust_env=False, timeout=5) as client:
        yield client


def test_pooled_connections_are_reused_without_rebuilding_stream_attributes(
    contexts: tuple[ssl.SSLContext, ssl.SSLContext], monkeypatch: pytest.MonkeyPatch
) -> None:
    built = 0
    original = anyio.streams.tls.TLSStream.extra_attributes

    def counting(self: anyio.streams.tls.TLSStream) -> object:
        nonlocal built
        built += 1
        return original.fget(self)  # type: ignore[attr-defined]

    monkeypatch.setattr(anyio.streams.tls.TLSStream, "extra_attributes", property(counting))

    async def go() -> int:
        keep = KeepAliveServer(contexts[0])
        async with await keep.start():
            async for client in _client(contexts[1]):
                for _ in range(50):
                    assert (await client.get(f"https://127.0.0.1:{keep.port}/")).text == "ok"
        return keep.connections

    assert asyncio.run(go()) == 1
    assert built < 10  # the socket found once (and the handshake's own questions), not per request


def test_a_connection_the_server_closed_while_idle_is_not_used_again(
    contexts: tuple[ssl.SSLContext, ssl.SSLContext],
) -> None:
    async def go() -> int:
        closing = KeepAliveServer(contexts[0], close_after=1)
        async with await closing.start():
            async for client in _client(contexts[1]):
                for _ in range(5):
                    assert (await client.get(f"https://127.0.0.1:{closing.port}/")).text == "ok"
                    await asyncio.sleep(0.3)  # the close reaches the idle connection
        return closing.connections

    assert asyncio.run(go()) == 5
