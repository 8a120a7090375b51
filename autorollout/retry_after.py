"""`Retry-After` (RFC 9110, 10.2.3), as registries and the Kubernetes API server send it with 429/503.

Pure, and never raises: every error answer goes through it, and a bad header must not hide the
error it came with.
"""

from __future__ import annotations

import datetime
import email.utils
import math

__all__ = ["parse_retry_after"]


def parse_retry_after(value: str | None, now: datetime.datetime | None = None) -> float | None:
    """`Retry-After` as seconds from now: delta-seconds or an HTTP date; None when absent or invalid."""
    if value is None:
        return None
    text = value.strip()
    if text.isascii() and text.isdigit():  # not "²": isdigit() takes Unicode digits float() refuses
        seconds = float(text)
        return seconds if math.isfinite(seconds) else None
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.UTC)
    current = now or datetime.datetime.now(datetime.UTC)
    return max(0.0, (when - current).total_seconds())
