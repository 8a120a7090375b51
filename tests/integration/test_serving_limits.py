"""`autorollout.serving` in-process over real sockets with small limits: what it must still serve
(keep-alive, pipelining, bodies larger than a parser feed) and what it must cut (slow heads, idle
connections, oversize heads), at the limits given."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import pytest
from starlette.types import Receive, Scope, Send

from autorollout.serving import EmbeddedServer, HttpLimits, limited_config
from tests.harness.registry import free_port

pytestmark = pytest.mark.integration

LIMITS = HttpLimits(
    max_head_bytes=4096,
    max_head_bytes_in_progress=8192,
    max_url_bytes=512,
    max_header_fields=16,
    header_timeout=0.6,
    body_timeout=0.6,
)


async def _echo_length(scope: Scope, receive: Receive, send: Send) -> None:
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        size += len(message.get("body", b""))
        if not message.get("more_body", False):
            break
    body = str(size).encode()
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"%d" % len(body))]}
    )
    await send({"type": "http.response.body", "body": body})


@pytest.fixture(scope="module")
def port() -> Iterator[int]:
    chosen = free_port()
    server = EmbeddedServer(limited_config(_echo_length, LIMITS, host="127.0.0.1", port=chosen), LIMITS)
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        yield chosen
    finally:
        server.should_exit = True
        thread.join(10)


def _request(path: str = "/", body: bytes = b"", headers: bytes = b"") -> bytes:
    return b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n%s\r\n%s" % (
        path.encode(),
        len(body),
        headers,
        body,
    )


def _read_responses(sock: socket.socket, count: int) -> list[bytes]:
    """`count` whole responses (head and Content-Length body), or what came before the server closed."""
    data = b""
    sock.settimeout(3)
    responses: list[bytes] = []
    while len(responses) < count:
        head_end = data.find(b"\r\n\r\n")
        if head_end >= 0:
            head = data[:head_end].lower()
            length = int(head.split(b"content-length: ", 1)[1].split(b"\r\n", 1)[0])
            if len(data) >= head_end + 4 + length:
                responses.append(data[: head_end + 4 + length])
                data = data[head_end + 4 + length :]
                continue
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return responses


def test_keep_alive_pipelining_and_large_bodies_are_served(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(_request(body=b"a" * 10))
        [first] = _read_responses(sock, 1)
        time.sleep(LIMITS.header_timeout / 2)  # idle between requests: keep-alive, not the head timeout
        sock.sendall(_request(body=b"b" * 200_000) + _request(body=b"c" * 3))
        second, third = _read_responses(sock, 2)
    assert first.startswith(b"HTTP/1.1 200"), first
    assert first.endswith(b"\r\n10"), first
    assert second.endswith(b"\r\n200000"), second
    assert third.endswith(b"\r\n3"), third


def test_a_head_just_under_the_cap_with_a_large_body_is_served(port: int) -> None:
    filler = b"X-Filler: " + b"a" * (LIMITS.max_head_bytes - 100) + b"\r\n"
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(_request(body=b"b" * 100_000, headers=filler))
        [answer] = _read_responses(sock, 1)
    assert answer.startswith(b"HTTP/1.1 200"), answer[:100]
    assert answer.endswith(b"\r\n100000"), answer[-20:]


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (_request(headers=b"X-Big: " + b"a" * 5000 + b"\r\n"), b"431"),
        (_request(headers=b"".join(b"X-%d: a\r\n" % i for i in range(17))), b"431"),
        (_request(path="/" + "a" * 600), b"414"),
    ],
    ids=["head-bytes", "header-fields", "url"],
)
def test_oversize_heads_are_refused(port: int, request_bytes: bytes, status: bytes) -> None:
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(request_bytes)
        [answer] = _read_responses(sock, 1)
    assert answer.startswith(b"HTTP/1.1 " + status), answer
    assert b"connection: close" in answer


@pytest.mark.parametrize("sent", [b"", b"POST / HTTP/1.1\r\nHost: x\r\n", _request(body=b"x" * 10)[:-5]])
def test_idle_and_slow_connections_are_closed_at_the_timeout(port: int, sent: bytes) -> None:
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(sent)
        started = time.monotonic()
        sock.settimeout(5)
        with contextlib.suppress(ConnectionResetError):
            assert sock.recv(100) == b""
        elapsed = time.monotonic() - started
    assert LIMITS.header_timeout - 0.2 < elapsed < LIMITS.header_timeout + 1.5, elapsed


def test_heads_in_progress_share_one_budget(port: int) -> None:
    partial = b"POST / HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 3000
    first, second, third = (socket.create_connection(("127.0.0.1", port)) for _ in range(3))
    with first, second, third:
        first.sendall(partial)
        second.sendall(partial)
        time.sleep(0.1)
        third.sendall(partial)  # 9,000 bytes of heads in progress: over the 8,192 shared
        [answer] = _read_responses(third, 1)
        assert answer.startswith(b"HTTP/1.1 503"), answer
        first.sendall(b"\r\nContent-Length: 0\r\n\r\n")  # completing a head gives its bytes back
        assert _read_responses(first, 1)[0].startswith(b"HTTP/1.1 200")
    with socket.create_connection(("127.0.0.1", port)) as fourth:
        fourth.sendall(partial + b"\r\nContent-Length: 0\r\n\r\n")
        assert _read_responses(fourth, 1)[0].startswith(b"HTTP/1.1 200")
