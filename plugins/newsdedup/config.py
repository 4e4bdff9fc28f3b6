"""Where the article database and the sources file are, and the one redaction of secrets.

Every NEWSDEDUP_* variable is defined and checked in newsdedup.settings.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import psycopg2.extensions

from newsdedup import settings
from newsdedup.settings import ConfigError

__all__ = ["ConfigError", "RedactFilter", "Settings", "redact"]


@dataclass(frozen=True, repr=False)
class Settings:
    """Where the article database and the sources file are."""

    db_url: str
    sources_path: Path

    def __repr__(self) -> str:
        """Show the settings with the database password hidden."""
        return f"Settings(db_url={redact(self.db_url)!r}, sources_path={self.sources_path!r})"

    @classmethod
    def from_env(cls, *, require_db: bool = True) -> Settings:
        """NEWSDEDUP_DB_URL and NEWSDEDUP_SOURCES, once every NEWSDEDUP_* variable is checked (newsdedup.settings)."""
        env = settings.load()
        if require_db and not env.db_url:
            raise ConfigError(
                "NEWSDEDUP_DB_URL is not set: give a libpq URL such as postgresql://user@127.0.0.1:5432/newsdedup"
            )
        return cls(db_url=env.db_url, sources_path=env.sources)


# A password in a URL's user part (it may hold ':' or '@': the last '@' before the host ends it), then
# `password=`/`sslpassword=` as a query parameter or a keyword-DSN value (quoted or not), and PGPASSWORD=.
_URL_PASSWORD = re.compile(r"(?P<keep>\b[a-z][a-z0-9+.-]*://[^\s/:@]*:)[^\s/]*(?=@)", re.IGNORECASE)
_KEYWORD_PASSWORD = re.compile(
    r"(?P<keep>\b(?:ssl)?password\s*=\s*|\bPGPASSWORD\s*=\s*)(?:'(?:[^'\\]|\\.)*'|[^\s&'\"]+)", re.IGNORECASE
)
_MIN_LITERAL = 4  # shorter known passwords are hidden by the patterns only: replacing them everywhere mangles text


def redact(text: str) -> str:
    """Hide every database password in a message, a log line or a URL: the one place secrets are masked."""
    text = _URL_PASSWORD.sub(r"\g<keep>***", text)
    text = _KEYWORD_PASSWORD.sub(r"\g<keep>***", text)
    for secret in _known_secrets():
        text = text.replace(secret, "***")
    return text


def _known_secrets() -> list[str]:
    """The passwords of this process's environment (PGPASSWORD, NEWSDEDUP_DB_URL), as typed and URL-encoded."""
    found = {os.environ.get("PGPASSWORD", "")}
    with contextlib.suppress(psycopg2.ProgrammingError):  # not a DSN: validate_db_url says so
        found.add(psycopg2.extensions.parse_dsn(os.environ.get("NEWSDEDUP_DB_URL", "")).get("password", ""))
    found |= {quote(secret, safe="") for secret in found}
    return sorted((s for s in found if len(s) >= _MIN_LITERAL), key=len, reverse=True)


class RedactFilter(logging.Filter):
    """A handler filter that passes every record with its message and traceback redacted."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Render the message (and the traceback) once, redacted."""
        record.msg, record.args = redact(record.getMessage()), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True
