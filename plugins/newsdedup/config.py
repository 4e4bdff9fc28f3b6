"""Runtime settings from the environment, with clear errors for missing or invalid values."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

DEFAULT_SOURCES = "config/sources.yaml"


class ConfigError(ValueError):
    """A setting is missing or invalid; the message names it and says how to fix it."""


@dataclass(frozen=True)
class Settings:
    """Where the article database and the sources file are."""

    db_url: str
    sources_path: Path

    @classmethod
    def from_env(cls, *, require_db: bool = True) -> Settings:
        """Read NEWSDEDUP_DB_URL and NEWSDEDUP_SOURCES."""
        db_url = os.environ.get("NEWSDEDUP_DB_URL", "").strip()
        if require_db:
            validate_db_url(db_url)
        sources = Path(os.environ.get("NEWSDEDUP_SOURCES", "").strip() or DEFAULT_SOURCES)
        return cls(db_url=db_url, sources_path=sources)


def validate_db_url(db_url: str) -> str:
    """Check that a libpq URL is present and well formed."""
    if not db_url:
        raise ConfigError(
            "NEWSDEDUP_DB_URL is not set: give a libpq URL such as postgresql://user@127.0.0.1:5432/newsdedup"
        )
    parts = urlsplit(db_url)
    if parts.scheme not in ("postgresql", "postgres") or not parts.path.strip("/"):
        raise ConfigError(
            f"NEWSDEDUP_DB_URL={db_url!r} is not a libpq URL: expected "
            "postgresql://user[:password]@host[:port]/dbname"
        )
    return db_url
