"""The ceiling: uvicorn (uvloop, httptools, TLS) answering every POST with one fixed AdmissionReview,
as a raw ASGI app, or (`starlette`) mounted in a Starlette app the way the webhook mounts `/mutate`.

Usage: python -m bench.bare_endpoint PORT CERT KEY RESPONSE_FILE [raw|starlette]
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.routing import Route
from starlette.types import Receive, Scope, Send


class FixedAnswer:
    """A raw ASGI app (a class, so that a Starlette Route mounts it as ASGI, as the webhook's is)."""

    def __init__(self, response: bytes) -> None:
        self.response = response
        self.headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(response)).encode()),
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        more = True
        while more:  # read the whole body, as the webhook does
            message = await receive()
            more = message.get("more_body", False)
        await send({"type": "http.response.start", "status": 200, "headers": self.headers})
        await send({"type": "http.response.body", "body": self.response})


if __name__ == "__main__":
    port, cert, key, response_file = sys.argv[1:5]
    app: Any = FixedAnswer(Path(response_file).read_bytes())
    if sys.argv[5:] == ["starlette"]:
        app = Starlette(routes=[Route("/mutate", app, methods=["POST"])])
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=int(port),
        loop="uvloop",
        http="httptools",
        ws="none",
        lifespan="off",
        access_log=False,
        log_level="warning",
        server_header=False,
        date_header=False,
        ssl_certfile=cert,
        ssl_keyfile=key,
    )
