"""uvicorn embedded in a process that serves more than one thing, with limits a hostile client cannot
get past.

uvicorn's httptools protocol buffers request lines and headers without a limit (a 64 MB request
line took seconds of event loop, growing the URL by concatenation), never closes a connection that
sends nothing or trickles its headers or body, and accepts connections without a cap.
`LimitedHttpToolsProtocol` adds what Go's net/http server has: a cap on the request head (431, as
Go's 1 MiB `MaxHeaderBytes`), on the URL (414) and on the number of header fields (431), all checked
before the bytes reach the parser; header, body and keep-alive timeouts; and a cap on open
connections. Beyond Go, the heads being received on all connections together are capped (503 beyond
it), so a flood of slow 1 MiB heads holds 32 MiB, not 1 MiB per connection. `EmbeddedServer` gives
TLS listeners a handshake timeout (asyncio's default is 60 s).
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
    # Request heads being received, all connections together: what a flood of slow heads may hold.
    max_head_bytes_in_progress: int = 32 * 1024 * 1024
    max_url_bytes: int = 8 * 1024
    max_header_fields: int = 128
    header_timeout: float = 10.0
    body_timeout: float = 10.0
    keep_alive_timeout: float = 5.0
    handshake_timeout: float = 5.0
    # A busy TLS connection holds ~430 KiB of buffers (uvloop), an idle one ~50 KiB.
    max_connections: int = 256


DEFAULT_LIMITS: Final = HttpLimits()


def _head_end(tail: bytes, chunk: bytes) -> int:
    """The index in `chunk` just past the blank line that ends a request head, `tail` being the last
    bytes before it; -1 when the head does not end in `chunk`."""
    ends = []
    for blank in (b"\r\n\r\n", b"\n\n"):
        across = (tail + chunk[: len(blank) - 1]).find(blank)
        if across >= 0:
            ends.append(across + len(blank) - len(tail))
        inside = chunk.find(blank)
        if inside >= 0:
            ends.append(inside + len(blank))
    return min(ends) if ends else -1


class _HeadBudget:
    """Bytes of request heads received and not complete yet, over all connections of one server."""

    def __init__(self) -> None:
        self.used = 0


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol held to `limits` (see the module doc)."""

    limits: ClassVar[HttpLimits] = DEFAULT_LIMITS
    heads: ClassVar[_HeadBudget] = _HeadBudget()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_head = True
        self._head_bytes = 0
        self._header_fields = 0
        self._refusal: tuple[int, bytes] | None = None
        self._parser_idle = True  # between messages: the parser holds no part of a head
        self._pending: list[bytes] = []
        self._tail = b""  # the last bytes of the head so far, where its blank line may begin
        self._line_end: int | None = None  # where the request line ends, once seen
        self._head_lines = 0
        self._deadline: asyncio.TimerHandle | None = None

    @classmethod
    def with_limits(cls, limits: HttpLimits) -> type[LimitedHttpToolsProtocol]:
        """A subclass held to `limits` (uvicorn instantiates the protocol class itself)."""
        return type("LimitedHttpToolsProtocol", (cls,), {"limits": limits, "heads": _HeadBudget()})

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections:
            transport.abort()
            return
        self._arm(self.limits.header_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        self._release_head()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refusal is not None or self.parser is None:
            return
        self._unset_keepalive_if_required()  # a request is coming: the header timeout applies now
        if self._in_head and self._deadline is None:
            self._arm(self.limits.header_timeout)  # the first byte of a request on a kept-alive connection
        if self._parser_idle:
            self._buffer_head(data)
        else:
            self._feed(memoryview(data))

    def _buffer_head(self, data: bytes | memoryview) -> None:
        """Collect a request head and give it to the parser whole, once complete: httptools grows a
        header value split over several reads by concatenation, which costs its square in copies.
        The pieces are kept as they came (no growing buffer) and joined once."""
        chunk = bytes(data)
        before = self._head_bytes
        self._head_bytes += len(chunk)
        self.heads.used += len(chunk)
        self._head_lines += chunk.count(b"\n")
        line_limit = self.limits.max_url_bytes + 64  # the URL plus method and version
        if self._line_end is None:
            newline = chunk.find(b"\n")
            self._line_end = before + newline if newline >= 0 else None
        end = _head_end(self._tail, chunk)
        if end < 0 or before + end > self.limits.max_head_bytes:
            if self._head_bytes > self.limits.max_head_bytes:
                self._refuse(431, b"request header fields too large")
            elif self.heads.used > self.limits.max_head_bytes_in_progress:
                self._refuse(503, b"too many request heads in progress")
            elif self._head_lines > self.limits.max_header_fields + 1:  # the request line, then fields
                self._refuse(431, b"too many request header fields")
            elif (self._line_end if self._line_end is not None else self._head_bytes) > line_limit:
                self._refuse(414, b"request URI too long")
            else:
                self._pending.append(chunk)
                self._tail = chunk[-3:] if len(chunk) >= 3 else (self._tail + chunk)[-3:]
            return
        head = b"".join([*self._pending, chunk[:end]])
        self._pending, self._tail, self._line_end = [], b"", None
        super().data_received(head)
        if self._refusal is not None:
            self._refuse(*self._refusal)
        elif end < len(chunk) and self.parser is not None and not self.transport.is_closing():
            self._feed(memoryview(chunk)[end:])

    def _feed(self, view: memoryview) -> None:
        """Feed the parser in pieces, counting what it takes of a head it is in the middle of."""
        offset = 0
        while offset < len(view):
            if self._parser_idle:
                self._buffer_head(view[offset:])
                return
            size = _FEED_BYTES
            if self._in_head:
                room = self.limits.max_head_bytes - self._head_bytes
                shared = self.limits.max_head_bytes_in_progress - self.heads.used
                if room <= 0:
                    self._refusal = (431, b"request header fields too large")
                elif shared <= 0:
                    self._refusal = (503, b"too many request heads in progress")
                size = min(size, room, shared)
            if self._refusal is None:
                piece = view[offset : offset + size]
                offset += len(piece)
                in_head = self._in_head
                super().data_received(piece)  # type: ignore[arg-type]  # httptools takes any buffer
                if in_head and self._in_head:
                    self._head_bytes += len(piece)
                    self.heads.used += len(piece)
            if self._refusal is not None:
                self._refuse(*self._refusal)
                return
            if self.parser is None or self.transport.is_closing():
                return

    # Parser callbacks
    def on_message_begin(self) -> None:
        self._parser_idle = False
        super().on_message_begin()

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
        self._release_head()
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
        self._parser_idle = True
        self._header_fields = 0
        if self._refusal is None:
            super().on_message_complete()

    def _release_head(self) -> None:
        self.heads.used -= self._head_bytes
        self._head_bytes = 0
        self._pending, self._tail, self._line_end = [], b"", None
        self._head_lines = 0

    def _refuse(self, status: int, reason: bytes) -> None:
        self._release_head()
        phrase = {414: b"URI Too Long", 431: b"Request Header Fields Too Large", 503: b"Service Unavailable"}[
            status
        ]
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


def listening_socket(host: str, port: int, backlog: int) -> socket.socket:
    """A TCP socket bound to `host:port` and listening (IPv6, dual-stack, when the host is an IPv6
    address): bound here, so that a taken port fails at start-up and not inside uvicorn. Raises OSError."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind((host.strip("[]"), port))
        sock.listen(backlog)
    except OSError:
        sock.close()
        raise
    return sock


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


__all__ = [
    "DEFAULT_LIMITS",
    "EmbeddedServer",
    "HttpLimits",
    "LimitedHttpToolsProtocol",
    "limited_config",
    "listening_socket",
]
