"""What `status` says about registry events: when the last event for each image in the table came,
as the receiver of the process in this pod remembers it (per process: a restart forgets, and
another replica's receiver may have seen others). Read from its loopback-only `/events/recent`."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Final

import httpx

from autorollout.config.events import EventsConfig
from autorollout.references import InvalidReferenceError, parse_image_reference

ASK_SECONDS: Final = 2.0


async def last_events_lines(events: EventsConfig, images: Sequence[str]) -> list[str]:
    """Lines for the images in `images`: "<image>  <time>  <source>", or why nothing is known."""
    scheme = "https" if events.tls_cert_file else "http"
    url = f"{scheme}://127.0.0.1:{events.port}/events/recent"
    try:
        # Our own process on loopback, asked for timestamps only and sent no credential: the
        # serving certificate names the Service, not 127.0.0.1.
        async with httpx.AsyncClient(timeout=ASK_SECONDS, verify=False, trust_env=False) as client:  # noqa: S501
            answer = await asyncio.wait_for(client.get(url), ASK_SECONDS)  # a deadline, not a read timeout
        answer.raise_for_status()
        recent = answer.json()
    except (httpx.HTTPError, ValueError, TimeoutError) as exc:
        return [
            "",
            f"last registry event: the receiver on port {events.port} did not answer ({type(exc).__name__})",
        ]
    keys: dict[str, str] = {}
    for image in images:
        with contextlib.suppress(InvalidReferenceError):
            keys.setdefault(parse_image_reference(image).repository_key, image)
    lines = ["", "last registry event (this pod's receiver; kept per process, a restart forgets):"]
    for key in sorted(keys):
        seen = recent.get(key) if isinstance(recent, dict) else None
        if isinstance(seen, dict) and isinstance(seen.get("at"), int | float):
            at = datetime.fromtimestamp(seen["at"], UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            lines.append(f"  {key}  {at}  {seen.get('source', '?')}")
        else:
            lines.append(f"  {key}  none since start")
    return lines
