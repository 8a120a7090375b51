"""The life of a long-running command (`run`, `webhook`, `reconcile`): its parts and the probe server
run side by side until SIGTERM/SIGINT, or until one of them fails; then every part is told to stop,
is waited for, and the failure (if any) ends the command."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import Any

from autorollout.probes import ProbeServer

__all__ = ["on_stop_signals", "serve_until_signalled"]


def on_stop_signals(callback: Callable[[], None]) -> None:
    """Call `callback` on SIGTERM and SIGINT (replacing what was set before)."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, callback)


async def serve_until_signalled(
    parts: Mapping[str, Coroutine[Any, Any, object]],
    *,
    probes: ProbeServer,
    stoppers: Sequence[Callable[[], None]],
) -> None:
    """Run `parts` (by name) and `probes` until a signal, a failure, or until every part returned.

    `stoppers` ask the parts to finish (each called once, before the probe server is shut down).
    """
    stopped = False

    def shutdown() -> None:
        nonlocal stopped
        if stopped:
            return
        stopped = True
        for stop in stoppers:
            stop()
        probes.shutdown()

    on_stop_signals(shutdown)
    tasks = [asyncio.create_task(part, name=name) for name, part in parts.items()]
    serving = asyncio.create_task(probes.serve(), name="probes")
    pending: set[asyncio.Task[object]] = {*tasks, serving}
    failed: BaseException | None = None
    try:
        while failed is None and not all(task.done() for task in tasks):
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            failed = next((t.exception() for t in done if not t.cancelled() and t.exception()), None)
    finally:
        shutdown()
        await asyncio.gather(*tasks, serving, return_exceptions=True)
    if failed is not None:
        raise failed
