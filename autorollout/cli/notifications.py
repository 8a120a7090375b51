"""The notification sinks built from `notifications:` (their URLs read from the environment or
files), run beside the reconciler and drained briefly when it stops."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path

import httpx

from autorollout.config import Config
from autorollout.config.notifications import NotificationSinkConfig
from autorollout.errors import UsageError
from autorollout.notify import DISCARD, NoticeSink
from autorollout.notify.delivery import SinkDelivery, SinkSettings
from autorollout.notify.dispatch import NoticeDispatcher
from autorollout.registry.network import cancel_safe
from autorollout.registry.trust import build_ssl_context

log = logging.getLogger("kube_autorollout.notify")


def sink_url(index: int, sink: NotificationSinkConfig) -> str:
    """The sink's URL from its environment variable or file (trailing newline stripped). Errors
    name the variable or the path, never the content."""
    key = f"notifications.sinks[{index}]"
    if sink.url_env is not None:
        value = os.environ.get(sink.url_env, "").strip()
        where = f"{key}.urlEnv: environment variable {sink.url_env}"
        if not value:
            raise UsageError(f"{where} is not set or empty")
    else:
        assert sink.url_file is not None
        where = f"{key}.urlFile: {sink.url_file}"
        try:
            value = Path(sink.url_file).read_text(encoding="utf-8", errors="replace").strip()
        except OSError as exc:
            raise UsageError(f"{where}: cannot read it: {exc.strerror}") from None
        if not value:
            raise UsageError(f"{where} is empty")
    try:
        url = httpx.URL(value)
    except (httpx.InvalidURL, TypeError, ValueError):
        url = None
    if url is None or url.scheme not in ("http", "https") or not url.host:
        raise UsageError(f"{where} does not hold an http:// or https:// URL")
    return value


def sink_settings(config: Config) -> list[SinkSettings]:
    """The configured sinks with their URLs; a usage error for the first one that cannot be read."""
    return [
        SinkSettings(
            name=sink.name,
            type=sink.type,
            url=sink_url(i, sink),
            outcomes=frozenset(sink.outcomes),
            timeout=sink.timeout_seconds,
            max_attempts=sink.max_attempts,
            backoff=sink.backoff_seconds,
            max_backoff=sink.max_backoff_seconds,
            queue_size=sink.queue_size,
        )
        for i, sink in enumerate(config.notifications.sinks)
    ]


@contextlib.asynccontextmanager
async def open_notifications(config: Config) -> AsyncIterator[NoticeSink]:
    """The sink to give the reconciler: DISCARD without configured sinks, else a running dispatcher,
    drained for `notifications.drainSeconds` on exit."""
    settings = sink_settings(config)
    if not settings:
        yield DISCARD
        return
    # The same trust as the registries (system store plus tls.caCertificatePaths); no redirects:
    # a receiver that redirects would get the body posted somewhere no one configured.
    transport = cancel_safe(
        httpx.AsyncHTTPTransport(verify=build_ssl_context(config.tls.ca_certificate_paths))
    )
    async with httpx.AsyncClient(transport=transport, follow_redirects=False) as client:
        dispatcher = NoticeDispatcher([SinkDelivery(s, client) for s in settings])
        dispatcher.start()
        log.info(
            "notifications on",
            extra={"fields": {"sinks": ", ".join(f"{s.name} ({s.type})" for s in settings)}},
        )
        try:
            yield dispatcher
        finally:
            await dispatcher.close(config.notifications.drain_seconds)
