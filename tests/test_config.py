"""One redaction for every secret: each DSN form, the settings' repr, CLI output, logs and crawl records."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import psycopg2
import pytest
from newsdedup import store
from newsdedup.config import ConfigError, RedactFilter, Settings, redact

REPO = Path(__file__).resolve().parents[1]

# Each form a password can take in a DSN, with the password's pieces that must never be shown.
DSN_FORMS = [
    ("postgresql://postgres:Sekr:t@Pw1@127.0.0.1:9/newsdedup", ["Sekr", "t@Pw1"]),
    ("postgresql://postgres:Sekr%3At%40Pw2@127.0.0.1:9/newsdedup", ["Sekr", "Pw2"]),
    ("postgresql://postgres@127.0.0.1:9/newsdedup?sslmode=disable&password=Sekr3tQ", ["Sekr3tQ"]),
    ("host=127.0.0.1 port=9 dbname=newsdedup user=postgres password=Sekr3tK", ["Sekr3tK"]),
    ("host=127.0.0.1 port=9 dbname=newsdedup password='Sek r\\'3tK' user=postgres", ["Sek r", "3tK"]),
]


@pytest.mark.parametrize(("dsn", "pieces"), DSN_FORMS)
def test_redact_hides_every_form(dsn: str, pieces: list[str]) -> None:
    shown = redact(f"cannot connect ({dsn}): connection refused")
    assert "***" in shown and not any(piece in shown for piece in pieces), shown
    assert "127.0.0.1" in shown and "connection refused" in shown  # the rest stays readable


def test_redact_keeps_urls_without_secrets() -> None:
    for text in ("postgresql://postgres@127.0.0.1:5432/newsdedup", "https://example.com:8080/a?b=c@d", "mail ali@x.tr"):
        assert redact(text) == text


def test_redact_hides_the_environments_passwords(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGPASSWORD", "Env:Sekr@t")
    monkeypatch.setenv("NEWSDEDUP_DB_URL", "postgresql://postgres:Url%2FSekr3t@127.0.0.1:9/newsdedup")
    shown = redact("FATAL: password Env:Sekr@t or Url/Sekr3t or Url%2FSekr3t, PGPASSWORD=Env:Sekr@t")
    assert "Sekr" not in shown, shown


@pytest.mark.parametrize(("dsn", "pieces"), DSN_FORMS[:3])
def test_settings_repr_hides_the_password(dsn: str, pieces: list[str]) -> None:
    shown = repr(Settings(db_url=dsn, sources_path=Path("config/sources.yaml")))
    assert shown.startswith("Settings(db_url='postgresql://postgres") and "sources.yaml" in shown
    assert not any(piece in shown for piece in pieces), shown


def test_log_records_are_redacted() -> None:
    record = logging.LogRecord("newsdedup.x", logging.ERROR, __file__, 1, "db %s failed", (DSN_FORMS[0][0],), None)
    try:
        raise RuntimeError(f"boom {DSN_FORMS[3][0]}")
    except RuntimeError:
        record.exc_info = sys.exc_info()
    assert RedactFilter().filter(record)
    shown = logging.Formatter().format(record)
    assert "Sekr" not in shown and "postgres:***@127.0.0.1:9" in shown and "password=***" in shown


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    base = {"PYTHONPATH": str(REPO / "plugins"), "PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/")}
    return subprocess.run([sys.executable, "-m", "newsdedup", "-v", *args], env=base | env, capture_output=True,
                          text=True, timeout=120)


@pytest.mark.parametrize(
    ("env", "pieces"),
    [({"NEWSDEDUP_DB_URL": dsn}, pieces) for dsn, pieces in DSN_FORMS]
    + [({"NEWSDEDUP_DB_URL": "postgresql://postgres@127.0.0.1:9/newsdedup", "PGPASSWORD": "Sekr3tE"}, ["Sekr3tE"])],
)
def test_cli_never_prints_a_password(env: dict[str, str], pieces: list[str], tmp_path: Path) -> None:
    sources = tmp_path / "sources.yaml"
    sources.write_text("sources:\n  - {name: a, url: 'http://127.0.0.1:9/rss', kind: rss}\n")
    for command in (["db", "migrate"], ["ingest", "--no-progress"], ["report"]):
        done = cli(*command, env=env | {"NEWSDEDUP_SOURCES": str(sources)})
        out = done.stdout + done.stderr
        assert done.returncode == 2 and "newsdedup: error:" in out, out
        assert not any(piece in out for piece in pieces), out


def test_wrong_password_against_a_real_server_is_not_echoed(pg_admin_url: str) -> None:
    parts = psycopg2.extensions.parse_dsn(pg_admin_url)
    wrong = f"postgresql://{parts['user']}:Wr0ng%3ASekr%40t@{parts['host']}:{parts['port']}/{parts['dbname']}"
    with pytest.raises(ConfigError) as failed, store.connect(wrong):
        pass
    message = str(failed.value)
    assert "password authentication failed" in message and "***" in message
    assert "Wr0ng" not in message and "Sekr" not in message


def test_crawl_records_store_redacted_errors(db_url: str) -> None:
    record = store.CrawlRecord(url="http://127.0.0.1:9/a", request_kind="article", outcome="connection_error",
                               error_class="X", error_message=f"proxy {DSN_FORMS[0][0]} refused; password=Sekr3tQ")
    with store.connect(db_url) as conn:
        store.log_crawl(conn, None, [record])
    with psycopg2.connect(db_url) as conn, conn.cursor() as cur:
        cur.execute("SELECT error_message FROM crawl_log")
        (stored,) = cur.fetchone()
    assert "Sekr" not in stored and "postgres:***@127.0.0.1:9" in stored
