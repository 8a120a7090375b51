"""A loopback HTTP receiver for notification sinks: counts and keeps what it gets, and answers as
its `mode` says: `ok` (200), `error` (500), `throttle` (429 with `Retry-After`), `hang` (never
answers), `slow` (trickles its answer a byte at a time). `script` answers the next requests with
the given modes first."""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

Mode = Literal["ok", "error", "throttle", "hang", "slow"]


@dataclass(frozen=True, slots=True)
class Received:
    """One request: when it arrived (monotonic), its path, headers and body (JSON, when it is)."""

    at: float
    path: str
    headers: dict[str, str]
    body: bytes
    answered: Mode

    def json(self) -> Any:
        return json.loads(self.body)


class NotifyReceiver:
    """Serves on 127.0.0.1:`port` in threads of its own until `close`."""

    def __init__(self, mode: Mode = "ok", *, retry_after: str = "1", trickle_interval: float = 0.2) -> None:
        self.mode: Mode = mode
        self.retry_after = retry_after
        self.trickle_interval = trickle_interval
        self.script: deque[Mode] = deque()
        self.received: list[Received] = []
        self._lock = threading.Lock()
        self._closed = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver._lock:
                    answered = receiver.script.popleft() if receiver.script else receiver.mode
                    receiver.received.append(
                        Received(time.monotonic(), self.path, dict(self.headers.items()), body, answered)
                    )
                receiver._answer(self, answered)

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: the tests read `received`."""

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port: int = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    @property
    def count(self) -> int:
        with self._lock:
            return len(self.received)

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        """The requests once at least `count` arrived; AssertionError after `timeout`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.received) >= count:
                    return list(self.received)
            time.sleep(0.02)
        raise AssertionError(f"receiver got {self.count} requests, not {count}, within {timeout}s")

    def _answer(self, handler: BaseHTTPRequestHandler, mode: Mode) -> None:
        handler.close_connection = True
        if mode == "hang":
            self._closed.wait()
            return
        status, extra = {
            "ok": (200, {}),
            "slow": (200, {}),
            "error": (500, {}),
            "throttle": (429, {"Retry-After": self.retry_after}),
        }[mode]
        head = f"HTTP/1.1 {status} X\r\nContent-Length: 2\r\nConnection: close\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in extra.items()) + "\r\nok"
        if mode != "slow":
            handler.wfile.write(head.encode())
            return
        for byte in head.encode():  # a read timeout never trips on this; only a deadline does
            if self._closed.wait(self.trickle_interval):
                return
            try:
                handler.wfile.write(bytes([byte]))
                handler.wfile.flush()
            except OSError:
                return

    def close(self) -> None:
        self._closed.set()
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> NotifyReceiver:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
