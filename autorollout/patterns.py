"""`hostnamePattern` matching: which configured registry entry applies to an image's registry host."""

from __future__ import annotations

import re
from functools import lru_cache

from autorollout.references import DOCKER_HUB_HOSTS

__all__ = ["host_matches"]


@lru_cache(maxsize=1024)
def _compile(pattern: str) -> re.Pattern[str]:
    # Only "*" is special (any run of characters, dots and ports included); "?" and "[" are literal.
    body = ".*".join(re.escape(part) for part in pattern.split("*"))
    return re.compile(body, re.IGNORECASE | re.DOTALL)


def host_matches(pattern: str, host: str) -> bool:
    """True if `pattern` (glob with `*`, case-insensitive) matches all of `host`, its port included.

    Docker Hub's host names (docker.io, index.docker.io, registry-1.docker.io) are one registry: a
    pattern matching any of them matches all of them.
    """
    if not pattern:
        return False
    compiled = _compile(pattern)
    if compiled.fullmatch(host):
        return True
    if host.lower() in DOCKER_HUB_HOSTS:
        return any(compiled.fullmatch(alias) for alias in DOCKER_HUB_HOSTS)
    return False
