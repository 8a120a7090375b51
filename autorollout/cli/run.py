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
import signal

from autorollout.cli.outcome import EXIT_OK, run_reported
from autorollout.cli.reconcile import open_reconciler
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
            open_reconciler(
                config, kubeconfig, kube=kube, resolver=resolver, credentials=credentials
            ) as reconciler,
        ):
            readiness.add("webhook", webhook.readiness_problem)
            readiness.add("reconciler", reconciler.readiness)

            def shutdown() -> None:
                log.info("stopping")
                stop.set()
                webhook.shutdown()
                probes.shutdown()

            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, shutdown)
            tasks = [
                asyncio.create_task(webhook.serve(), name="webhook"),
                asyncio.create_task(probes.serve(), name="probes"),
                asyncio.create_task(api_health.run(stop), name="api health"),
                asyncio.create_task(reconciler.run_forever(stop), name="reconciler"),
            ]
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            failed = [t for t in done if not t.cancelled() and t.exception() is not None]
            if failed:
                shutdown()
                await asyncio.gather(*tasks, return_exceptions=True)
                raise failed[0].exception()  # type: ignore[misc]
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
        return run_event_loop(_run(startup.config, settings, args.kubeconfig))

    return run_reported(body)
