"""The one date parser: ISO 8601 or RFC 2822 text to an aware UTC datetime (no heavy imports)."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import parsedate_to_datetime


def parse_datetime(raw: str) -> datetime | None:
    """Parse an ISO 8601 (or RFC 2822) date or datetime; naive values are taken as UTC."""
    raw = raw.strip()
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        return parse_http_date(raw)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def parse_http_date(raw: str) -> datetime | None:
    """Parse an RFC 2822 (HTTP) date; a naive one is taken as UTC."""
    try:
        value = parsedate_to_datetime(raw)
    except (TypeError, ValueError, IndexError):
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)
