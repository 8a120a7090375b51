"""HTTP limits of the real `kube-autorollout webhook` process, from raw TLS sockets: oversize heads,
URLs and header counts are refused quickly (431/414) without memory growth or a blocked event loop;
idle, silent, slow-header and slow-body connections are closed within the timeouts; connections
beyond the cap are closed at once; the probe server has the same caps."""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
import time
from collections.abc import Iterable, Iterator

import httpx
import orjson
import pytest

from autorollout.serving import DEFAULT_LIMITS
from tests.e2e.webhook_process import WebhookProcess, start_webhook
from tests.harness.sockets import established_from, rss_kib, tls_connect
from tests.unit.webhook_samples import review, workload

pytestmark = pytest.mark.integration

MIB = 1024 * 1024
NOT_OURS = orjson.dumps(review(workload(labels={})))


@pytest.fixture(scope="module")
def webhook(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebhookProcess]:
    process = start_webhook(tmp_path_factory.mktemp("webhook-limits"), None, budget=1.0, cache_ttl=0)
    try:
        yield process
    finally:
        assert process.stop() == 0


class AdmissionProbe:
    """Posts a small review every 50 ms from a thread and records the slowest answer."""

    def __init__(self, webhook: WebhookProcess) -> None:
        self._webhook = webhook
        self._stop = threading.Event()
        self.latencies: list[float] = []
        self.failures: list[str] = []
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        context = ssl.create_default_context(cafile=str(self._webhook.ca_file))
        with httpx.Client(verify=context, timeout=5, trust_env=False) as client:
            while not self._stop.is_set():
                started = time.monotonic()
                try:
                    status = client.post(self._webhook.url, content=NOT_OURS).status_code
                except httpx.HTTPError as exc:
                    self.failures.append(repr(exc))
                else:
                    if status != 200:
                        self.failures.append(str(status))
                self.latencies.append(time.monotonic() - started)
                self._stop.wait(0.05)

    def __enter__(self) -> AdmissionProbe:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(10)


def _attack(sock: socket.socket, chunks: Iterable[bytes]) -> tuple[bytes, int]:
    """Send `chunks` until the server stops us; returns what it answered and the bytes sent."""
    sent = 0
    sock.settimeout(5)
    with contextlib.suppress(OSError):
        for chunk in chunks:
            sock.sendall(chunk)
            sent += len(chunk)
    answer = b""
    with contextlib.suppress(OSError):
        while len(answer) < 4096:
            data = sock.recv(4096)
            if not data:
                break
            answer += data
    return answer, sent


