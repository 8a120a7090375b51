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
import socket
from collections.abc import AsyncIterator, Coroutine, Iterator
from typing import Any

from autorollout.cli.events import open_events
from autorollout.cli.lifecycle import on_stop_signals, serve_until_signalled
from autorollout.cli.notifications import open_notifications
from autorollout.cli.outcome import EXIT_FAILURE, EXIT_OK, run_reported
from autorollout.cli.startup import announce, announce_api_server, start_logging
from autorollout.cli.wiring import credential_store, open_resolver
from autorollout.config import Config
from autorollout.credentials import CredentialStore
from autorollout.errors import UsageError
from autorollout.kube import KubeClient
from autorollout.kube.pull_secrets import PullSecretReader
from autorollout.notify import DISCARD, NoticeSink
from autorollout.probes import ProbeServer, Readiness
from autorollout.registry.resolver import DigestResolver
from autorollout.terminal import terminal_safe
from reconciler.reconciler import Reconciler
from reconciler.schedule import ScheduleError
from reconciler.status import describe_cycle

log = logging.getLogger("kube_autorollout.reconciler")


@contextlib.contextmanager
def schedule_errors_as_usage() -> Iterator[None]:
    """A `cronSchedule` the reconciler cannot schedule is bad configuration (exit 2)."""
    try:
        yield
    except ScheduleError as exc:
        raise UsageError(f"cronSchedule: {exc}") from None


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
    notices: NoticeSink = DISCARD,
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
            notices=notices,
        )
        stack.push_async_callback(reconciler.aclose)
        yield reconciler


async def _once(config: Config, args: argparse.Namespace) -> int:
    async with (
        open_notifications(config) as notices,
        open_reconciler(config, args.kubeconfig, notices=DISCARD if args.dry_run else notices) as reconciler,
    ):
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

    def stop_early() -> None:  # a signal while the reconciler starts
        stop.set()
        probes.shutdown()

    on_stop_signals(stop_early)
    async with (
        open_notifications(config) as notices,
        open_reconciler(config, args.kubeconfig, notices=notices) as reconciler,
        open_events(config, reconciler) as events,
    ):
        await announce_api_server(reconciler.kube)
        readiness.add("reconciler", reconciler.readiness)
        parts: dict[str, Coroutine[Any, Any, object]] = {"reconciler": reconciler.run_forever(stop)}
        stoppers = [stop.set]
        if events is not None:
            readiness.add("events", events.receiver.readiness_problem)
            parts.update(events.tasks(stop))
            stoppers.append(events.receiver.shutdown)
        await serve_until_signalled(parts, probes=probes, stoppers=stoppers)
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
        with schedule_errors_as_usage():
            return asyncio.run(_once(config, args) if args.once else _forever(config, args))

    return run_reported(body, failing="reconcile failed: ")
