"""`kube-autorollout reconcile [--once [--dry-run]]`: the scheduled reconciler on its own.

Also the composition helpers `open_reconciler` and `reconciler_identity`, which `status` and `run`
use to build the same Reconciler from the same configuration.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import secrets
import signal
import socket
from collections.abc import AsyncIterator

from autorollout.cli.outcome import EXIT_FAILURE, EXIT_OK, UsageError, run_reported
from autorollout.cli.startup import announce, announce_api_server, start_logging
from autorollout.cli.wiring import credential_store, open_resolver
from autorollout.config import Config
from autorollout.credentials import CredentialStore
from autorollout.kube import KubeClient
from autorollout.kube.pull_secrets import PullSecretReader
from autorollout.probes import ProbeServer, Readiness
from autorollout.registry.resolver import DigestResolver
from autorollout.terminal import terminal_safe
from reconciler.reconciler import Reconciler
from reconciler.status import describe_cycle

log = logging.getLogger("kube_autorollout.reconciler")


def reconciler_identity() -> str:
    """`<pod or host name>_<random>`: unique per process, as client-go names lease holders."""
    return f"{os.environ.get('POD_NAME') or socket.gethostname()}_{secrets.token_hex(4)}"


@contextlib.asynccontextmanager
async def open_reconciler(
    config: Config,
    kubeconfig: str | None,
    *,
    kube: KubeClient | None = None,
    resolver: DigestResolver | None = None,
    credentials: CredentialStore | None = None,
) -> AsyncIterator[Reconciler]:
    """A Reconciler with its own API client, registry resolver and credentials unless shared ones are
    passed in (what is passed in stays open: its owner closes it)."""
    async with contextlib.AsyncExitStack() as stack:
        if kube is None:
            kube = KubeClient.from_kubeconfig(kubeconfig)
            stack.push_async_callback(kube.aclose)
        if resolver is None:
            resolver = await stack.enter_async_context(open_resolver(config))
        reconciler = Reconciler(
            config=config,
            kube=kube,
            resolver=resolver,
            credentials=credentials if credentials is not None else credential_store(config),
            pull_secrets=PullSecretReader(kube),
            identity=reconciler_identity(),
        )
        stack.push_async_callback(reconciler.aclose)
        yield reconciler


async def _once(config: Config, args: argparse.Namespace) -> int:
    async with open_reconciler(config, args.kubeconfig) as reconciler:
        await announce_api_server(reconciler.kube)
        await reconciler.start(watch=False)
        report = await reconciler.cycle.run(dry_run=args.dry_run)
    for line in describe_cycle(report):
        print(terminal_safe(line))  # lines quote registry and API errors
    return EXIT_FAILURE if report.failed else EXIT_OK


async def _forever(config: Config, args: argparse.Namespace) -> int:
    stop = asyncio.Event()
    readiness = Readiness()
    probes = ProbeServer(readiness, port=config.webserver.port)

    def shutdown() -> None:
        stop.set()
        probes.shutdown()

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, shutdown)
    async with open_reconciler(config, args.kubeconfig) as reconciler:
        await announce_api_server(reconciler.kube)
        readiness.add("reconciler", reconciler.readiness)
        serving = asyncio.create_task(probes.serve(), name="probes")
        try:
            await reconciler.run_forever(stop)
        finally:
            shutdown()
            await serving
    log.info("reconciler stopped")
    return EXIT_OK


def command(args: argparse.Namespace) -> int:
    """Run the reconciler: one cycle with `--once` (optionally `--dry-run`), else on the schedule."""

    def body() -> int:
        if args.dry_run and not args.once:
            raise UsageError("--dry-run needs --once")
        startup = start_logging(args)
        announce("reconcile", startup)
        config = startup.config
        return asyncio.run(_once(config, args) if args.once else _forever(config, args))

    return run_reported(body, failing="reconcile failed: ")
