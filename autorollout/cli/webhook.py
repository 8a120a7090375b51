"""`kube-autorollout webhook`: the admission webhook server on its own.

Also the composition helpers `webhook_settings` and `open_webhook`, which `run` uses to serve the
webhook next to the reconciler with a resolver of its own over the same client and digest cache.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator, Coroutine
from typing import Any

from autorollout.cli.lifecycle import serve_until_signalled
from autorollout.cli.outcome import EXIT_OK, run_reported
from autorollout.cli.startup import announce, announce_api_server, start_logging
from autorollout.cli.wiring import credential_store, open_admission_resolver, open_resolver
from autorollout.config import Config, WebhookConfig
from autorollout.credentials import CredentialStore
from autorollout.errors import UsageError
from autorollout.kube import KubeClient, KubeConfigError
from autorollout.kube.pull_secrets import PullSecretReader
from autorollout.probes import ProbeServer, Readiness
from autorollout.registry.resolver import DigestResolver
from webhook.admission import AdmissionReviewer
from webhook.app import build_app
from webhook.policy import PullPolicyMode
from webhook.server import WebhookServer
from webhook.tls import ServingCertificate, ServingCertificateError

log = logging.getLogger("kube_autorollout.webhook")


class WebhookSetupError(UsageError):
    """The webhook cannot start with this configuration (reported as bad configuration)."""


def webhook_settings(config: Config, args: argparse.Namespace) -> WebhookConfig:
    """`webhook:` from the config with the command-line flags applied; needs a certificate and key."""
    updates: dict[str, Any] = {}
    for flag, key in (
        ("tls_cert", "tls_cert_file"),
        ("tls_key", "tls_key_file"),
        ("webhook_host", "host"),
        ("webhook_port", "port"),
    ):
        value = getattr(args, flag, None)
        if value is not None:
            updates[key] = value
    settings = config.webhook.model_copy(update=updates)
    if not settings.tls_cert_file or not settings.tls_key_file:
        raise WebhookSetupError(
            "the webhook serves HTTPS only: give --tls-cert and --tls-key "
            "(or webhook.tlsCertFile and webhook.tlsKeyFile)"
        )
    if not 0 <= settings.port <= 65535:
        raise WebhookSetupError(f"--webhook-port {settings.port} is not a TCP port")
    return settings


def connect_kube(kubeconfig: str | None) -> KubeClient | None:
    """An API client, or None (with a warning) when no connection is configured at all."""
    try:
        return KubeClient.from_kubeconfig(kubeconfig)
    except KubeConfigError as exc:
        log.warning(
            "no Kubernetes API: imagePullSecrets of workloads will not be read",
            extra={"fields": {"reason": str(exc)}},
        )
        return None


@contextlib.asynccontextmanager
async def open_webhook(
    settings: WebhookConfig,
    *,
    kube: KubeClient | None,
    resolver: DigestResolver,
    credentials: CredentialStore,
    pull_secrets: PullSecretReader | None = None,
) -> AsyncIterator[WebhookServer]:
    """A bound, not yet serving WebhookServer; `await server.serve()` and `server.shutdown()`.

    `resolver` is the webhook's own (`open_admission_resolver`); pass the reconciler's
    `pull_secrets` reader to share its cache.
    """
    if not settings.tls_cert_file or not settings.tls_key_file:
        raise WebhookSetupError("the webhook needs webhook.tlsCertFile and webhook.tlsKeyFile")
    try:
        certificate = ServingCertificate(settings.tls_cert_file, settings.tls_key_file)
    except ServingCertificateError as exc:
        raise WebhookSetupError(str(exc)) from None
    reviewer = AdmissionReviewer(
        resolver,
        credentials,
        mode=PullPolicyMode(settings.image_pull_policy),
        lookup_budget=settings.lookup_budget_seconds,
        max_images=settings.max_images_per_review,
        pull_secrets=pull_secrets or (PullSecretReader(kube) if kube is not None else None),
    )
    server = WebhookServer(build_app(reviewer), certificate, host=settings.host, port=settings.port)
    log.info(
        "webhook listening",
        extra={
            "fields": {
                "address": f"{settings.host}:{server.port}",
                "image_pull_policy": settings.image_pull_policy,
                "lookup_budget_seconds": settings.lookup_budget_seconds,
            }
        },
    )
    yield server


async def _serve(config: Config, settings: WebhookConfig, kubeconfig: str | None) -> int:
    credentials = credential_store(config)
    kube = connect_kube(kubeconfig)
    try:
        if kube is not None:
            await announce_api_server(kube)
        async with (
            open_resolver(config) as shared,
            open_admission_resolver(config, shared) as resolver,
            open_webhook(settings, kube=kube, resolver=resolver, credentials=credentials) as server,
        ):
            readiness = Readiness()
            readiness.add("webhook", server.readiness_problem)
            probes = ProbeServer(readiness, port=config.webserver.port)
            await serve_until_signalled(
                {"webhook": server.serve()}, probes=probes, stoppers=[server.shutdown]
            )
    finally:
        if kube is not None:
            await kube.aclose()
    log.info("webhook stopped")
    return EXIT_OK


def run_event_loop(main: Coroutine[Any, Any, int]) -> int:
    """Run `main` on uvloop when it is installed (it is with uvicorn[standard])."""
    # What is loaded by now (modules, configuration) lives as long as the process: frozen, it is
    # left out of every garbage collection, which took ~10 of ~55 µs per warm admission review.
    gc.freeze()
    try:
        import uvloop  # noqa: PLC0415
    except ImportError:  # pragma: no cover - uvloop is not built for every platform
        return asyncio.run(main)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)


def command(args: argparse.Namespace) -> int:
    """Serve `POST /mutate` over TLS until SIGTERM/SIGINT."""

    def body() -> int:
        startup = start_logging(args)
        settings = webhook_settings(startup.config, args)
        announce("webhook", startup, webhook=settings)
        return run_event_loop(_serve(startup.config, settings, args.kubeconfig))

    return run_reported(body)
