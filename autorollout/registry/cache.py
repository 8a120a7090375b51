"""A small TTL cache for resolved digests, shared by the webhook and the reconciler."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

DEFAULT_MAX_ENTRIES = 50_000


class TtlCache(Generic[K, V]):
    """Entries expire `ttl` seconds after they were stored; the oldest go first when full."""

    def __init__(
        self,
        ttl: float,
        *,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if ttl < 0:
            raise ValueError("ttl must not be negative")
        self.ttl = ttl
        self._max_entries = max(1, max_entries)
        self._clock = clock
        self._entries: OrderedDict[K, tuple[float, V]] = OrderedDict()

    def get(self, key: K, *, stored_after: float | None = None) -> V | None:
        """The value stored under `key` if it has not expired yet (and, given `stored_after`, was stored
        at or after that time on the cache's clock; an older entry is kept for other callers)."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires_at, value = entry
        if expires_at <= self._clock():
            del self._entries[key]
            return None
        if stored_after is not None and expires_at - self.ttl < stored_after:
            return None
        return value

    def put(self, key: K, value: V, *, at: float | None = None) -> None:
        """Store `value`; `at` (default now) is when it was true, and the TTL counts from there."""
        if self.ttl == 0:
            return
        self._entries.pop(key, None)
        while len(self._entries) >= self._max_entries:
            self._entries.popitem(last=False)
        self._entries[key] = ((self._clock() if at is None else at) + self.ttl, value)

    def discard(self, key: K) -> None:
        self._entries.pop(key, None)

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


__all__ = ["TtlCache"]
