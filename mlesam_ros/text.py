"""Bounded text: user values quoted short, and every reported line kept to a bounded length.

A topic name, frame id, encoding or parameter value comes from outside and can be any size;
echoed in full, a 1 MB topic name makes a 1 MB "one-line" error, log line or diagnostics
value. Values are quoted with :func:`quote` where a message is built, and every sink (the
command line's error line, the core's log lines, ``/diagnostics`` strings) passes its text
through :func:`bounded` as a last guard.
"""

from __future__ import annotations

QUOTE_LIMIT = 60
"""Characters of a user value shown in a message before it is cut."""
LINE_LIMIT = 1000
"""Characters of one reported line (error, log line, diagnostics value) before it is cut."""


def quote(value: object, limit: int = QUOTE_LIMIT) -> str:
    """``repr`` of ``str(value)``, cut to ``limit`` characters with its length when longer.

    >>> quote("/camera/image_raw")
    "'/camera/image_raw'"
    >>> quote("x" * 100, limit=4)
    "'xxxx'... (100 characters)"
    """
    text = value if isinstance(value, str) else str(value)
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}... ({len(text)} characters)"


def shown(value: object, limit: int = QUOTE_LIMIT) -> str:
    """``repr(value)`` of any value (a number stays a number), cut like :func:`quote`."""
    if isinstance(value, str):
        return quote(value, limit)
    text = repr(value)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text)} characters)"


def bounded(text: object, limit: int = LINE_LIMIT) -> str:
    """``str(text)`` cut to ``limit`` characters, saying how long it was when it is cut."""
    text = str(text)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... (cut, {len(text)} characters)"


__all__ = ["LINE_LIMIT", "QUOTE_LIMIT", "bounded", "quote", "shown"]
