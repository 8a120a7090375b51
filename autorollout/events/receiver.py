"""The registry-event receiver: an HTTP(S) server of its own (`events.port`) with the hardened
uvicorn setup of `autorollout.serving`, one route per source, `POST /events/<source>`.

Per request, in this order: a known source (404), the body cap (413), its credential (401),
its rate (429), the JSON and the source's parser (400), then whether this replica may act on
it (503, so the sender retries: only the leader rolls out) — and the images go to the coalescer
(202). Every answer is one line; nothing is ever a 500. The receiver changes nothing itself.
"""

from __future__ import annotations

import logging
import socket
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

import orjson
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from autorollout import metrics
from autorollout.errors import AutorolloutError
from autorollout.events.auth import SourceAuth
from autorollout.events.coalesce import EventCoalescer
from autorollout.events.limits import RequestRate
from autorollout.events.model import ImageEvent, MalformedEventError
from autorollout.events.sources import Parser
from autorollout.serving import (
    DEFAULT_LIMITS,
    EmbeddedServer,
    HttpLimits,
    limited_config,
    listening_socket,
)

log = logging.getLogger("kube_autorollout.events")

Accepting = Callable[[], str | None]
"""None when this replica acts on events now, else why not (not the leader, cache not filled)."""

LOOPBACK: Final = frozenset({"127.0.0.1", "::1"})
RECENT_IMAGES: Final = 1024
GRACEFUL_SECONDS: Final = 5


class ReceiverError(AutorolloutError):
    """The receiver cannot listen (address taken, TLS files unreadable)."""


@dataclass(frozen=True, slots=True)
class EventSource:
    """One configured source: its parser, how it authenticates, its rate."""

    name: str
    parse: Parser
    auth: SourceAuth
    rate: RequestRate


class RecentEvents:
    """When the last event for each image came (wall clock) and from which source; the newest
    `RECENT_IMAGES` images only, so forged names cannot grow it."""

    def __init__(self, limit: int = RECENT_IMAGES, clock: Callable[[], float] = time.time) -> None:
        self._limit = limit
        self._clock = clock
        self._last: OrderedDict[str, tuple[float, str]] = OrderedDict()

    def record(self, events: Sequence[ImageEvent], source: str) -> None:
        now = self._clock()
        for event in events:
            self._last.pop(event.key, None)
            self._last[event.key] = (now, source)
        while len(self._last) > self._limit:
            self._last.popitem(last=False)

    def snapshot(self) -> dict[str, dict[str, object]]:
        return {key: {"at": at, "source": source} for key, (at, source) in self._last.items()}


def _line(text: str, status: int, headers: Mapping[str, str] | None = None) -> Response:
    return PlainTextResponse(text + "\n", status_code=status, headers=headers)


