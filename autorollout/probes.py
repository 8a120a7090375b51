"""The plain-HTTP side server on `webserver.port`: liveness, readiness and Prometheus metrics.

Upstream's probe paths (`/health/live`, `/health/ready`, 204) are kept so its chart values keep
working; `/healthz` and `/readyz` are aliases.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

ReadinessCheck = Callable[[], str | None]
"""Returns None when ready, else a one-line reason."""


class Readiness:
    """Named readiness checks; the process is ready when every check passes."""

    def __init__(self) -> None:
        self._checks: dict[str, ReadinessCheck] = {}

    def add(self, name: str, check: ReadinessCheck) -> None:
        self._checks[name] = check

    def problems(self) -> list[str]:
        found = []
        for name, check in self._checks.items():
            reason = check()
            if reason is not None:
                found.append(f"{name}: {reason}")
        return found


def build_probe_app(readiness: Readiness) -> Starlette:
    """Starlette app serving the health and metrics endpoints."""

    async def live(_: Request) -> Response:
        return Response(status_code=204)

    async def ready(_: Request) -> Response:
        problems = readiness.problems()
        if problems:
            return PlainTextResponse("\n".join(problems) + "\n", status_code=503)
        return Response(status_code=204)

    async def metrics(_: Request) -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return Starlette(
        routes=[
            Route("/health/live", live),
            Route("/healthz", live),
            Route("/health/ready", ready),
            Route("/readyz", ready),
            Route("/metrics", metrics),
        ]
    )
