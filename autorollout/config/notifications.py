"""The `notifications:` section: chat and webhook sinks (none by default), each with its filter,
where its secret URL comes from (an environment variable or a file, never this file), its deadline,
retries and queue."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, Field, model_validator

from autorollout.config.models import NonBlankStr, _Section
from autorollout.notify.formats import SinkType
from autorollout.notify.model import NoticeOutcome

ALL_OUTCOMES: tuple[NoticeOutcome, ...] = tuple(NoticeOutcome)


def _sink_name(value: str) -> str:
    if not re.fullmatch(r"[a-z0-9]([-a-z0-9_]{0,61}[a-z0-9])?", value):
        raise ValueError("not a sink name (lowercase letters, digits, '-' and '_', at most 63)")
    return value


def _env_name(value: str) -> str:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", value):
        raise ValueError("not an environment variable name (letters, digits and '_')")
    return value


SinkName = Annotated[str, AfterValidator(_sink_name)]
EnvName = Annotated[str, AfterValidator(_env_name)]


class NotificationSinkConfig(_Section):
    """One sink: `type` says what it posts; the URL is read from `urlEnv` or `urlFile` at start."""

    name: SinkName
    type: SinkType
    url_env: EnvName | None = None
    url_file: NonBlankStr | None = None
    outcomes: list[NoticeOutcome] = Field(default_factory=lambda: list(ALL_OUTCOMES), min_length=1)
    timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    max_attempts: int = Field(default=4, ge=1, le=20)
    backoff_seconds: float = Field(default=1.0, gt=0, le=600)
    max_backoff_seconds: float = Field(default=60.0, gt=0, le=3600)
    queue_size: int = Field(default=1000, ge=1, le=100_000)

    @model_validator(mode="after")
    def _one_url_source(self) -> NotificationSinkConfig:
        if (self.url_env is None) == (self.url_file is None):
            raise ValueError("needs exactly one of urlEnv or urlFile (the URL itself is a secret)")
        if self.backoff_seconds > self.max_backoff_seconds:
            raise ValueError("backoffSeconds must not be longer than maxBackoffSeconds")
        return self


class NotificationsConfig(_Section):
    """Where the reconciler's decisions are also sent; no sinks: nothing is sent."""

    sinks: list[NotificationSinkConfig] = Field(default_factory=list)
    # At shutdown, the queued notices get this long to be delivered; the rest are dropped (counted).
    drain_seconds: float = Field(default=5.0, ge=0, le=60)

    @model_validator(mode="after")
    def _unique_names(self) -> NotificationsConfig:
        names = [sink.name for sink in self.sinks]
        doubled = sorted({name for name in names if names.count(name) > 1})
        if doubled:
            raise ValueError(f"sink names must be unique: {', '.join(doubled)} given more than once")
        return self
