"""Durations as people write them in annotations: `90s`, `10m`, `1h30m`, `2d`, or plain seconds."""

from __future__ import annotations

import re

from autorollout.policy.errors import PolicyError

_UNITS = {"d": 86_400, "h": 3_600, "m": 60, "s": 1}
_PART = re.compile(r"(\d+)([dhms])", re.ASCII)
_WHOLE = re.compile(r"(?:\d+[dhms])+", re.ASCII)
MAX_SECONDS = 366 * 86_400


def parse_duration(text: str) -> int:
    """Whole seconds of `text` (`0`, `45`, `90s`, `10m`, `1h30m`, `2d`); raises PolicyError."""
    value = text.strip()
    if value.isdigit():
        seconds = int(value)
    elif _WHOLE.fullmatch(value):
        seconds = sum(int(n) * _UNITS[unit] for n, unit in _PART.findall(value))
    else:
        raise PolicyError("not a duration (e.g. 90s, 10m, 1h30m)")
    if seconds > MAX_SECONDS:
        raise PolicyError("duration longer than 366 days")
    return seconds


def format_duration(seconds: float) -> str:
    """`1h30m`, `4m10s`, `0s`: the short form status lines use (rounded up to whole seconds)."""
    left = int(-(-seconds // 1)) if seconds > 0 else 0
    parts = []
    for unit, size in _UNITS.items():
        if left >= size:
            parts.append(f"{left // size}{unit}")
            left %= size
    return "".join(parts) or "0s"