def _huge_headers(total: int) -> Iterator[bytes]:
    yield b"POST /mutate HTTP/1.1\r\nHost: x\r\n"
    line = b"X-Filler: " + b"a" * 1000 + b"\r\n"
    for _ in range(total // len(line)):
        yield line * 1
    yield b"\r\n"


def _huge_request_line(total: int) -> Iterator[bytes]:
    yield b"POST /"
    block = b"a" * MIB
    for _ in range(total // MIB):
        yield block
    yield b" HTTP/1.1\r\n\r\n"


@pytest.mark.parametrize(
    ("what", "chunks", "status"),
    [
        ("16 MB of headers", lambda: _huge_headers(16 * MIB), b"431"),
        ("64 MB request line", lambda: _huge_request_line(64 * MIB), b"414"),
        ("20,000 header fields", lambda: iter([b"GET /mutate HTTP/1.1\r\n" + b"a: b\r\n" * 20_000]), b"431"),
    ],
    ids=["headers-16MB", "request-line-64MB", "fields-20000"],
)
def test_oversize_heads_are_refused_fast_without_memory_or_blocking(
    webhook: WebhookProcess, what: str, chunks: object, status: bytes
) -> None:
    pid = webhook.popen.pid
    before = rss_kib(pid)
    with AdmissionProbe(webhook) as probe:
        time.sleep(0.2)
        started = time.monotonic()
        with tls_connect(webhook.port, webhook.ca_file) as sock:
            answer, sent = _attack(sock, chunks())  # type: ignore[operator]
        elapsed = time.monotonic() - started
        time.sleep(0.3)
    after = rss_kib(pid)
    assert answer == b"" or answer.startswith(b"HTTP/1.1 " + status), answer[:200]
    assert elapsed < 5.0, elapsed
    assert not probe.failures, probe.failures
    assert probe.latencies
    assert max(probe.latencies) < 1.0, max(probe.latencies)
    assert after - before < 16 * 1024, (before, after)
    assert webhook.popen.poll() is None
    print(
        f"{what}: {answer[:12]!r} after {sent / MIB:.1f} MiB sent, closed in {elapsed:.2f}s; RSS "
        f"{before / 1024:.1f} -> {after / 1024:.1f} MiB; {len(probe.latencies)} admissions meanwhile, "
        f"slowest {max(probe.latencies) * 1000:.0f} ms"
    )


def test_heads_and_urls_under_the_caps_are_served(webhook: WebhookProcess) -> None:
    near = b"X-Filler: " + b"a" * (DEFAULT_LIMITS.max_head_bytes - 64 * 1024) + b"\r\n"
    body = b"{}"
    with tls_connect(webhook.port, webhook.ca_file) as sock:
        head = b"POST /mutate?timeout=5s HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n" + near + b"\r\n"
        answer, _ = _attack(sock, [head + body])
    assert answer.startswith(b"HTTP/1.1 400"), answer[:100]  # the app's answer to "{}"
    path = b"/mutate?" + b"a" * (DEFAULT_LIMITS.max_url_bytes - 100)
    with tls_connect(webhook.port, webhook.ca_file) as sock:
        answer, _ = _attack(sock, [b"POST " + path + b" HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}"])
    assert answer.startswith(b"HTTP/1.1 400"), answer[:100]
    with tls_connect(webhook.port, webhook.ca_file) as sock:
        answer, _ = _attack(sock, [b"POST " + path + b"a" * 200 + b" HTTP/1.1\r\nHost: x\r\n\r\n"])
    assert answer.startswith(b"HTTP/1.1 414"), answer[:100]


def test_probe_server_has_the_same_caps(webhook: WebhookProcess) -> None:
    with socket.create_connection(("127.0.0.1", webhook.probe_port), timeout=5) as sock:
        answer, _ = _attack(sock, _huge_headers(4 * MIB))
    assert answer == b"" or answer.startswith(b"HTTP/1.1 431"), answer[:100]
    with socket.create_connection(("127.0.0.1", webhook.probe_port), timeout=5) as sock:
        answer, _ = _attack(sock, [b"GET /healthz?" + b"a" * 20_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"])
    assert answer.startswith(b"HTTP/1.1 414"), answer[:100]
    assert httpx.get(f"http://127.0.0.1:{webhook.probe_port}/healthz", trust_env=False).status_code == 204


def _trickle(socks: list[socket.socket], stop: threading.Event) -> None:
    """One byte per second on each socket, until stopped or the server closes it."""
    alive = list(socks)
    while alive and not stop.wait(1.0):
        for sock in list(alive):
            try:
                sock.send(b"a")
            except OSError:
                alive.remove(sock)


def test_silent_idle_and_slow_connections_are_closed_within_the_timeouts(webhook: WebhookProcess) -> None:
    limits = DEFAULT_LIMITS
    pid = webhook.popen.pid
    before = rss_kib(pid)
    silent = [socket.create_connection(("127.0.0.1", webhook.port)) for _ in range(50)]  # no ClientHello
    idle = [tls_connect(webhook.port, webhook.ca_file) for _ in range(50)]
    slow_header = [tls_connect(webhook.port, webhook.ca_file) for _ in range(50)]
    slow_body = [tls_connect(webhook.port, webhook.ca_file) for _ in range(50)]
    for sock in slow_header:
        sock.sendall(b"POST /mutate HTTP/1.1\r\nHost: x\r\nX-Slow: ")
    for sock in slow_body:
        sock.sendall(b"POST /mutate HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n{")
    everything: list[socket.socket] = [*silent, *idle, *slow_header, *slow_body]
    ports = {s.getsockname()[1] for s in everything}
    groups = {
        "silent": {s.getsockname()[1] for s in silent},
        "idle": {s.getsockname()[1] for s in idle},
        "slow header": {s.getsockname()[1] for s in slow_header},
        "slow body": {s.getsockname()[1] for s in slow_body},
    }
    stop = threading.Event()
    trickler = threading.Thread(target=_trickle, args=(slow_header + slow_body, stop), daemon=True)
    trickler.start()
    started = time.monotonic()
    closed_at: dict[str, float] = {}
    try:
        opened = established_from(webhook.port, ports)
        flooded = rss_kib(pid)
        with AdmissionProbe(webhook) as probe:
            limit = max(limits.handshake_timeout, limits.header_timeout, limits.body_timeout) + 5.0
            while len(closed_at) < len(groups) and time.monotonic() - started < limit:
                for name, members in groups.items():
                    if name not in closed_at and established_from(webhook.port, members) == 0:
                        closed_at[name] = time.monotonic() - started
                time.sleep(0.2)
    finally:
        stop.set()
        trickler.join(5)
        for sock in everything:
            sock.close()
    assert opened == 200, opened
    assert set(closed_at) == set(groups), (closed_at, established_from(webhook.port, ports))
    assert closed_at["silent"] < limits.handshake_timeout + 2.0, closed_at
    for name in ("idle", "slow header"):
        assert limits.header_timeout - 3.0 < closed_at[name] < limits.header_timeout + 2.0, closed_at
    assert closed_at["slow body"] < limits.body_timeout + 2.0, closed_at
    assert not probe.failures, probe.failures
    assert max(probe.latencies) < 1.0, max(probe.latencies)
    print(
        f"200 connections: RSS {before / 1024:.1f} -> {flooded / 1024:.1f} MiB while open; closed after "
        + ", ".join(f"{name} {at:.1f}s" for name, at in closed_at.items())
        + f"; slowest admission meanwhile {max(probe.latencies) * 1000:.0f} ms"
    )


def test_connections_beyond_the_cap_are_closed_at_once(webhook: WebhookProcess) -> None:
    cap = DEFAULT_LIMITS.max_connections
    pid = webhook.popen.pid
    before = rss_kib(pid)
    socks: list[ssl.SSLSocket] = []
    try:
        for _ in range(cap + 88):
            socks.append(tls_connect(webhook.port, webhook.ca_file))
        time.sleep(0.5)
        ports = {s.getsockname()[1] for s in socks}
        kept = established_from(webhook.port, ports)
        peak = rss_kib(pid)
        assert cap - 5 <= kept <= cap, kept  # an earlier test's connection may still count
        # One of the refused ones, from the client's side: the server has hung up on it.
        last = socks[-1]
        last.settimeout(2)
        with contextlib.suppress(OSError):
            assert last.recv(1) == b""
    finally:
        for sock in socks:
            sock.close()
    time.sleep(0.5)
    ok = httpx.post(
        webhook.url,
        content=NOT_OURS,
        verify=ssl.create_default_context(cafile=str(webhook.ca_file)),
        trust_env=False,
    )
    assert ok.status_code == 200
    print(f"{cap + 88} connections: {kept} kept; RSS {before / 1024:.1f} -> {peak / 1024:.1f} MiB")


def test_a_flood_of_large_slow_heads_holds_bounded_memory(webhook: WebhookProcess) -> None:
    """60 connections each sending 900 KiB of a head they never finish (54 MiB), to the probe
    server (same protocol, no TLS buffers to blur the count): heads in progress hold 32 MiB at most
    together, the rest are answered 503, and the webhook keeps answering."""
    pid = webhook.popen.pid
    before = rss_kib(pid)
    head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * (900 * 1024)
    socks = [socket.create_connection(("127.0.0.1", webhook.probe_port), timeout=5) for _ in range(60)]
    refused = 0
    try:
        with AdmissionProbe(webhook) as probe:
            for sock in socks:
                with contextlib.suppress(OSError):
                    sock.sendall(head)
            time.sleep(1.0)
            peak = rss_kib(pid)
            for sock in socks:
                sock.setblocking(False)
                with contextlib.suppress(OSError):
                    refused += sock.recv(16).startswith(b"HTTP/1.1 503")
    finally:
        for sock in socks:
            sock.close()
    limit = DEFAULT_LIMITS.max_head_bytes_in_progress
    assert refused >= 60 - limit // len(head) - 1, refused
    assert peak - before < (limit + 8 * MIB) // 1024, (before, peak)
    assert not probe.failures, probe.failures
    assert max(probe.latencies) < 1.0, max(probe.latencies)
    print(
        f"60 slow 900 KiB heads: {refused} answered 503; RSS {before / 1024:.1f} -> {peak / 1024:.1f} MiB; "
        f"slowest admission meanwhile {max(probe.latencies) * 1000:.0f} ms"
    )
