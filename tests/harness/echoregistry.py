"""A registry that echoes each request's headers back in its JSON error body, as a debugging proxy
or a hostile registry would: for tests that a credential sent never comes back out of the product."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class EchoRegistry:
    """Threaded on 127.0.0.1 (`host`): HEAD gets 405 (so the client GETs), a GET without
    Authorization the `challenge` (if any), every other GET `status` with the echo. Every
    Authorization value received is kept in `authorizations`, and TCP connections are counted."""

    def __init__(self, status: int, challenge: str | None) -> None:
        self.authorizations: list[str] = []
        self.connections = 0
        lock = threading.Lock()
        echo = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def setup(self) -> None:
                with lock:
                    echo.connections += 1
                super().setup()

            def _send(self, code: int, body: bytes, headers: dict[str, str]) -> None:
                self.send_response(code)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_HEAD(self) -> None:
                if "Authorization" in self.headers:
                    echo.authorizations.append(self.headers["Authorization"])
                self._send(405, b"", {})

            def do_GET(self) -> None:
                authorization = self.headers.get("Authorization")
                if authorization is None and challenge is not None:
                    self._send(401, b"{}", {"WWW-Authenticate": challenge})
                    return
                if authorization is not None:
                    echo.authorizations.append(authorization)
                message = f"Authorization: {authorization}; all headers: {json.dumps(dict(self.headers))}"
                body = json.dumps({"errors": [{"code": "DENIED", "message": message}]}).encode()
                self._send(status, body, {"Content-Type": "application/json"})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)
