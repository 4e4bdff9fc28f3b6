"""One escaping for every string that came from the web, before it reaches a log line, a task label or the UI.

A reason phrase, a sitemap's root tag or a title can carry CR, LF and other control characters: written
as they are, one source could forge log lines or break a label. `one_line` shows them as escapes instead.
"""

from __future__ import annotations

import re

# C0 controls (tab included), DEL, C1 controls, and the Unicode line and paragraph separators.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_NAMED = {"\r": "\\r", "\n": "\\n", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    """The printable escape of one control character."""
    char = match.group()
    return _NAMED.get(char) or (f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}")


def one_line(text: object, limit: int | None = None) -> str:
    """`text` as one printable line: control characters escaped (`\\r`, `\\n`, `\\x1b`), cut to `limit` characters."""
    safe = _UNSAFE.sub(_escape, str(text))
    return safe if limit is None or len(safe) <= limit else safe[: max(limit - 1, 0)] + "…"


def plain_line(text: str) -> str:
    """`text` as one line to store (a title, a byline): control characters and breaks become single spaces."""
    return " ".join(_UNSAFE.sub(" ", text).split())
