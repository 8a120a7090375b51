"""DNS names for a serving certificate's subjectAltName: validated, and IDNA-encoded where they are not ASCII.

Rules: RFC 1123 host names (labels of letters, digits and inner hyphens, at most 63 characters each,
at most 253 in all, no trailing dot); a wildcard only as the whole leftmost label (`*.`) of a name with
at least two more labels, as TLS clients match it; a non-ASCII name becomes its IDNA 2008 A-label form
(`bücher.example` -> `xn--bcher-kva.example`), which is what certificates carry.
"""

from __future__ import annotations

import ipaddress
import re

import idna

from autorollout.errors import AutorolloutError

__all__ = ["MAX_NAME_LENGTH", "InvalidDnsName", "dns_name"]

MAX_NAME_LENGTH = 253
_MAX_LABEL_LENGTH = 63
_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?", re.IGNORECASE)
_SHOWN = 80


class InvalidDnsName(AutorolloutError, ValueError):
    """A name that cannot go into a certificate; the message is one line."""


def dns_name(name: str) -> str:
    """`name` as it goes into the certificate (ASCII, IDNA-encoded); raises InvalidDnsName."""
    shown = _shown(name)
    if not name:
        raise InvalidDnsName("a DNS name is empty")
    if any(ch.isspace() or not ch.isprintable() for ch in name):
        raise InvalidDnsName(f"DNS name {shown} contains whitespace or control characters")
    if name.endswith("."):
        raise InvalidDnsName(f"DNS name {shown} ends with a dot; leave it out")
    if _is_ip(name):
        raise InvalidDnsName(f"{shown} is an IP address: give it with --ip")
    wildcard = name.startswith("*.")
    rest = name[2:] if wildcard else name
    if not rest.isascii():
        rest = _idna(rest, shown)
    labels = rest.split(".")
    if "*" in rest:
        raise InvalidDnsName(f"DNS name {shown}: a wildcard is only allowed as the whole first label (*.)")
    if wildcard and len(labels) < 2:
        raise InvalidDnsName(
            f"DNS name {shown}: a wildcard needs at least two labels after it (*.example.com)"
        )
    encoded = ("*." if wildcard else "") + rest
    if len(encoded) > MAX_NAME_LENGTH:
        raise InvalidDnsName(f"DNS name of {len(encoded)} characters; at most {MAX_NAME_LENGTH} are allowed")
    for label in labels:
        if not label:
            raise InvalidDnsName(f"DNS name {shown} has an empty label (two dots in a row, or a leading dot)")
        if len(label) > _MAX_LABEL_LENGTH:
            raise InvalidDnsName(f"DNS name {shown} has a label of {len(label)} characters; at most 63")
        if not _LABEL.fullmatch(label):
            raise InvalidDnsName(
                f"DNS name {shown}: labels are letters, digits and hyphens, not starting or ending with '-'"
            )
    return encoded


def _idna(name: str, shown: str) -> str:
    try:
        return idna.encode(name, uts46=True).decode("ascii")
    except (idna.IDNAError, UnicodeError) as exc:
        raise InvalidDnsName(
            f"DNS name {shown} is not a valid internationalised name: {_first_line(exc)}"
        ) from None


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def _shown(name: str) -> str:
    """`name` quoted with control characters escaped, shortened when long (one line, always)."""
    return repr(name if len(name) <= _SHOWN else name[:_SHOWN] + "...")


def _first_line(exc: Exception) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:_SHOWN]
