"""The registry-event receiver wired to the reconciler (`run` and `reconcile`): each coalesced
round of pushed images becomes `Cycle.run(images=...)` on the leader, which looks the tags up
itself (never trusting the event) and rolls out exactly what moved.

With several replicas only the leader accepts events; the others answer 503 and the sender retries
(docs/registry-events.md, "Several replicas").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Coroutine, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autorollout import metrics
from autorollout.config import Config
from autorollout.config.events import EventSourceConfig
from autorollout.errors import UsageError
from autorollout.events.auth import SourceAuth
from autorollout.events.coalesce import EventCoalescer, PendingImage
from autorollout.events.limits import RequestRate
from autorollout.events.receiver import EventReceiver, EventSource, RecentEvents, build_receiver_app
from autorollout.events.sources import SOURCES, parser_for
from autorollout.references import InvalidReferenceError, parse_image_reference
from reconciler.act import Result
from reconciler.reconciler import Reconciler

log = logging.getLogger("kube_autorollout.events")


def source_secret(name: str, source: EventSourceConfig) -> bytes | None:
    """The secret of a source, from the file or the config (trailing newline stripped); None when
    unauthenticated. An unreadable file is a usage error naming the path, never the content."""
    if source.secret is not None:
        return source.secret.get_secret_value().strip().encode()
    if source.secret_file is not None:
        try:
            value = Path(source.secret_file).read_bytes().strip()
        except OSError as exc:
            raise UsageError(
                f"events.sources.{name}.secretFile: cannot read {source.secret_file}: {exc.strerror}"
            ) from None
        if not value:
            raise UsageError(f"events.sources.{name}.secretFile: {source.secret_file} is empty")
        return value
    return None


def event_sources(config: Config) -> dict[str, EventSource]:
    """The configured sources, ready for the receiver; warns about each unauthenticated one."""
    built: dict[str, EventSource] = {}
    for name, source in config.events.sources.configured().items():
        kind = SOURCES[name]
        secret = source_secret(name, source)
        if secret is None:
            log.warning(
                "event source accepts unauthenticated requests",
                extra={"fields": {"source": name, "key": f"events.sources.{name}.allowUnauthenticated"}},
            )
        header = (source.header or kind.header).lower()
        built[name] = EventSource(
            name=name,
            parse=parser_for(name, registry_host=source.registry_host),
            auth=SourceAuth(kind.scheme, header, kind.query_token and source.header is None, secret),
            rate=RequestRate(source.requests_per_second, source.burst),
        )
    return built


def _image_keys(images: Sequence[str]) -> set[str]:
    """The "registry/repository:tag" keys of container images (unparsable ones left out)."""
    keys = set()
    for image in images:
        with contextlib.suppress(InvalidReferenceError):
            keys.add(parse_image_reference(image).repository_key)
    return keys


@dataclass
class EventService:
    """The receiver's server and coalescer; `tasks` are run beside the reconciler's."""

    receiver: EventReceiver
    coalescer: EventCoalescer
    recent: RecentEvents

    def tasks(self, stop: asyncio.Event) -> dict[str, Coroutine[Any, Any, object]]:
        return {"event receiver": self.receiver.serve(), "event rounds": self.coalescer.run(stop)}


def _accepting(reconciler: Reconciler) -> str | None:
    not_ready = reconciler.readiness()
    if not_ready is not None:
        return not_ready
    elector = reconciler.elector
    if elector is not None and not elector.is_leader:
        return "not the leader; another replica rolls out"
    return None


async def _round(reconciler: Reconciler, batch: Sequence[PendingImage]) -> None:
    """One coalesced round: a cycle over the workloads using these images, then the metrics."""
    if _accepting(reconciler) is not None:  # the lease was lost since the events were accepted
        log.warning("events dropped: no longer the leader", extra={"fields": {"images": len(batch)}})
        return
    report = await reconciler.cycle.run(
        images=[p.image for p in batch], should_stop=lambda: _accepting(reconciler) is not None
    )
    done = time.monotonic()
    rolled_keys: set[str] = set()
    for outcome in report.outcomes:
        if outcome.result is Result.ROLLED_OUT:
            rolled_keys |= _image_keys([c.image for c in outcome.plan.workload.containers])
    for pending in batch:
        if pending.image.repository_key in rolled_keys:
            metrics.EVENT_TO_PATCH_SECONDS.observe(done - pending.received)
            for source in pending.sources:
                metrics.EVENTS.labels(source=source, outcome="rolled_out").inc()


@contextlib.asynccontextmanager
async def open_events(config: Config, reconciler: Reconciler) -> AsyncIterator[EventService | None]:
    """The receiver for `reconciler`, or None when `events.enabled` is false."""
    events = config.events
    if not events.enabled:
        yield None
        return
    sources = event_sources(config)

    async def dispatch(batch: Sequence[PendingImage]) -> None:
        await _round(reconciler, batch)

    coalescer = EventCoalescer(dispatch, window=events.coalesce_seconds)
    recent = RecentEvents()
    app = build_receiver_app(
        sources,
        coalescer,
        lambda: _accepting(reconciler),
        max_body_bytes=events.max_body_bytes,
        recent=recent,
    )
    receiver = EventReceiver(
        app, host=events.host, port=events.port, cert_file=events.tls_cert_file, key_file=events.tls_key_file
    )
    log.info(
        "event receiver listening",
        extra={
            "fields": {
                "port": receiver.port,
                "tls": receiver.tls,
                "sources": sorted(sources),
                "coalesce_seconds": events.coalesce_seconds,
            }
        },
    )
    try:
        yield EventService(receiver, coalescer, recent)
    finally:
        receiver.shutdown()