def build_receiver_app(
    sources: Mapping[str, EventSource],
    coalescer: EventCoalescer,
    accepting: Accepting,
    *,
    max_body_bytes: int,
    recent: RecentEvents,
) -> Starlette:
    """The receiver's Starlette app (see the module doc)."""

    def count(source: str, outcome: str) -> None:
        metrics.EVENTS.labels(source=source, outcome=outcome).inc()

    async def receive(request: Request) -> Response:
        source = sources.get(request.path_params["source"])
        if source is None:
            return _line("no such event source here (see events.sources)", 404)
        try:
            return await _handle(request, source)
        except ClientDisconnect:
            return _line("client went away", 400)
        except Exception:  # a bug must not become a 500 that a registry retries forever
            log.exception("event not handled", extra={"fields": {"source": source.name}})
            count(source.name, "malformed")
            return _line("the event could not be read", 400)

    async def _handle(request: Request, source: EventSource) -> Response:
        body = await _read_body(request, max_body_bytes)
        if body is None:
            count(source.name, "malformed")
            return _line(f"body larger than {max_body_bytes} bytes", 413)
        headers = {k.lower(): v for k, v in request.headers.items()}
        problem = source.auth.problem(headers, request.query_params, body)
        if problem is not None:
            count(source.name, "unauthenticated")
            log.warning("event refused", extra={"fields": {"source": source.name, "reason": problem}})
            return _line(f"unauthenticated: {problem}", 401)
        # After the credential: a flood of forged requests must not use up the sender's rate.
        wait = source.rate.admit()
        if wait > 0:
            count(source.name, "rate_limited")
            return _line("too many events from this source", 429, {"retry-after": str(max(1, round(wait)))})
        try:
            events = source.parse(_json(body), headers)
        except MalformedEventError as exc:
            count(source.name, "malformed")
            return _line(f"malformed {source.name} event: {exc}", 400)
        if not events:
            count(source.name, "ignored")
            return _line("ignored: no tag pushed", 202)
        recent.record(events, source.name)
        unavailable = accepting()
        if unavailable is None and not coalescer.add(events, source.name):
            unavailable = "too many images pending"
        if unavailable is not None:
            count(source.name, "unavailable")
            return _line(f"not accepted here now: {unavailable}", 503, {"retry-after": "1"})
        count(source.name, "accepted")
        log.info(
            "event accepted",
            extra={"fields": {"source": source.name, "images": sorted({e.key for e in events})}},
        )
        return _line(f"accepted: {len(events)} image(s)", 202)

    async def last_events(request: Request) -> Response:
        client = request.client.host if request.client is not None else ""
        if client not in LOOPBACK:  # what `status` reads inside the pod; not for the world
            return _line("only from inside the pod", 403)
        return JSONResponse(recent.snapshot())

    async def not_allowed(_: Request) -> Response:
        return _line("POST an event to /events/<source>", 405)

    return Starlette(
        routes=[
            Route("/events/recent", last_events, methods=["GET"]),
            Route("/events/{source}", receive, methods=["POST"]),
            Route("/events/{source}", not_allowed, methods=["GET", "PUT", "DELETE", "PATCH"]),
        ]
    )


async def _read_body(request: Request, limit: int) -> bytes | None:
    """The body, or None when it is (or says it is) larger than `limit`."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _json(body: bytes) -> object:
    if not body:
        return {}  # binary-mode CloudEvents may carry no data; parsers say what is missing
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        raise MalformedEventError("the body is not JSON") from None


def _bind(host: str, port: int) -> socket.socket:
    try:
        return listening_socket(host, port, 512)
    except OSError as exc:
        raise ReceiverError(f"events: cannot listen on {host}:{port}: {exc.strerror or exc}") from None


class EventReceiver:
    """uvicorn (plain HTTP, or TLS with `cert_file`/`key_file`) serving the receiver app."""

    def __init__(
        self,
        app: Starlette,
        *,
        host: str,
        port: int,
        cert_file: str | None = None,
        key_file: str | None = None,
        limits: HttpLimits = DEFAULT_LIMITS,
    ) -> None:
        tls = {"ssl_certfile": cert_file, "ssl_keyfile": key_file} if cert_file and key_file else {}
        config = limited_config(
            app, limits, date_header=False, timeout_graceful_shutdown=GRACEFUL_SECONDS, **tls
        )
        try:
            config.load()
        except (OSError, ValueError) as exc:
            raise ReceiverError(f"events: cannot load the TLS certificate: {exc}") from None
        self._socket = _bind(host, port)
        self.port: int = self._socket.getsockname()[1]
        self.tls = bool(tls)
        self._server = EmbeddedServer(config, limits)

    def readiness_problem(self) -> str | None:
        if self._server.should_exit:
            return "event receiver is stopping"
        return None if self._server.started else "event receiver is not listening yet"

    async def serve(self) -> None:
        try:
            await self._server.serve(sockets=[self._socket])
        finally:
            self._socket.close()

    def shutdown(self) -> None:
        self._server.should_exit = True
