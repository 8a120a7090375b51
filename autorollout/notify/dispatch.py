"""The notice sink the reconciler is given: fans each notice out to the configured sinks' queues,
runs their delivery tasks, and on shutdown drains them briefly (with a deadline), dropping and
counting what is left."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence

from autorollout.notify.delivery import SinkDelivery
from autorollout.notify.model import Notice

log = logging.getLogger("kube_autorollout.notify")

_DRAIN_POLL = 0.02


class NoticeDispatcher:
    """A `NoticeSink` over many sinks; `start` before the first cycle, `close` after the last."""

    def __init__(self, sinks: Sequence[SinkDelivery]) -> None:
        self.sinks = tuple(sinks)
        self._tasks: list[asyncio.Task[None]] = []

    def submit(self, notice: Notice) -> None:
        """Queue `notice` at every sink whose filter takes it; never waits."""
        for sink in self.sinks:
            try:
                sink.submit(notice)
            except Exception:  # a notification must never break the cycle that decided it
                log.exception("notification not queued", extra={"fields": {"sink": sink.settings.name}})

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(sink.run(), name=f"notifications {sink.settings.name}") for sink in self.sinks
        ]

    async def close(self, drain_seconds: float) -> None:
        """Let the sinks deliver what is queued for up to `drain_seconds`, then stop them; what is
        still queued is dropped (and counted)."""
        deadline = time.monotonic() + drain_seconds
        while not all(sink.idle for sink in self.sinks) and time.monotonic() < deadline:
            if any(task.done() for task in self._tasks):
                break  # a delivery task died (logged below): it will not drain
            await asyncio.sleep(_DRAIN_POLL)
        sending = [sink.sending for sink in self.sinks]  # cut short below: dropped (and counted) there
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                try:
                    await task
                except Exception:
                    log.exception("notification delivery failed", extra={"fields": {"task": task.get_name()}})
        self._tasks = []
        for sink, was_sending in zip(self.sinks, sending, strict=True):
            left = sink.drop_queued("shutting down") + was_sending
            if left:
                log.warning(
                    "notifications left undelivered at shutdown",
                    extra={"fields": {"sink": sink.settings.name, "dropped": left}},
                )
