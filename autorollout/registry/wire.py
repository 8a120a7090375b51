"""What comes off the wire from a registry or a token service, made safe to use: transport failures
as typed RegistryErrors (never an httpx exception), bodies read under a size cap, and URLs a peer
hands us (redirect `Location`s, token realms) checked before anything connects to them.

Messages never quote what the peer sent (h11 appends the offending bytes to its errors, and a peer
may echo the request back): they say what failed, where, and the exception's type.
"""

from __future__ import annotations

import ipaddress
import re
import ssl

import httpx

from autorollout.registry.errors import BadResponseError, RegistryError, UnreachableError

_PORT_MAX = 65535
_HOST_NAME_RE = re.compile(rb"[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?\.?")  # "fqdn." too


def transport_error(exc: httpx.HTTPError, peer: str, stage: str, *, registry: str = "") -> RegistryError:
    """The error a failed exchange is reported as: the network's fault is a retryable
    UnreachableError, an unusable answer a BadResponseError. `stage` is what was under way
    ("the request", "the manifest 'v1' of team/app")."""
    name = type(exc).__name__
    if isinstance(exc, httpx.TimeoutException):
        return UnreachableError(f"no answer from {peer} in time during {stage} ({name})", registry=registry)
    if isinstance(exc, httpx.LocalProtocolError):
        # Our own request could not be written; its text may hold a header value, so it is not shown.
        return RegistryError(f"request to {peer} could not be sent ({name})", registry=registry)
    if isinstance(exc, httpx.UnsupportedProtocol):
        return BadResponseError(f"{peer}: not an http(s) URL ({name})", registry=registry)
    if isinstance(exc, httpx.RemoteProtocolError):
        # "peer closed connection without sending complete message body: received 10 bytes, ...":
        # the clause before the first colon says what happened; what follows may be the peer's bytes.
        detail = str(exc).split(":", 1)[0].strip() or name
        return UnreachableError(
            f"connection to {peer} broke off during {stage} ({name}: {detail})", registry=registry
        )
    if isinstance(exc, httpx.TransportError):
        detail = f"{name}: {exc}" if str(exc) else name
        return UnreachableError(f"connection to {peer} failed during {stage} ({detail})", registry=registry)
    if isinstance(exc, httpx.TooManyRedirects):
        return BadResponseError(f"too many redirects from {peer} ({name})", registry=registry)
    return BadResponseError(f"answer from {peer} unusable during {stage} ({name})", registry=registry)


async def read_capped(response: httpx.Response, limit: int, *, what: str) -> bytes:
    """Read a streamed body, refusing more than `limit` bytes (a registry is not trusted to be small);
    a transport failure meanwhile (short body, reset, stall) is a RegistryError like any other."""
    declared = response.headers.get("Content-Length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BadResponseError(f"{what} is {declared} bytes, more than the {limit} accepted")
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > limit:
                raise BadResponseError(f"{what} is larger than the {limit} bytes accepted")
            chunks.append(chunk)
    except httpx.HTTPError as exc:
        peer = response.request.url.netloc.decode("ascii")
        raise transport_error(exc, peer, f"the {what}") from exc
    return b"".join(chunks)


def url_problem(url: httpx.URL) -> str | None:
    """Why `url` is no place to connect to, or None: http(s), a host name or IP address, a port
    in 1-65535 (a socket raises OverflowError for more, and port 0 means any)."""
    if url.scheme not in ("http", "https"):
        return "not an http(s) URL"
    host = url.raw_host
    if not host:
        return "no host"
    if b":" in host:
        try:
            ipaddress.IPv6Address(host.decode("ascii"))
        except ValueError:
            return "not a host name or IP address"
    elif _HOST_NAME_RE.fullmatch(host) is None:
        return "not a host name or IP address"
    port = url.port
    if port is not None and not 1 <= port <= _PORT_MAX:
        return f"port {port} is not in 1-{_PORT_MAX}"
    return None


def redirect_target(request_url: httpx.URL, location: str) -> httpx.URL:
    """Where a redirect from `request_url` leads; BadResponseError when `location` is no URL to
    follow (another scheme such as `data:`, no host, a port out of range, garbage)."""
    peer = request_url.netloc.decode("ascii")
    try:
        url = httpx.URL(location)
        if not url.scheme:
            url = request_url.join(url)
    except (httpx.InvalidURL, ValueError, TypeError, OverflowError):
        raise BadResponseError(f"{peer} redirected to a Location that is not a URL") from None
    problem = url_problem(url)
    if problem is not None:
        raise BadResponseError(f"{peer} redirected to an unusable Location ({problem})")
    return url


def is_loopback_host(host: str) -> bool:
    """True for localhost, 127.0.0.0/8 and ::1 (brackets and port allowed)."""
    name = host
    if name.startswith("["):
        name = name[1 : name.find("]")] if "]" in name else name[1:]
    elif name.count(":") == 1:
        name = name.split(":", 1)[0]
    name = name.lower().rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def ssl_cause(exc: BaseException) -> ssl.SSLError | None:
    """The ssl error behind an httpx/httpcore transport error, if that is what it was."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


__all__ = [
    "is_loopback_host",
    "read_capped",
    "redirect_target",
    "ssl_cause",
    "transport_error",
    "url_problem",
]
