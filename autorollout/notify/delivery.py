"""One sink's delivery: a bounded queue that `submit` fills without waiting, and a task that posts
each notice in turn with a deadline per request, retries with backoff (obeying `Retry-After`), and
drops (and counts) what it cannot deliver.

The sink's URL is a secret (Slack's and Teams' URLs carry their credential in the path or the query):
it is never logged, and every error text is redacted of it before it is logged.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx

from autorollout import metrics
from autorollout.notify.backoff import Answer, classify, retry_delay
from autorollout.notify.formats import FORMATTERS, SinkType
from autorollout.notify.model import Notice, NoticeOutcome
from autorollout.registry.authorization import redact
from autorollout.retry_after import parse_retry_after

log = logging.getLogger("kube_autorollout.notify")

DELIVERED = "delivered"
RETRIED = "retried"
DROPPED = "dropped"
_MIN_SECRET_PART = 8  # shorter URL parts ("/", "/hook") are no secret and would redact everything


@dataclass(frozen=True, slots=True)
class SinkSettings:
    """One configured sink, its URL already read from the environment or its file."""

    name: str
    type: SinkType
    url: str
    outcomes: frozenset[NoticeOutcome]
    timeout: float = 10.0
    max_attempts: int = 4
    backoff: float = 1.0
    max_backoff: float = 60.0
    queue_size: int = 1000


def url_secrets(url: str) -> list[str]:
    """The forms of a sink URL an error text could quote: whole, its path and its query."""
    parsed = httpx.URL(url)
    raw_path = parsed.raw_path.decode("ascii", "replace").partition("?")[0]
    parts = [url, str(parsed), raw_path, parsed.path, parsed.query.decode("ascii", "replace")]
    return [part for part in parts if len(part) >= _MIN_SECRET_PART]


@dataclass(frozen=True, slots=True)
class _Attempt:
    status: int | None
    retry_after: float | None = None
    problem: str = ""


class SinkDelivery:
    """Queue and delivery task of one sink; `submit` never blocks and never raises."""

    def __init__(
        self,
        settings: SinkSettings,
        client: httpx.AsyncClient,
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.settings = settings
        self._client = client
        self._sleep = sleep
        self._jitter = jitter
        self._secrets = url_secrets(settings.url)
        self._queue: collections.deque[Notice] = collections.deque()
        self._wake = asyncio.Event()
        self._busy = False
        self._counters = {
            outcome: metrics.NOTIFICATIONS.labels(sink=settings.name, outcome=outcome)
            for outcome in (DELIVERED, RETRIED, DROPPED)
        }

    @property
    def idle(self) -> bool:
        """Nothing queued and nothing being sent."""
        return not self._queue and not self._busy

    @property
    def sending(self) -> bool:
        """A notice is being sent (or waits for its next attempt)."""
        return self._busy

    @property
    def queued(self) -> int:
        return len(self._queue)

    def wants(self, notice: Notice) -> bool:
        return notice.outcome in self.settings.outcomes

    def submit(self, notice: Notice) -> None:
        """Queue `notice` if this sink's filter takes it; a full queue drops it (counted, logged)."""
        if not self.wants(notice):
            return
        if len(self._queue) >= self.settings.queue_size:
            self._drop(notice, f"queue full ({self.settings.queue_size} waiting)")
            return
        self._queue.append(notice)
        self._wake.set()

    async def run(self) -> None:
        """Deliver queued notices one at a time, until cancelled."""
        while True:
            while not self._queue:
                self._wake.clear()
                await self._wake.wait()
            notice = self._queue.popleft()
            self._busy = True
            try:
                await self._deliver(notice)
            except asyncio.CancelledError:
                self._drop(notice, "shutting down while it was being sent")
                raise
            finally:
                self._busy = False

    def drop_queued(self, reason: str) -> int:
        """Drop (and count) everything still queued; the number dropped."""
        dropped = 0
        while self._queue:
            self._drop(self._queue.popleft(), reason)
            dropped += 1
        return dropped

    async def _deliver(self, notice: Notice) -> None:
        body = json.dumps(FORMATTERS[self.settings.type](notice), separators=(",", ":")).encode()
        attempt = 1
        while True:
            result = await self._post(body)
            answer = classify(result.status)
            if answer is Answer.DELIVERED:
                self._counters[DELIVERED].inc()
                log.info("notification delivered", extra={"fields": self._fields(notice, attempt=attempt)})
                return
            if answer is Answer.REJECTED:
                self._drop(notice, f"{result.problem}, not retried", attempt=attempt)
                return
            if attempt >= self.settings.max_attempts:
                self._drop(notice, f"{result.problem} after {attempt} attempts", attempt=attempt)
                return
            delay = retry_delay(
                attempt,
                base=self.settings.backoff,
                cap=self.settings.max_backoff,
                jitter=self._jitter(),
                retry_after=result.retry_after,
            )
            if delay is None:
                self._drop(
                    notice,
                    f"{result.problem}: Retry-After {result.retry_after:.0f}s is beyond "
                    f"maxBackoffSeconds ({self.settings.max_backoff:g}s)",
                    attempt=attempt,
                )
                return
            self._counters[RETRIED].inc()
            log.info(
                "notification not delivered; retrying",
                extra={
                    "fields": {
                        **self._fields(notice, attempt=attempt),
                        "error": result.problem,
                        "retry_in_s": round(delay, 3),
                    }
                },
            )
            await self._sleep(delay)
            attempt += 1

    async def _post(self, body: bytes) -> _Attempt:
        """One POST within the sink's deadline (the whole exchange, not a read timeout); the
        answer's body is never read: only its status and `Retry-After` count."""
        headers = {"Content-Type": "application/json", "User-Agent": "kube-autorollout"}
        try:
            async with asyncio.timeout(self.settings.timeout):
                async with self._client.stream(
                    "POST", self.settings.url, content=body, headers=headers
                ) as answer:
                    status = answer.status_code
                    retry_after = parse_retry_after(answer.headers.get("Retry-After"))
        except TimeoutError:
            return _Attempt(None, problem=f"no answer within {self.settings.timeout:g}s")
        except httpx.HTTPError as exc:
            return _Attempt(None, problem=self._redacted(f"{type(exc).__name__}: {exc}"))
        return _Attempt(status, retry_after, f"HTTP {status}")

    def _redacted(self, text: str) -> str:
        return redact(text, self._secrets)[:300]

    def _drop(self, notice: Notice, reason: str, *, attempt: int = 0) -> None:
        self._counters[DROPPED].inc()
        log.warning(
            "notification dropped",
            extra={"fields": {**self._fields(notice, attempt=attempt), "reason": self._redacted(reason)}},
        )

    def _fields(self, notice: Notice, *, attempt: int) -> dict[str, object]:
        fields: dict[str, object] = {
            "sink": self.settings.name,
            "outcome": notice.outcome.value,
            "workload": f"{notice.kind}/{notice.namespace}/{notice.name}",
        }
        if notice.container:
            fields["container"] = notice.container
        if attempt:
            fields["attempt"] = attempt
        return fields
