"""`kube-autorollout status`: the labeled workloads in scope, container by container, and whether each
is up to date with its registry — computed exactly as the next reconcile cycle would, changing nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from autorollout.cli.events_status import last_events_lines
from autorollout.cli.outcome import EXIT_OK, run_reported
from autorollout.cli.reconcile import open_reconciler
from autorollout.config import Config, load_config
from autorollout.logs import configure_logging
from autorollout.terminal import terminal_safe_lines
from reconciler.status import format_table, health_lines, status_rows


async def _status(config: Config, args: argparse.Namespace) -> str:
    async with open_reconciler(config, args.kubeconfig) as reconciler:
        await reconciler.start(watch=False)
        plans = await reconciler.cycle.plan()
    if not plans:
        scope = ", ".join(reconciler.namespaces) if reconciler.namespaces else "all namespaces"
        return f"No labeled workloads (kube-autorollout/enabled=true) in {scope}.\n"
    table = format_table(status_rows(plans), full=args.full or args.output == "wide")
    health = health_lines(plans)
    if health:  # after a blank line: the table stays one row per container for scripts
        table += "\n" + "".join(line + "\n" for line in health)
    if config.events.enabled:
        images = [c.image for plan in plans for c in plan.workload.containers]
        table += "".join(line + "\n" for line in await last_events_lines(config.events, images))
    return table


def command(args: argparse.Namespace) -> int:
    """Print the status table; exit 1 when the cluster cannot be read."""

    def body() -> int:
        config = load_config(args.config, strict=args.strict_config or None)
        # Decisions are the table here; only problems go to stderr.
        configure_logging("warn" if config.log_level in ("info", "debug", "trace") else config.log_level)
        # Registry error texts appear in the table.
        sys.stdout.write(terminal_safe_lines(asyncio.run(_status(config, args))))
        return EXIT_OK

    return run_reported(body, failing="status failed: ")
