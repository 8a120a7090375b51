"""The webhook's HTTP surface: `POST /mutate` in a Starlette app.

Bad input is answered, never raised: 413 for an oversize body, 400 with a one-line reason for
anything that is not a usable AdmissionReview, 200 with the review's answer otherwise. The endpoint
speaks ASGI directly (no Request/Response objects): admission is the hot path, and those objects
cost about as much as the whole review.
"""

from __future__ import annotations

import logging
import time
from typing import Final

from starlette.applications import Starlette
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from autorollout.errors import AutorolloutError
from autorollout.metrics import ADMISSION_REQUESTS, ADMISSION_SECONDS
from webhook.admission import AdmissionReviewer
from webhook.review import ReviewError

log = logging.getLogger("kube_autorollout.webhook")

# etcd stores objects up to 1.5 MiB; an UPDATE review carries the object twice, plus a little.
MAX_BODY_BYTES: Final = 4 * 1024 * 1024
_JSON: Final = b"application/json"
_TEXT: Final = b"text/plain; charset=utf-8"


class BodyTooLargeError(AutorolloutError):
    """The request body is over the configured limit."""


class ClientGoneError(AutorolloutError):
    """The client disconnected before sending the whole body."""


def declared_length(scope: Scope) -> int | None:
    """The Content-Length header as a number, if there is a valid one."""
    for name, value in scope["headers"]:
        if name == b"content-length":
            return int(value) if value.isdigit() else None
    return None


async def read_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    """The whole body, refusing early (Content-Length) or while streaming when over `limit`."""
    declared = declared_length(scope)
    if declared is not None and declared > limit:
        raise BodyTooLargeError
    message = await receive()
    if message["type"] == "http.disconnect":
        raise ClientGoneError
    body: bytes = message.get("body", b"")
    if not message.get("more_body", False):
        if len(body) > limit:
            raise BodyTooLargeError
        return body
    chunks = [body]
    size = len(body)
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGoneError
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLargeError
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _respond(send: Send, status: int, content_type: bytes, body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", content_type), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


class MutateEndpoint:
    """ASGI endpoint answering AdmissionReviews with `reviewer`."""

    def __init__(self, reviewer: AdmissionReviewer, max_body_bytes: int) -> None:
        self.reviewer = reviewer
        self.max_body_bytes = max_body_bytes
        self._invalid = ADMISSION_REQUESTS.labels("invalid")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        try:
            body = await read_body(scope, receive, self.max_body_bytes)
            answer = await self.reviewer.review(body)
        except ClientGoneError:
            return
        except BodyTooLargeError:
            self._invalid.inc()
            await _respond(send, 413, _TEXT, f"request body over {self.max_body_bytes} bytes\n".encode())
            return
        except ReviewError as exc:
            self._invalid.inc()
            await _respond(send, 400, _TEXT, f"bad AdmissionReview: {exc}\n".encode())
            return
        except Exception:
            # Only a bug gets here (the reviewer answers its own failures); keep serving.
            log.exception("could not read an admission request")
            self._invalid.inc()
            await _respond(send, 400, _TEXT, b"bad AdmissionReview: could not be processed\n")
            return
        ADMISSION_SECONDS.observe(time.perf_counter() - started)
        await _respond(send, 200, _JSON, answer)


class WebhookApp(Starlette):
    """The Starlette app of `/mutate`, except that `POST /mutate` itself goes straight to the endpoint:
    the router and the middleware cost about a sixth of a warm review, and the endpoint answers its
    own errors (never a 500). Everything else (a GET, another path) gets Starlette's 405 and 404."""

    def __init__(self, endpoint: MutateEndpoint) -> None:
        super().__init__(routes=[Route("/mutate", endpoint, methods=["POST"])])
        self._mutate = endpoint

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/mutate" and scope["method"] == "POST":
            await self._mutate(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def build_app(reviewer: AdmissionReviewer, *, max_body_bytes: int = MAX_BODY_BYTES) -> Starlette:
    """The ASGI app serving `POST /mutate`; `app.state.reviewer` is the reviewer it uses."""
    app = WebhookApp(MutateEndpoint(reviewer, max_body_bytes))
    app.state.reviewer = reviewer
    return app
