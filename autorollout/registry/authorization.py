"""Authorization header values for registry requests, and keeping credentials out of every message.

httpx and h11 refuse an illegal header value with an error that quotes the whole value (the newline
at the end of a mounted secret is enough), and a non-ASCII one with a bare UnicodeEncodeError. So each
value is checked here before it is set, and the error names where the credential came from, never
what it is. What a registry sends back is quoted only through `redact`, so it cannot carry a
credential in use (transport failures are worded without their text by `wire.transport_error`).
"""

from __future__ import annotations

import base64
import unicodedata
from collections.abc import Iterable
from typing import TYPE_CHECKING

from autorollout.registry.errors import InvalidCredentialsError

if TYPE_CHECKING:
    from autorollout.credentials import RegistryCredentials

REDACTED = "[redacted]"
_WITHHELD = "(text withheld: it quoted a credential)"


def credential_problem(value: str, *, raw_header: bool) -> str | None:
    """Why `value` cannot be sent, or None. `raw_header`: it goes into the header as it is (a bearer
    token); otherwise it is base64-encoded as UTF-8 first (Basic username and password, as Docker)."""
    if any(unicodedata.category(char) == "Cc" for char in value):
        return "contains a control character (a line break or tab inside the value?)"
    if raw_header and not value.isascii():
        return "contains a non-ASCII character (tokens are ASCII: a character copied with it by mistake?)"
    if raw_header and " " in value:
        return "contains a space"
    return None


def basic_authorization(credentials: RegistryCredentials) -> str:
    """`Basic base64(username:password)`; InvalidCredentialsError when they cannot be sent."""
    username, password = credentials.username or "", credentials.password or ""
    what, problem = "username", credential_problem(username, raw_header=False)
    if problem is None and ":" in username:
        problem = 'contains ":", which Basic authentication cannot carry'
    if problem is None:
        what, problem = "password", credential_problem(password, raw_header=False)
    if problem is not None:
        raise _unsendable(f"the {what} of {source_of(credentials)}", problem)
    return "Basic " + _base64(f"{username}:{password}")


def bearer_authorization(token: str, *, source: str) -> str:
    """`Bearer <token>`; InvalidCredentialsError naming `source` when the token cannot be sent."""
    problem = credential_problem(token, raw_header=True) if token else "is empty"
    if problem is not None:
        raise _unsendable(f"the token {source}", problem)
    return f"Bearer {token}"


def source_of(credentials: RegistryCredentials) -> str:
    """Where the credentials came from, for messages (config entry, secret name and key)."""
    return credentials.source or "the configured credentials"


def _unsendable(what: str, problem: str) -> InvalidCredentialsError:
    return InvalidCredentialsError(f"{what} {problem}; it is not sent (an HTTP header cannot carry it)")


def _base64(text: str) -> str:
    return base64.b64encode(text.encode()).decode("ascii")


def secret_forms(credentials: RegistryCredentials | None, authorizations: Iterable[str] = ()) -> set[str]:
    """Every form in which these credentials, and the Authorization values sent, could be quoted back:
    password, token, "user:password", its base64, the whole "Basic ..."/"Bearer ..." values."""
    forms: set[str] = set()
    if credentials is not None:
        if credentials.token:
            forms |= {credentials.token, f"Bearer {credentials.token}"}
        if credentials.password:
            login = f"{credentials.username or ''}:{credentials.password}"
            forms |= {credentials.password, login, _base64(login), f"Basic {_base64(login)}"}
    for value in authorizations:
        forms |= {value, value.partition(" ")[2].strip()}
    forms.discard("")
    return forms


def redact(text: str, secrets: Iterable[str]) -> str:
    """`text` with every occurrence of each secret replaced by "[redacted]" (overlaps merged). Should
    the result still contain one (the marker joining up with its neighbours), a fixed text instead."""
    wanted = {secret for secret in secrets if secret}
    spans: list[tuple[int, int]] = []
    for secret in wanted:
        start = text.find(secret)
        while start != -1:
            spans.append((start, start + len(secret)))
            start = text.find(secret, start + 1)
    if not spans:
        return text
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    parts: list[str] = []
    position = 0
    for start, end in merged:
        parts += [text[position:start], REDACTED]
        position = end
    parts.append(text[position:])
    for candidate in ("".join(parts), _WITHHELD):
        if not any(secret in candidate for secret in wanted):
            return candidate
    return ""


__all__ = [
    "REDACTED",
    "basic_authorization",
    "bearer_authorization",
    "credential_problem",
    "redact",
    "secret_forms",
    "source_of",
]
