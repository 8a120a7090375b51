"""A small fault-injecting HTTP(S) proxy on 127.0.0.1 in front of a real upstream (registry or API server).

Every request is relayed to the upstream unless the proxy's `fault` says otherwise, and every request
that reached the proxy is recorded in `requests` (method, path, whether it carried Authorization), so
tests count retries at the wire. Faults (attributes may be changed while it runs):

- "none": relay only.
- "slow": wait `delay` seconds, then relay.
- "status": answer `status` (e.g. 503, 429 with `retry_after`) for the first `times` requests of
  `methods` (None: every request), then relay.
- "reset": close the connection with a TCP RST instead of answering (first `times`, then relay).
- "challenge": relay, but rewrite a 401's WWW-Authenticate with `rewrite_challenge`.
- "non-json": HEAD and GET answer 200 with an HTML page and no digest header.
- "bad-digest-header": HEAD answers with a malformed Docker-Content-Digest.
- kept from the first registry tests: "no-digest-on-head", "head-405", "tampered-body",
  "huge-body", "503-then-ok" (the first two requests answer 503).

`tls=(cert, key)` serves HTTPS; `rotate_certificate()` swaps the certificate for new handshakes (TLS
connections are closed after each answer, so every request shakes hands again). `upstream_verify` and
`upstream_cert` let the proxy speak to an HTTPS upstream as a client (an API server with a client
certificate), so a product pointed at http://proxy talks to the real API server through it.
"""

from __future__ import annotations

import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

_RELAYED_REQUEST_HEADERS = ("accept", "authorization", "content-type")
_RELAYED_RESPONSE_HEADERS = (
    "content-type",
    "docker-content-digest",
    "www-authenticate",
    "retry-after",
    "location",
)
NON_JSON_BODY = b"<html><body>503 maintenance</body></html>"


@dataclass(frozen=True)
class SeenRequest:
    method: str
    path: str
    authorized: bool
    at: float  # time.monotonic() when it arrived


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    context: ssl.SSLContext | None = None

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, address = super().get_request()
        if self.context is not None:
            # The handshake happens in the handler thread (first read), so a failing client does
            # not block the accept loop.
            sock = self.context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, address

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # resets, failed handshakes and clients going away are what these tests are about


