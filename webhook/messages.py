"""Admission warning texts: short, printable, naming the container and its image.

kubectl prints each as `Warning: <text>`; they are kept under 120 characters so a line stays whole.
"""

from __future__ import annotations

from typing import Final

from webhook.workload import Container

MAX_WARNING: Final = 119
PREFIX: Final = "kube-autorollout: "
_ELLIPSIS: Final = "..."


def printable(text: str) -> str:
    """`text` with anything but printable ASCII replaced by "?" (warnings travel in HTTP headers)."""
    if text.isascii() and text.isprintable():
        return text
    return "".join(ch if " " <= ch <= "~" else "?" for ch in text)


def _shorten(text: str, width: int) -> str:
    if len(text) <= width:
        return text
    if width <= len(_ELLIPSIS):
        return _ELLIPSIS[:width]
    keep = width - len(_ELLIPSIS)
    head = keep // 3  # the end (repository and tag) says more than the start
    return text[:head] + _ELLIPSIS + text[len(text) - (keep - head) :]


def warning(text: str) -> str:
    """A warning line with the product prefix, cut to the length limit."""
    return _shorten(PREFIX + printable(text), MAX_WARNING)


def container_warning(container: Container, what: str) -> str:
    """`kube-autorollout: container "web" (image): what`, the image shortened to fit."""
    subject = printable(container.label)
    what = printable(what)
    fixed = len(PREFIX) + len(subject) + len(" (): ") + len(what)
    image = _shorten(printable(container.image), max(12, MAX_WARNING - fixed))
    return _shorten(f"{PREFIX}{subject} ({image}): {what}", MAX_WARNING)
