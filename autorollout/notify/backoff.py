"""When a sink's delivery tries again: pure decisions on an answer, with the jitter passed in."""

from __future__ import annotations

from enum import StrEnum


class Answer(StrEnum):
    """What a receiver's answer (or its absence) means for the notice."""

    DELIVERED = "delivered"
    RETRY = "retry"  # a transport error, a timeout, 408, 425, 429 or a 5xx
    REJECTED = "rejected"  # any other answer: sending the same body again would not change it


_RETRYABLE_STATUS = frozenset({408, 425, 429})


def classify(status: int | None) -> Answer:
    """`status` None: no answer (a transport error or the deadline)."""
    if status is None or status in _RETRYABLE_STATUS or status >= 500:
        return Answer.RETRY
    return Answer.DELIVERED if 200 <= status < 300 else Answer.REJECTED


def retry_delay(
    retry: int,
    *,
    base: float,
    cap: float,
    jitter: float,
    retry_after: float | None = None,
) -> float | None:
    """Seconds before retry number `retry` (1 for the first), or None: give the notice up.

    Exponential from `base`, capped at `cap`, spread by `jitter` (0..1: between half and all of the
    step, so replicas and sinks do not retry in step). A receiver's `Retry-After` is obeyed as a
    minimum; one beyond `cap` gives the notice up rather than hold the sink's queue that long.
    """
    step = min(cap, base * 2.0 ** (retry - 1))
    delay = step * (0.5 + 0.5 * min(max(jitter, 0.0), 1.0))
    if retry_after is None:
        return delay
    if retry_after > cap:
        return None
    return max(delay, retry_after)
