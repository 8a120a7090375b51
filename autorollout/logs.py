"""Structured logging: one JSON object per line by default, readable text on a terminal.

Call sites log one line per decision and pass the facts as `extra={"fields": {...}}`; the
formatters render them as JSON keys or as `key=value` pairs.

The level is the config's `logLevel` when the file sets it, else the one `RUST_LOG` (what
upstream's chart sets) gives our crate, else info.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import orjson

LogFormat = Literal["json", "text", "auto"]

_LEVELS = {
    "trace": logging.DEBUG,
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


DEFAULT_LEVEL = "info"
RUST_LOG_ENV = "RUST_LOG"
# Upstream's crate: env_logger applies a directive to it when the directive's target is a prefix of
# this name; the longest such target wins, a bare level is the default.
_RUST_CRATE = "kube_autorollout"
# env_logger's levels and ours; "off" has no equivalent here, errors are the least we log.
_RUST_LEVELS = {
    "error": "error",
    "warn": "warn",
    "info": "info",
    "debug": "debug",
    "trace": "trace",
    "off": "error",
}


@dataclass(frozen=True, slots=True)
class LogLevelChoice:
    """The level to log at, where it came from (`logLevel`, `RUST_LOG` or `default`), and the
    directives of RUST_LOG that were ignored because they could not be read."""

    level: str
    source: str
    problems: tuple[str, ...] = ()


def rust_log_level(value: str) -> tuple[str | None, list[str]]:
    """The level an env_logger spec (`info`, `kube_autorollout=debug,warn`, `x=trace/regex`) gives
    upstream's crate, or None when no directive applies; with one problem line per unreadable
    directive (named by position: the value itself is not repeated)."""
    spec = value.split("/", 1)[0]  # a trailing /regex filters messages; there is no equivalent here
    directives = spec.split(",")
    best: tuple[int, str] | None = None
    problems: list[str] = []
    for index, directive in enumerate(directives, 1):
        text = directive.strip()
        if not text:
            continue
        target, equals, level = (part.strip() for part in text.partition("="))
        if not equals and target.lower() in _RUST_LEVELS:
            target, level = "", target
        level = level.lower() or "trace"  # a target without a level means every level
        if level not in _RUST_LEVELS or "=" in level or (equals and not target):
            problems.append(
                f"{RUST_LOG_ENV}: directive {index} of {len(directives)} not understood, ignored "
                "(expected LEVEL or TARGET=LEVEL, LEVEL one of error, warn, info, debug, trace, off)"
            )
            continue
        if _RUST_CRATE.startswith(target.replace("-", "_")) and (best is None or len(target) >= best[0]):
            best = (len(target), _RUST_LEVELS[level])
    return (best[1] if best else None), problems


def choose_level(config_level: str | None, environ: Mapping[str, str]) -> LogLevelChoice:
    """config `logLevel` (when the file sets it) > RUST_LOG > info."""
    if config_level is not None:
        return LogLevelChoice(config_level, "logLevel")
    rust_log = environ.get(RUST_LOG_ENV)
    if rust_log:
        level, problems = rust_log_level(rust_log)
        if level is not None:
            return LogLevelChoice(level, RUST_LOG_ENV, tuple(problems))
        return LogLevelChoice(DEFAULT_LEVEL, "default", tuple(problems))
    return LogLevelChoice(DEFAULT_LEVEL, "default")


def fields_of(record: logging.LogRecord) -> dict[str, Any]:
    extra = getattr(record, "fields", None)
    return extra if isinstance(extra, dict) else {}


class JsonFormatter(logging.Formatter):
    """`{"ts", "level", "logger", "msg", ...fields}` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        entry.update(fields_of(record))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


class TextFormatter(logging.Formatter):
    """`HH:MM:SS level logger: message key=value ...` for humans."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created))
        pairs = " ".join(f"{key}={value}" for key, value in fields_of(record).items())
        line = f"{stamp} {record.levelname.lower():7} {record.name}: {record.getMessage()}"
        if pairs:
            line = f"{line} {pairs}"
        if record.exc_info:
            line = f"{line}\n{self.formatException(record.exc_info)}"
        return line


def configure_logging(level: str = "info", fmt: LogFormat = "auto") -> None:
    """Route all logs to stderr in the chosen format (auto: text on a TTY, JSON otherwise)."""
    if fmt == "auto":
        fmt = "text" if sys.stderr.isatty() else "json"
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(_LEVELS.get(level.lower(), logging.INFO))
    # Per-request access lines and client chatter would drown the decisions.
    for noisy in ("uvicorn.access", "httpx", "httpcore", "kubernetes"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
