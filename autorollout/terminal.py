"""Text from outside the program (a registry's answer, an error quoting one) made safe to print.

A registry decides what an index's platform fields, a Content-Type or an error body say; printed
as they come, a newline forges an output line and an escape sequence steers the terminal. Every
line the command line prints that may hold such text goes through `terminal_safe`. (Admission
warnings, which travel in HTTP headers, have their own ASCII-only rule in webhook/messages.py.)
"""

from __future__ import annotations

import unicodedata

# Controls (C0, DEL, C1 such as the 8-bit CSI), format characters (bidirectional overrides,
# zero-width), surrogates (unprintable in UTF-8) and line/paragraph separators.
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
_ELLIPSIS = "..."


def _escape(char: str) -> str:
    code = ord(char)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def terminal_safe(text: str, limit: int | None = None) -> str:
    """`text` as one line that cannot steer a terminal: unsafe characters are written as escapes
    (`\\x1b`, `\\x0a`, `\\u202e`); with `limit`, cut to at most that many characters, ending in "..."
    (an escape is never cut in two)."""
    if text.isascii() and text.isprintable():
        pieces: list[str] | str = text
    else:
        pieces = [_escape(ch) if unicodedata.category(ch) in _UNSAFE_CATEGORIES else ch for ch in text]
    if limit is None or sum(map(len, pieces)) <= limit:
        return "".join(pieces)
    budget = max(0, limit - len(_ELLIPSIS))
    kept: list[str] = []
    for piece in pieces:
        budget -= len(piece)
        if budget < 0:
            break
        kept.append(piece)
    return "".join(kept) + _ELLIPSIS[: max(0, limit)]


def terminal_safe_lines(text: str) -> str:
    """Each "\\n"-ended line of `text` made safe by `terminal_safe` (any other line break, such as
    "\\r" or U+2028, is escaped too, so it cannot forge a row of a table)."""
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return "".join(terminal_safe(line) + "\n" for line in lines)


__all__ = ["terminal_safe", "terminal_safe_lines"]