class FaultProxy:
    """See the module docstring; `host` is "127.0.0.1:PORT", `url` its base URL."""

    def __init__(
        self,
        upstream: str,
        fault: str = "none",
        *,
        delay: float = 0.0,
        status: int = 503,
        retry_after: str | None = None,
        times: int | None = None,
        methods: Collection[str] | None = None,
        rewrite_challenge: Callable[[str], str] | None = None,
        tls: tuple[Path, Path] | None = None,
        upstream_verify: ssl.SSLContext | bool = True,
        upstream_cert: tuple[Path, Path] | None = None,
    ) -> None:
        self.fault = fault
        self.delay = delay
        self.status = status
        self.retry_after = retry_after
        self.times = times
        self.methods = {m.upper() for m in methods} if methods is not None else None
        self.rewrite_challenge = rewrite_challenge
        self.requests: list[SeenRequest] = []
        self.injected = 0
        self._lock = threading.Lock()
        if upstream_cert is not None:
            if not isinstance(upstream_verify, ssl.SSLContext):
                upstream_verify = ssl.create_default_context()
            upstream_verify.load_cert_chain(*upstream_cert)
        self._upstream = httpx.Client(
            base_url=upstream, timeout=30.0, verify=upstream_verify, trust_env=False
        )
        self.server = _Server(("127.0.0.1", 0), self._handler_class())
        self.port = self.server.server_address[1]
        self.host = f"127.0.0.1:{self.port}"
        self.scheme = "https" if tls else "http"
        if tls is not None:
            self.rotate_certificate(*tls)
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}"

    @property
    def seen(self) -> list[str]:
        """Methods of the requests seen so far, in order."""
        return [r.method for r in self.requests]

    def count(self, method: str | None = None, *, authorized: bool | None = None) -> int:
        return sum(
            1
            for r in self.requests
            if (method is None or r.method == method) and (authorized is None or r.authorized == authorized)
        )

    def rotate_certificate(self, cert: Path, key: Path) -> None:
        """Serve this certificate from the next handshake on."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        self.server.context = context

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._upstream.close()

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _take_injection(self, method: str) -> bool:
        """Whether this request gets the "status"/"reset" fault (counts it when it does)."""
        if self.methods is not None and method not in self.methods:
            return False
        with self._lock:
            if self.times is not None and self.injected >= self.times:
                return False
            self.injected += 1
            return True

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _relay(self) -> None:
                method = self.command
                proxy.requests.append(
                    SeenRequest(method, self.path, "Authorization" in self.headers, time.monotonic())
                )
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                fault = proxy.fault
                if fault == "slow":
                    time.sleep(proxy.delay)
                if fault == "head-405" and method == "HEAD":
                    self._answer(405, {}, b"")
                    return
                if fault == "503-then-ok" and len(proxy.requests) <= 2:
                    self._answer(503, {"Retry-After": "0"}, b"")
                    return
                if fault == "status" and proxy._take_injection(method):
                    headers = {"Retry-After": proxy.retry_after} if proxy.retry_after is not None else {}
                    headers["Content-Type"] = "application/json"
                    detail = (
                        b'{"kind":"Status","apiVersion":"v1","status":"Failure","code":%d}' % proxy.status
                    )
                    self._answer(proxy.status, headers, b"" if method == "HEAD" else detail)
                    return
                if fault == "reset" and proxy._take_injection(method):
                    self._reset()
                    return
                headers_out = {k: v for k, v in self.headers.items() if k.lower() in _RELAYED_REQUEST_HEADERS}
                upstream = proxy._upstream.request(method, self.path, headers=headers_out, content=body)
                headers = {
                    k: v for k, v in upstream.headers.items() if k.lower() in _RELAYED_RESPONSE_HEADERS
                }
                content = upstream.content
                if fault == "challenge" and upstream.status_code == 401 and proxy.rewrite_challenge:
                    headers["www-authenticate"] = proxy.rewrite_challenge(
                        upstream.headers.get("www-authenticate", "")
                    )
                if fault == "no-digest-on-head" and method == "HEAD":
                    headers.pop("docker-content-digest", None)
                if fault == "bad-digest-header" and method == "HEAD" and upstream.status_code == 200:
                    headers["docker-content-digest"] = "sha256:not-a-digest"
                if fault == "tampered-body" and method == "GET" and content:
                    content = content[:-2] + (b" " if content[-2:-1] != b" " else b"\n") + content[-1:]
                if fault == "huge-body" and method == "GET":
                    content = content + b" " * (5 * 1024 * 1024)
                    headers.pop("docker-content-digest", None)
                if fault == "non-json" and upstream.status_code == 200:
                    # What a captive portal or a misconfigured front end says: 200, HTML, no digest.
                    content = NON_JSON_BODY
                    headers["content-type"] = "text/html"
                    headers.pop("docker-content-digest", None)
                    if method == "HEAD":
                        upstream.headers["content-length"] = str(len(content))
                length_out = (
                    int(upstream.headers.get("content-length", "0")) if method == "HEAD" else len(content)
                )
                self._answer(upstream.status_code, headers, b"" if method == "HEAD" else content, length_out)

            def _answer(
                self, status: int, headers: dict[str, str], body: bytes, length: int | None = None
            ) -> None:
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body) if length is None else length))
                if proxy.server.context is not None:
                    self.send_header("Connection", "close")
                    self.close_connection = True
                self.end_headers()
                if body:
                    self.wfile.write(body)

            def _reset(self) -> None:
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.connection.close()
                self.close_connection = True

            do_HEAD = do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _relay

        return Handler
