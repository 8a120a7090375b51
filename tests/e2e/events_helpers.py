"""Helpers for the registry-event e2e tests and the push bench: a registry that notifies our
receivers (distribution's `notifications.endpoints`), and configs with the receiver on."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from tests.harness.registry import LocalRegistry, start_registry

# Far in the future: only an event can have caused a rollout (1 January, midnight, seconds first).
NEVER = "0 0 0 1 1 *"


def notification_endpoint(name: str, port: int, token: str) -> dict[str, object]:
    """One `notifications.endpoints` entry sending to our receiver on `port` with a bearer token."""
    return {
        "name": name,
        "url": f"http://127.0.0.1:{port}/events/distribution",
        "headers": {"Authorization": [f"Bearer {token}"]},
        "timeout": "2s",
        "threshold": 3,
        "backoff": "200ms",
        # Blob uploads and pulls are not what we listen for; leaving them out saves requests.
        "ignoredmediatypes": ["application/octet-stream"],
        "ignore": {"actions": ["pull"]},
    }


@contextlib.contextmanager
def notifying_registry(workdir: Path, endpoints: Sequence[dict[str, object]]) -> Iterator[LocalRegistry]:
    """A plain-HTTP registry of its own that notifies `endpoints` of every push."""
    registry = start_registry("plain", workdir, notifications=endpoints)
    try:
        yield registry
    finally:
        registry.stop()


def events_section(port: int, secret_file: Path, **extra: Any) -> dict[str, Any]:
    """`events:` with the receiver on 127.0.0.1:`port` and the distribution source's token in a file."""
    return {
        "enabled": True,
        "host": "127.0.0.1",
        "port": port,
        "coalesceSeconds": 0.05,
        "sources": {"distribution": {"secretFile": str(secret_file)}, **extra},
    }
