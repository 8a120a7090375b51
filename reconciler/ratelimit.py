"""A token bucket bounding how many PATCHes per second the reconciler sends.

The Kubernetes API client has no client-side rate limit of its own, so a tag pushed under hundreds of
workloads must not turn into hundreds of simultaneous rollouts.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


class TokenBucket:
    """`rate` tokens per second, at most `burst` saved up; `reserve` is pure given the clock."""

    def __init__(
        self,
        rate: float,
        burst: float = 1.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self.burst = max(1.0, burst)
        self._clock = clock
        self._sleep = sleep
        self._tokens = self.burst
        self._updated = clock()
        self._lock = asyncio.Lock()

    def reserve(self) -> float:
        """Take one token now and return how long the caller must wait before using it."""
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
        self._updated = now
        self._tokens -= 1.0
        return 0.0 if self._tokens >= 0 else -self._tokens / self.rate

    def pause(self, seconds: float) -> None:
        """Hold every later caller back for `seconds` (the API server said Retry-After)."""
        self.reserve_until(self._clock() + seconds)

    def reserve_until(self, instant: float) -> None:
        now = self._clock()
        self._tokens = min(self._tokens, 1.0) - max(0.0, instant - now) * self.rate
        self._updated = now

    async def acquire(self) -> None:
        """Wait for a token; callers are served in arrival order."""
        async with self._lock:
            wait = self.reserve()
            if wait > 0:
                await self._sleep(wait)
