"""The watch record: when a rollout started and which digests it rolled, as the annotation carries it.

`2026-12-01T13:00:00.000000Z app=sha256:<old>,sha256:<new> init=-,sha256:<new>`: the restartedAt
timestamp of the rollout's own patch, then one `container=old,new` per moved container (`-`: nothing
was recorded). Container names (DNS labels) and digests contain neither `=`, `,` nor spaces. No `>`:
the API server's JSON patch `test` compares HTML-escaped text, and a value with `<`, `>` or `&`
never equals itself there.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from autorollout.annotations import format_restarted_at, parse_timestamp

_UNRECORDED = "-"


@dataclass(frozen=True, slots=True)
class RolledDigest:
    """One container a rollout moved: from `old` (None: unrecorded) to `new`."""

    container: str
    old: str | None
    new: str


@dataclass(frozen=True, slots=True)
class WatchRecord:
    """A rollout whose verdict is pending."""

    started: datetime
    rolled: tuple[RolledDigest, ...]

    def text(self) -> str:
        """`container app: sha256:old -> sha256:new`, one clause per rolled container."""
        return "; ".join(f"container {r.container}: {r.old or 'unrecorded'} -> {r.new}" for r in self.rolled)


def format_watch(started: datetime, rolled: Iterable[RolledDigest]) -> str:
    """The annotation value for a rollout started at `started` that moves `rolled`."""
    parts = [f"{r.container}={r.old or _UNRECORDED},{r.new}" for r in rolled]
    return " ".join([format_restarted_at(started), *parts])


def parse_watch(value: str | None) -> WatchRecord | None:
    """The watch record in an annotation value, or None if it is not one."""
    stamp, *parts = (value or "").split() or [""]
    started = parse_timestamp(stamp)
    if started is None or not parts:
        return None
    rolled: list[RolledDigest] = []
    for part in parts:
        container, eq, digests = part.partition("=")
        old, comma, new = digests.partition(",")
        if not (container and eq and comma and old and new):
            return None
        rolled.append(RolledDigest(container, None if old == _UNRECORDED else old, new))
    return WatchRecord(started, tuple(rolled))
