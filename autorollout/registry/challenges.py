"""`WWW-Authenticate` challenges (RFC 7235) as registries send them, parsed without trusting them, and
the token scope a pull asks for. Pure: no network."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

_HTTP_TOKEN_RE = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"  # noqa: S105 (RFC 7230 "token", not a secret)
_PARAM_RE = re.compile(rf'\s*({_HTTP_TOKEN_RE})\s*=\s*(?:"((?:[^"\\]|\\.)*)"|({_HTTP_TOKEN_RE}))\s*')
_SCHEME_RE = re.compile(rf"\s*({_HTTP_TOKEN_RE})(?=\s|$|,)")
_TOKEN68_RE = re.compile(r"\s*[A-Za-z0-9\-._~+/]+=*\s*(?=,|$)")


@dataclass(frozen=True, slots=True)
class Challenge:
    """One `WWW-Authenticate` challenge: scheme in lowercase ("basic", "bearer") and its parameters."""

    scheme: str
    params: Mapping[str, str] = field(default_factory=dict)

    @property
    def realm(self) -> str | None:
        return self.params.get("realm")


def parse_www_authenticate(header: str) -> list[Challenge]:
    """Parse a `WWW-Authenticate` value (RFC 7235), possibly several challenges; junk is skipped."""
    challenges: list[Challenge] = []
    pos = 0
    while pos < len(header):
        if header[pos] in ", \t":
            pos += 1
            continue
        scheme = _SCHEME_RE.match(header, pos)
        if scheme is None:
            # Garbage: skip to the next comma and try again.
            nxt = header.find(",", pos)
            pos = len(header) if nxt == -1 else nxt + 1
            continue
        pos = scheme.end()
        params: dict[str, str] = {}
        token68 = _TOKEN68_RE.match(header, pos)
        if token68 is not None and not _PARAM_RE.match(header, pos):
            pos = token68.end()
        else:
            while True:
                param = _PARAM_RE.match(header, pos)
                if param is None:
                    break
                name, quoted, plain = param.groups()
                value = re.sub(r"\\(.)", r"\1", quoted) if quoted is not None else plain
                params[name.lower()] = value
                pos = param.end()
                if pos < len(header) and header[pos] == ",":
                    pos += 1
                    if not _PARAM_RE.match(header, pos):
                        break
                else:
                    break
        challenges.append(Challenge(scheme.group(1).lower(), params))
    return challenges


def pick_challenge(challenges: list[Challenge]) -> Challenge | None:
    """Prefer Bearer (the token flow) over Basic, as Docker does; other schemes are unsupported."""
    for scheme in ("bearer", "basic"):
        for challenge in challenges:
            if challenge.scheme == scheme:
                return challenge
    return None


def repository_scope(repository: str) -> str:
    """The token scope to pull one repository."""
    return f"repository:{repository}:pull"


__all__ = ["Challenge", "parse_www_authenticate", "pick_challenge", "repository_scope"]
