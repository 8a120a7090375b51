"""The webhook's HTTP surface: `POST /mutate` as a Starlette app.

Bad input is answered, never raised: 413 for an oversize body, 400 with a one-line reason for
anything that is not a usable AdmissionReview, 200 with the review's answer otherwise.
"""

from __future__ import annotations

import logging
import time
from typing import Final

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from autorollout.metrics import ADMISSION_REQUESTS, ADMISSION_SECONDS
from webhook.admission import AdmissionReviewer
from webhook.review import ReviewError

log = logging.getLogger(__name__)

# etcd stores objects up to 1.5 MiB; an UPDATE review carries the object twice, plus a little.
MAX_BODY_BYTES: Final = 4 * 1024 * 1024
_JSON: Final = "application/json"
_TEXT: Final = "text/plain; charset=utf-8"


class BodyTooLargeError(Exception):
    """The request body is over the configured limit."""


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, refusing early (Content-Length) or while streaming when over `limit`."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLargeError
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLargeError
        chunks.append(chunk)
    return b"".join(chunks)


def _text(status: int, message: str) -> Response:
    return Response(message + "\n", status_code=status, media_type=_TEXT)


def build_app(reviewer: AdmissionReviewer, *, max_body_bytes: int = MAX_BODY_BYTES) -> Starlette:
    """The ASGI app serving `POST /mutate`; `app.state.reviewer` is the reviewer it uses."""
    invalid = ADMISSION_REQUESTS.labels("invalid")

    async def mutate(request: Request) -> Response:
        started = time.perf_counter()
        try:
            body = await read_body(request, max_body_bytes)
            answer = await reviewer.review(body)
        except BodyTooLargeError:
            invalid.inc()
            return _text(413, f"request body over {max_body_bytes} bytes")
        except ReviewError as exc:
            invalid.inc()
            return _text(400, f"bad AdmissionReview: {exc}")
        except Exception:
            # Only a bug gets here (the reviewer answers its own failures); keep serving.
            log.exception("could not read an admission request")
            invalid.inc()
            return _text(400, "bad AdmissionReview: could not be processed")
        ADMISSION_SECONDS.observe(time.perf_counter() - started)
        return Response(answer, media_type=_JSON)

    app = Starlette(routes=[Route("/mutate", mutate, methods=["POST"])])
    app.state.reviewer = reviewer
    return app
