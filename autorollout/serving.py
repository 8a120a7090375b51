"""uvicorn embedded in a process that serves more than one thing, with limits a hostile client cannot
get past.

uvicorn's httptools protocol buffers request lines and headers without a limit (a 64 MB request
line took seconds of event loop, growing the URL by concatenation), never closes a connection that
sends nothing or trickles its headers or body, and accepts connections without a cap.
`LimitedHttpToolsProtocol` adds what Go's net/http server has: a cap on the request head (431, as
Go's 1 MiB `MaxHeaderBytes`), on the URL (414) and on the number of header fields (431), all checked
before the bytes reach the parser; header, body and keep-alive timeouts; and a cap on open
connections. `EmbeddedServer` gives TLS listeners a handshake timeout (asyncio's default is 60 s).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any, ClassVar, Final

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

# Pieces fed to the parser while the head is read: the head cap is checked between them, and
# httptools' own buffering of a header split across pieces stays small.
_FEED_BYTES: Final = 64 * 1024


@dataclass(frozen=True, slots=True)
class HttpLimits:
    """Sizes (bytes), counts and timeouts (seconds) every connection is held to."""

    max_head_bytes: int = 1024 * 1024
    max_url_bytes: int = 8 * 1024
    max_header_fields: int = 128
    header_timeout: float = 10.0
    body_timeout: float = 10.0
    keep_alive_timeout: float = 5.0
    handshake_timeout: float = 5.0
    max_connections: int = 512


DEFAULT_LIMITS: Final = HttpLimits()


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol held to `limits` (see the module doc)."""

    limits: ClassVar[HttpLimits] = DEFAULT_LIMITS

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_head = True
        self._head_bytes = 0
        self._header_fields = 0
        self._refusal: tuple[int, bytes] | None = None
        self._deadline: asyncio.TimerHandle | None = None

    @classmethod
    def with_limits(cls, limits: HttpLimits) -> type[LimitedHttpToolsProtocol]:
        """A subclass held to `limits` (uvicorn instantiates the protocol class itself)."""
        return type("LimitedHttpToolsProtocol", (cls,), {"limits": limits})

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections:
            transport.abort()
            return
        self._arm(self.limits.header_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refusal is not None or self.parser is None:
            return
        if self._in_head and self._deadline is None:
            self._arm(self.limits.header_timeout)  # the first byte of a request on a kept-alive connection
        view = memoryview(data)
        offset = 0
        while offset < len(view):
            size = _FEED_BYTES
            if self._in_head:
                room = self.limits.max_head_bytes - self._head_bytes
                if room <= 0:
                    self._refusal = (431, b"request header fields too large")
                size = min(size, room)
            if self._refusal is None:
                piece = view[offset : offset + size]
                offset += len(piece)
                in_head = self._in_head
                super().data_received(piece)  # type: ignore[arg-type]  # httptools takes any buffer
                if in_head and self._in_head:
                    self._head_bytes += len(piece)
            if self._refusal is not None:
                self._refuse(*self._refusal)
                return
            if self.parser is None or self.transport.is_closing():
                return

    # Parser callbacks
    def on_url(self, url: bytes) -> None:
        if self._refusal is not None:
            return
        if len(self.url) + len(url) > self.limits.max_url_bytes:
            self._refusal = (414, b"request URI too long")
            return
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._refusal is not None:
            return
        self._header_fields += 1
        if self._header_fields > self.limits.max_header_fields:
            self._refusal = (431, b"too many request header fields")
            return
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._disarm()
        if self._refusal is not None:
            return
        self._arm(self.limits.body_timeout)
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if self._refusal is None:
            super().on_body(body)

    def on_message_complete(self) -> None:
        self._disarm()
        self._in_head = True
        self._head_bytes = 0
        self._header_fields = 0
        if self._refusal is None:
            super().on_message_complete()

    def _refuse(self, status: int, reason: bytes) -> None:
        phrase = {414: b"URI Too Long", 431: b"Request Header Fields Too Large"}[status]
        body = reason + b"\n"
        self.transport.write(
            b"HTTP/1.1 %d %s\r\ncontent-type: text/plain; charset=utf-8\r\n"
            b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (status, phrase, len(body), body)
        )
        self.transport.close()

    def _arm(self, seconds: float) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, self._expired)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self) -> None:
        # A request head or body not received in time: drop the connection (as Go's ReadTimeout);
        # an application waiting for the body sees a disconnect.
        self._deadline = None
        if not self.transport.is_closing():
            self.transport.abort()


def limited_config(app: Any, limits: HttpLimits = DEFAULT_LIMITS, **options: Any) -> uvicorn.Config:
    """A uvicorn Config for `app` whose connections are held to `limits`."""
    return uvicorn.Config(
        app,
        http=LimitedHttpToolsProtocol.with_limits(limits),
        ws="none",
        lifespan="off",
        access_log=False,
        log_config=None,
        server_header=False,
        timeout_keep_alive=int(limits.keep_alive_timeout),
        **options,
    )


class EmbeddedServer(uvicorn.Server):
    """A uvicorn server that leaves the signals to its caller, which stops it with `should_exit`,
    and gives TLS listeners passed as sockets a handshake timeout."""

    def __init__(self, config: uvicorn.Config, limits: HttpLimits = DEFAULT_LIMITS) -> None:
        super().__init__(config)
        self.limits = limits

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        config = self.config
        if sockets is None or config.ssl is None:
            await super().startup(sockets)
            return
        # As uvicorn's own startup for sockets, plus the TLS handshake and shutdown timeouts it
        # does not pass to the event loop.
        await self.lifespan.startup()
        make: Callable[..., asyncio.Protocol] = config.http_protocol_class

        def create_protocol(_loop: asyncio.AbstractEventLoop | None = None) -> asyncio.Protocol:
            return make(
                config=config, server_state=self.server_state, app_state=self.lifespan.state, _loop=_loop
            )

        loop = asyncio.get_running_loop()
        self.servers = [
            await loop.create_server(
                create_protocol,
                sock=sock,
                ssl=config.ssl,
                backlog=config.backlog,
                ssl_handshake_timeout=self.limits.handshake_timeout,
                ssl_shutdown_timeout=self.limits.handshake_timeout,
            )
            for sock in sockets
        ]
        self.started = True


__all__ = ["DEFAULT_LIMITS", "EmbeddedServer", "HttpLimits", "LimitedHttpToolsProtocol", "limited_config"]
