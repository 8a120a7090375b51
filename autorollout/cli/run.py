"""`kube-autorollout run`: the webhook, the reconciler and the probe server in one process.

The composition root of the product: one API client, one registry client and one digest cache
serve both halves; each half has its own resolver (per-registry limits, in-flight lookups), so
neither can hold the other's lookups. SIGTERM stops all three; the reconciler finishes or abandons
the patch in flight and releases its lease.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

from autorollout.cli.events import open_events
from autorollout.cli.lifecycle import serve_until_signalled
from autorollout.cli.notifications import open_notifications
from autorollout.cli.outcome import EXIT_OK, run_reported
from autorollout.cli.reconcile import open_reconciler, schedule_errors_as_usage
from autorollout.cli.startup import announce, announce_api_server, start_logging
from autorollout.cli.webhook import (
    open_webhook,
    run_event_loop,
    webhook_settings,
)
from autorollout.cli.wiring import credential_store, open_admission_resolver, open_resolver
from autorollout.config import Config, WebhookConfig
from autorollout.kube import KubeClient
from autorollout.probes import ApiHealth, ProbeServer, Readiness

log = logging.getLogger("kube_autorollout.run")


async def _run(config: Config, settings: WebhookConfig, kubeconfig: str | None) -> int:
    kube = KubeClient.from_kubeconfig(kubeconfig)
    credentials = credential_store(config)
    stop = asyncio.Event()
    readiness = Readiness()
    api_health = ApiHealth(kube)
    readiness.add("kubernetes", api_health.problem)
    probes = ProbeServer(readiness, port=config.webserver.port)
    try:
        await announce_api_server(kube)
        async with (
            open_resolver(config) as resolver,
            open_admission_resolver(config, resolver) as admission,
            open_webhook(settings, kube=kube, resolver=admission, credentials=credentials) as webhook,
            open_notifications(config) as notices,
            open_reconciler(
                config, kubeconfig, kube=kube, resolver=resolver, credentials=credentials, notices=notices
            ) as reconciler,
            open_events(config, reconciler) as events,
        ):
            readiness.add("webhook", webhook.readiness_problem)
            readiness.add("reconciler", reconciler.readiness)
            parts: dict[str, Coroutine[Any, Any, object]] = {
                "webhook": webhook.serve(),
                "api health": api_health.run(stop),
                "reconciler": reconciler.run_forever(stop),
            }
            stoppers = [lambda: log.info("stopping"), stop.set, webhook.shutdown]
            if events is not None:
                readiness.add("events", events.receiver.readiness_problem)
                parts.update(events.tasks(stop))
                stoppers.append(events.receiver.shutdown)
            await serve_until_signalled(parts, probes=probes, stoppers=stoppers)
    finally:
        await kube.aclose()
    log.info("stopped")
    return EXIT_OK


def command(args: argparse.Namespace) -> int:
    """Serve the webhook and run the reconciler until SIGTERM/SIGINT."""

    def body() -> int:
        startup = start_logging(args)
        settings = webhook_settings(startup.config, args)
        announce("run", startup, webhook=settings)
        with schedule_errors_as_usage():
            return run_event_loop(_run(startup.config, settings, args.kubeconfig))

    return run_reported(body)
