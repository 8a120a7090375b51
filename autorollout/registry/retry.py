"""How often and how long a registry request is retried: bounded, jittered, and never past a
`Retry-After` longer than the policy allows."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from autorollout.registry.errors import RateLimitedError, RegistryError

__all__ = ["RetryPolicy"]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Bounded retries with jittered exponential backoff, for 5xx, 429 and network failures only."""

    attempts: int = 3
    base_delay: float = 0.2
    max_delay: float = 2.0
    # A longer Retry-After is not waited for: the error is reported and the next cycle tries again.
    max_retry_after: float = 10.0

    def delay(
        self, failed_attempt: int, error: RegistryError, rand: Callable[[], float] = random.random
    ) -> float | None:
        """Seconds to wait before the next attempt, or None to give up (`failed_attempt` counts from 1)."""
        if not error.retryable or failed_attempt >= self.attempts:
            return None
        if isinstance(error, RateLimitedError) and error.retry_after is not None:
            return error.retry_after if error.retry_after <= self.max_retry_after else None
        backoff = min(self.max_delay, self.base_delay * 2.0 ** (failed_attempt - 1))
        return backoff * (0.5 + rand() / 2)
