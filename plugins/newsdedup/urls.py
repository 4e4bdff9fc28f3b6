"""URL canonicalisation with courlan: tracking parameters, fragments, default ports, case."""

from __future__ import annotations

from urllib.parse import urlsplit

import courlan


def canonicalize(url: str) -> str | None:
    """Return the canonical form of an http(s) URL, or None when it is not one."""
    url = (url or "").strip()
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return None
    try:
        return courlan.normalize_url(url, strict=True)
    except ValueError:
        return None
