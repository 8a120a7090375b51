"""A loopback port that accepts TCP connections, counts them and never answers: a silent registry."""

from __future__ import annotations

import socket
import threading


class Tarpit:
    """Accepts on 127.0.0.1:`port` and holds every connection open without reading or answering."""

    def __init__(self, backlog: int = 256) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(backlog)
        self.port: int = self.sock.getsockname()[1]
        self.accepted: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted.append(conn)

    def close(self) -> None:
        self.sock.close()
        for conn in self.accepted:
            conn.close()

    def __enter__(self) -> Tarpit:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
