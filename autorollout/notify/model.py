"""A notice: one decision of the reconciler, in the words every sink formats from."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Final, Protocol


class NoticeOutcome(StrEnum):
    """What happened; each sink's filter names these values."""

    ROLLED_OUT = "rolledOut"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    HELD = "held"
    REGISTRY_ERROR = "registryError"


@dataclass(frozen=True, slots=True)
class Notice:
    """One decision about one workload (and container, where it is about one).

    `detail` is the human-readable result or reason, built from text that is already free of
    credentials (the same text the matching Kubernetes Event carries).
    """

    outcome: NoticeOutcome
    kind: str
    namespace: str
    name: str
    at: datetime
    container: str | None = None
    image: str | None = None
    old_digest: str | None = None
    new_digest: str | None = None
    detail: str = ""


class NoticeSink(Protocol):
    """Takes notices without blocking: delivery happens elsewhere, and may drop what it cannot send."""

    def submit(self, notice: Notice) -> None: ...


class _Discard:
    def submit(self, notice: Notice) -> None:
        """Notifications are off: nothing to deliver."""


#: The sink when no notification sink is configured.
DISCARD: Final[NoticeSink] = _Discard()
