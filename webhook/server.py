"""Serve the webhook app over TLS with uvicorn (httptools), following certificate rotation.

Every connection is held to `autorollout.serving.HttpLimits` (head, URL and header field caps;
handshake, header, body and keep-alive timeouts; a cap on open connections).

Signals are left to the caller (the composition root stops the webhook and the reconciler
together): call `shutdown()` to stop gracefully.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import Callable
from typing import Final

import uvicorn
from starlette.types import ASGIApp

from autorollout.errors import AutorolloutError
from autorollout.serving import (
    DEFAULT_LIMITS,
    EmbeddedServer,
    HttpLimits,
    limited_config,
    listening_socket,
)
from webhook.tls import ServingCertificate

GRACEFUL_SECONDS: Final = 10.0
_BACKLOG: Final = 2048


class WebhookServerError(AutorolloutError):
    """The listen address cannot be bound."""


def bind(host: str, port: int) -> socket.socket:
    """A bound TCP socket for `host:port` (IPv6 when the host is an IPv6 address)."""
    try:
        return listening_socket(host, port, _BACKLOG)
    except OSError as exc:
        raise WebhookServerError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


class WebhookServer:
    """uvicorn over TLS 1.2+ for the webhook app; `ready` once it accepts connections."""

    def __init__(
        self,
        app: ASGIApp,
        certificate: ServingCertificate,
        *,
        host: str = "0.0.0.0",  # noqa: S104 - a webhook listens for the API server
        port: int = 8443,
        graceful_seconds: float = GRACEFUL_SECONDS,
        limits: HttpLimits = DEFAULT_LIMITS,
    ) -> None:
        self.certificate = certificate
        self.host = host
        self._socket = bind(host, port)
        self.port: int = self._socket.getsockname()[1]

        def context_factory(
            _config: uvicorn.Config, _default: Callable[[], ssl.SSLContext]
        ) -> ssl.SSLContext:
            return certificate.context  # the live context, reloaded in place

        config = limited_config(
            app,
            limits,
            date_header=False,
            ssl_context_factory=context_factory,
            timeout_graceful_shutdown=int(graceful_seconds),
        )
        self._server = EmbeddedServer(config, limits)

    @property
    def ready(self) -> bool:
        """True while the server accepts connections and is not shutting down."""
        return self._server.started and not self._server.should_exit

    def readiness_problem(self) -> str | None:
        """None when ready, else a one-line reason (for `autorollout.probes.Readiness`)."""
        if self._server.should_exit:
            return "webhook server is stopping"
        if not self._server.started:
            return "webhook server is not listening yet"
        return None

    async def serve(self) -> None:
        """Serve until `shutdown()`; reloads the certificate when its files change."""
        watcher = asyncio.create_task(self.certificate.watch(), name="serving-certificate-watch")
        try:
            await self._server.serve(sockets=[self._socket])
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            self._socket.close()

    def close(self) -> None:
        """Release the listening socket of a server that will not serve."""
        self._socket.close()

    def shutdown(self) -> None:
        """Stop accepting connections and finish the open requests (graceful)."""
        self._server.should_exit = True
