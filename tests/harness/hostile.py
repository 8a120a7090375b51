"""A hostile registry on 127.0.0.1: a raw socket server that answers as a broken or malicious peer
would, byte by byte where it likes, so tests can prove that every lookup ends and fails cleanly.

Plain HTTP; a TLS ClientHello (the product tries HTTPS first) gets an immediate `400`, as Go's
server answers, so the client falls back to HTTP on loopback as it does for the real registry.
Behaviours (`HostileRegistry(behaviour, ...)`):

- "trickle-status": the status line and headers, one byte every `interval` seconds, never ending.
- "trickle-headers": the status line at once, then headers one byte at a time, never ending.
- "trickle-body": HEAD says 200 without a digest (so the client GETs); the GET's headers promise
  1 MB and the body comes one byte at a time.
- "trickle-token": every registry request gets a Bearer challenge whose realm is this server's
  `/token`, and the token JSON comes one byte at a time.
- "short-body": the GET promises 1,000 bytes, sends 10 and closes.
- "reset-body": the GET sends its headers and 10 bytes, then a TCP RST.
- "stall-body": the GET sends its headers and 10 bytes, then nothing (the connection stays open).
- "location": every request is answered `302` with `Location: <location>`.
- "token": a Bearer challenge; `/token` answers `{"token": ..., "expires_in": <expires_in>}`
  (`expires_in` is raw JSON text, so `1e400` or 400 digits go out as written); a request with the
  token gets the manifest.
  `realm` replaces the challenge's realm (default: this server's `/token`).
- "index": HEAD and GET answer `index_body` as an OCI index, with its true digest.
- "rate-limited": every request is answered `429` with `Retry-After: <retry_after>`.
- "raw": every request is answered with the bytes of `raw` (attribute, may change), then closed.

`requests` lists (method, path, authorized) as they arrived; `first_contact` is the
time.monotonic() of the first connection (a process under test has started by then); `trickled`
counts the bytes sent one at a time, `open_connections()` the connections not yet closed.
`close()` ends everything at once.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import socket
import struct
import threading
import time
from dataclasses import dataclass, field

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
TOKEN = "hostile-issued-token"
MANIFEST = json.dumps(
    {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": "sha256:" + "0" * 64},
        "layers": [],
    }
).encode()
MANIFEST_DIGEST = "sha256:" + hashlib.sha256(MANIFEST).hexdigest()
BEHAVIOURS = (
    "trickle-status",
    "trickle-headers",
    "trickle-body",
    "trickle-token",
    "short-body",
    "reset-body",
    "stall-body",
    "location",
    "token",
    "index",
    "rate-limited",
    "raw",
)
_MAX_REQUEST = 64 * 1024


def digest_of(body: bytes) -> str:
    return "sha256:" + hashlib.sha256(body).hexdigest()


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    authorized: bool


class _Hangup(Exception):
    """The server is closing, or the client went away."""


@dataclass
class _Connection:
    sock: socket.socket
    server: HostileRegistry
    buffer: bytes = b""
    closed: bool = field(default=False)

    def send(self, data: bytes) -> None:
        try:
            self.sock.sendall(data)
        except OSError as exc:
            raise _Hangup from exc

    def trickle(self, data: bytes) -> None:
        """Send one byte every `interval` seconds, then return (or raise _Hangup on close)."""
        for i in range(len(data)):
            self.send(data[i : i + 1])
            self.server.count_trickled()
            if self.server.stopping.wait(self.server.interval):
                raise _Hangup

    def trickle_forever(self, head: bytes, filler: bytes) -> None:
        self.trickle(head)
        while True:
            self.trickle(filler)

    def stall(self) -> None:
        self.server.stopping.wait()
        raise _Hangup

    def reset(self) -> None:
        # SO_LINGER 0: close() sends RST instead of FIN.
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.sock.close()

    def read_request(self) -> tuple[str, str, dict[str, str]] | None:
        """(method, path, headers) of the next request; None when the client sent TLS or nothing."""
        while b"\r\n\r\n" not in self.buffer:
            if self.buffer[:1] == b"\x16":  # a TLS handshake record
                self.send(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                return None
            if len(self.buffer) > _MAX_REQUEST:
                return None
            try:
                chunk = self.sock.recv(65536)
            except OSError:
                return None
            if not chunk:
                return None
            self.buffer += chunk
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, path = [*lines[0].split(" "), "", ""][:2]
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        return method, path, headers


def _response(status: str, headers: dict[str, str], body: bytes = b"", *, length: int | None = None) -> bytes:
    lines = [f"HTTP/1.1 {status}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    lines.append(f"Content-Length: {len(body) if length is None else length}")
    lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class HostileRegistry:
    """See the module docstring; `host` is "127.0.0.1:PORT"."""

    def __init__(
        self,
        behaviour: str,
        *,
        interval: float = 1.0,
        location: str = "",
        expires_in: str = "300",
        index_body: bytes = b"",
        realm: str = "",
        retry_after: str = "1",
        raw: bytes = b"",
    ) -> None:
        if behaviour not in BEHAVIOURS:
            raise ValueError(f"unknown behaviour {behaviour!r}")
        self.behaviour = behaviour
        self.interval = interval
        self.location = location
        self.expires_in = expires_in
        self.index_body = index_body
        self.realm = realm
        self.retry_after = retry_after
        self.raw = raw
        self.requests: list[Seen] = []
        self.trickled = 0
        self.first_contact: float | None = None
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._connections: list[_Connection] = []
        self._threads: list[threading.Thread] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)
        self.port: int = self._listener.getsockname()[1]
        self.host = f"127.0.0.1:{self.port}"
        self._acceptor = threading.Thread(target=self._accept, name=f"hostile {behaviour}", daemon=True)
        self._acceptor.start()

    def count_trickled(self) -> None:
        with self._lock:
            self.trickled += 1

    def open_connections(self) -> int:
        with self._lock:
            return sum(1 for c in self._connections if not c.closed)

    def close(self) -> None:
        self.stopping.set()
        self._acceptor.join(timeout=5)
        self._listener.close()
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.sock.shutdown(socket.SHUT_RDWR)
        for thread in list(self._threads):
            thread.join(timeout=5)
        for connection in connections:
            connection.close()

    def __enter__(self) -> HostileRegistry:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _accept(self) -> None:
        while not self.stopping.is_set():
            try:
                sock, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if self.first_contact is None:
                self.first_contact = time.monotonic()
            sock.settimeout(10)
            connection = _Connection(sock, self)
            thread = threading.Thread(target=self._serve, args=(connection,), daemon=True)
            with self._lock:
                self._connections.append(connection)
                self._threads.append(thread)
            thread.start()

    def _serve(self, connection: _Connection) -> None:
        try:
            request = connection.read_request()
            if request is not None:
                method, path, headers = request
                with self._lock:
                    self.requests.append(Seen(method, path, "authorization" in headers))
                self._answer(connection, method, path, headers)
        except _Hangup:
            pass
        finally:
            connection.close()

    def _answer(self, c: _Connection, method: str, path: str, headers: dict[str, str]) -> None:
        behaviour = self.behaviour
        challenge = {
            "WWW-Authenticate": f'Bearer realm="{self.realm or f"http://{self.host}/token"}",service="hostile"',
            "Content-Type": "application/json",
        }
        if behaviour == "trickle-status":
            c.trickle_forever(b"HTTP/1.1 200 OK\r\n", b"X-Padding: still coming\r\n")
        elif behaviour == "trickle-headers":
            c.send(b"HTTP/1.1 200 OK\r\n")
            c.trickle_forever(b"Content-Type: " + OCI_MANIFEST.encode() + b"\r\n", b"X-Padding: more\r\n")
        elif behaviour in ("trickle-body", "short-body", "reset-body", "stall-body"):
            if method == "HEAD":  # no digest: the client must GET the body
                c.send(_response("200 OK", {"Content-Type": OCI_MANIFEST}, length=len(MANIFEST)))
                return
            length = 1_000 if behaviour == "short-body" else 1_000_000
            c.send(_response("200 OK", {"Content-Type": OCI_MANIFEST}, length=length))
            if behaviour == "trickle-body":
                c.trickle_forever(b"", b" ")
            c.send(MANIFEST[:10])
            if behaviour == "reset-body":
                c.reset()
            elif behaviour == "stall-body":
                c.stall()
        elif behaviour == "location":
            c.send(_response("302 Found", {"Location": self.location}))
        elif behaviour in ("trickle-token", "token"):
            if path.startswith("/token"):
                if behaviour == "trickle-token":
                    c.send(_response("200 OK", {"Content-Type": "application/json"}, length=100_000))
                    c.trickle_forever(b'{"token": "', b"x")
                body = f'{{"token": "{TOKEN}", "expires_in": {self.expires_in}}}'.encode()
                c.send(_response("200 OK", {"Content-Type": "application/json"}, body))
            elif headers.get("authorization") == f"Bearer {TOKEN}":
                found = {"Content-Type": OCI_MANIFEST, "Docker-Content-Digest": MANIFEST_DIGEST}
                c.send(_response("200 OK", found, b"" if method == "HEAD" else MANIFEST))
            else:
                c.send(_response("401 Unauthorized", challenge, b'{"errors": []}'))
        elif behaviour == "raw":
            c.send(self.raw)
        elif behaviour == "rate-limited":
            c.send(_response("429 Too Many Requests", {"Retry-After": self.retry_after}))
        elif behaviour == "index":
            body = self.index_body
            found = {"Content-Type": OCI_INDEX, "Docker-Content-Digest": digest_of(body)}
            c.send(_response("200 OK", found, b"" if method == "HEAD" else body, length=len(body)))


__all__ = ["BEHAVIOURS", "MANIFEST_DIGEST", "TOKEN", "HostileRegistry", "Seen", "digest_of"]
