"""The plain-HTTP side server on `webserver.port`: liveness, readiness and Prometheus metrics.

Upstream's probe paths (`/health/live`, `/health/ready`, 204) are kept so its chart values keep
working; `/healthz` and `/readyz` are aliases.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from autorollout.kube import KubeClient, KubeError
from autorollout.serving import EmbeddedServer, limited_config

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


class ProbeServer:
    """uvicorn over plain HTTP for the probe app; `serve()` until `shutdown()`."""

    def __init__(self, readiness: Readiness, *, host: str = "0.0.0.0", port: int = 8080) -> None:  # noqa: S104
        config = limited_config(build_probe_app(readiness), host=host, port=port)
        self._server = EmbeddedServer(config)

    async def serve(self) -> None:
        await self._server.serve()

    def shutdown(self) -> None:
        self._server.should_exit = True


class ApiHealth:
    """Readiness of the Kubernetes API connection: GET /version now and then, remember the answer."""

    def __init__(self, kube: KubeClient, *, interval: float = 10.0, stale_after: float = 35.0) -> None:
        self._kube = kube
        self._interval = interval
        self._stale_after = stale_after
        self._answered_at: float | None = None
        self._last_error = "not checked yet"

    def problem(self) -> str | None:
        if self._answered_at is not None and time.monotonic() - self._answered_at < self._stale_after:
            return None
        return f"Kubernetes API did not answer: {self._last_error}"

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self._kube.get("/version")
                self._answered_at = time.monotonic()
            except KubeError as exc:
                self._last_error = str(exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self._interval)
