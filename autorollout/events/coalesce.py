"""Bursts of events become one lookup: events are gathered per image for a short window, then the
images gathered are handed to `dispatch` together; events that come while it runs wait for the
next round (the lookup that is running may have been made before their push landed)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from autorollout.events.model import ImageEvent
from autorollout.references import ImageReference

log = logging.getLogger("kube_autorollout.events")

DEFAULT_MAX_PENDING = 10_000


@dataclass(slots=True)
class PendingImage:
    """An image some events named: when the first of them came (monotonic) and from which sources."""

    image: ImageReference
    received: float
    sources: set[str] = field(default_factory=set)
    events: int = 0


Dispatch = Callable[[Sequence[PendingImage]], Awaitable[None]]


class EventCoalescer:
    """Gathers events per "registry/repository:tag"; `run` hands them to `dispatch`, one round at a time."""

    def __init__(
        self,
        dispatch: Dispatch,
        *,
        window: float,
        max_pending: int = DEFAULT_MAX_PENDING,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._dispatch = dispatch
        self._window = window
        self._max_pending = max_pending
        self._clock = clock
        self._pending: dict[str, PendingImage] = {}
        self._arrived = asyncio.Event()

    def __len__(self) -> int:
        return len(self._pending)

    def add(self, events: Sequence[ImageEvent], source: str) -> bool:
        """Queue `events`; False (nothing queued) when that would pass the pending bound."""
        new = {e.key for e in events} - self._pending.keys()
        if len(self._pending) + len(new) > self._max_pending:
            return False
        now = self._clock()
        for event in events:
            pending = self._pending.get(event.key)
            if pending is None:
                pending = self._pending[event.key] = PendingImage(event.image, now)
            pending.sources.add(source)
            pending.events += 1
        self._arrived.set()
        return True

    def take(self) -> list[PendingImage]:
        """The images gathered so far, removed from the queue."""
        batch = list(self._pending.values())
        self._pending.clear()
        self._arrived.clear()
        return batch

    async def run(self, stop: asyncio.Event) -> None:
        """Dispatch gathered images, a window after the first of a round arrived, until `stop`."""
        stopping = asyncio.ensure_future(stop.wait())
        try:
            while not stop.is_set():
                arrived = asyncio.ensure_future(self._arrived.wait())
                await asyncio.wait({arrived, stopping}, return_when=asyncio.FIRST_COMPLETED)
                arrived.cancel()
                if stop.is_set():
                    return
                if self._window > 0:
                    await asyncio.wait({stopping}, timeout=self._window)
                batch = self.take()
                if batch:
                    try:
                        await self._dispatch(batch)
                    except Exception:  # a failed round must not end the receiver; cron stays the net
                        log.exception("event round failed", extra={"fields": {"images": len(batch)}})
        finally:
            stopping.cancel()
