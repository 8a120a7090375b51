"""A per-source request rate limit: a token bucket, pure given its clock."""

from __future__ import annotations

import time
from collections.abc import Callable


class RequestRate:
    """`rate` requests per second, `burst` at once; `admit` says how long to wait when it refuses."""

    def __init__(self, rate: float, burst: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._rate = rate
        self._burst = float(burst)
        self._clock = clock
        self._tokens = float(burst)
        self._updated = clock()

    def admit(self) -> float:
        """0.0 when the request may go on (a token is taken), else the seconds until one would."""
        now = self._clock()
        self._tokens = min(self._burst, self._tokens + (now - self._updated) * self._rate)
        self._updated = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return 0.0
        return (1.0 - self._tokens) / self._rate
