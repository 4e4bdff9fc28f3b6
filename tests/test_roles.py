"""Least privilege (sql/009_roles.sql): a read-only analyst role, and a pipeline that runs as a plain owner."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import psycopg2.errors
import pytest
from newsdedup import pipeline, store
from newsdedup.config import Settings
from psycopg2 import sql

from demo import site as demo_site

REPO = Path(__file__).resolve().parents[1]
READABLE = ["articles", "sources", "pipeline_runs", "source_runs", "crawl_log", "story_clusters",
            "duplicate_decisions", "removed_segments", "article_versions", "articles_dedup", "article_duplicates",
            "source_boilerplate_summary", "dedup_rebuilds", "page_failures"]


def documented_private() -> set[str]:
    """The tables docs/schema.md says the reader cannot read (its "Private" line)."""
    text = (REPO / "docs" / "schema.md").read_text()
    paragraph = text[text.index("\nPrivate (no reader access):"):].split("\n\n", 1)[0]
    return set(re.findall(r"`(\w+)`", paragraph))


def admin(url: str, sql: str, params: tuple = ()) -> list[tuple]:
    conn = psycopg2.connect(url)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(sql, params)
        rows = cur.fetchall() if cur.description else []
    conn.close()
    return rows


@pytest.fixture
def login(pg_admin_url: str) -> Iterator[tuple[str, str]]:
    """A throw-away LOGIN role and its password; dropped afterwards (roles belong to the whole cluster)."""
    name, password = f"t_login_{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    admin(pg_admin_url, f"CREATE ROLE {name} LOGIN PASSWORD '{password}'")
    yield name, password
    admin(pg_admin_url, f"DROP ROLE {name}")


def as_login(db_url: str, name: str, password: str) -> str:
    """The URL of db_url's database for another login."""
    parts = psycopg2.extensions.parse_dsn(db_url)
    return f"postgresql://{name}:{password}@{parts['host']}:{parts['port']}/{parts['dbname']}"


@pytest.fixture
def reader_url(db_url: str, pg_admin_url: str, login: tuple[str, str]) -> str:
    """db_url's database as a login that is a member of newsdedup_reader, with one article in it."""
    name, password = login
    with psycopg2.connect(db_url) as conn, conn.cursor() as cur:
        cur.execute("INSERT INTO sources (name, url, kind) VALUES ('s', 'http://127.0.0.1:9/rss', 'rss')")
    admin(pg_admin_url, f"GRANT newsdedup_reader TO {name}")
    return as_login(db_url, name, password)


def try_sql(url: str, statement: str | sql.Composable) -> str:
    """Run one statement and roll it back; return 'ok', 'denied' (insufficient privilege) or the error."""
    conn = psycopg2.connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute(statement)
        return "ok"
    except psycopg2.errors.InsufficientPrivilege:
        return "denied"
    except psycopg2.Error as exc:
        return str(exc)
    finally:
        conn.rollback()
        conn.close()


@pytest.mark.parametrize("relation", READABLE)
def test_reader_reads_the_records_and_views(reader_url: str, relation: str) -> None:
    assert try_sql(reader_url, sql.SQL("SELECT * FROM {} LIMIT 1").format(sql.Identifier(relation))) == "ok"


@pytest.mark.parametrize(
    "statement",
    [
        "INSERT INTO sources (name, url, kind) VALUES ('x', 'http://127.0.0.1:9/x', 'rss')",
        "UPDATE sources SET enabled = false",
        "DELETE FROM sources",
        "DELETE FROM articles",
        "TRUNCATE crawl_log",
        "CREATE TABLE mine (x int)",
        "SELECT * FROM raw_pages",
        "SELECT * FROM lsh_bands",
        "SELECT * FROM article_signatures",
        "SELECT * FROM source_boilerplate",
    ],
)
def test_reader_cannot_write_or_read_internals(reader_url: str, statement: str) -> None:
    assert try_sql(reader_url, statement) == "denied"


def test_every_table_is_readable_or_documented_private(reader_url: str, db_url: str) -> None:
    """A new table must be granted to newsdedup_reader in its migration, or listed as private in docs/schema.md."""
    rows = admin(
        db_url,
        "SELECT c.relname, has_table_privilege('newsdedup_reader', c.oid, 'SELECT') FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' AND c.relkind IN ('r', 'v', 'p')",
    )
    unreadable = {name for name, readable in rows if not readable}
    assert unreadable == documented_private()
    writable = admin(
        db_url,
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' "
        "AND c.relkind IN ('r', 'v', 'p') AND (has_table_privilege('newsdedup_reader', c.oid, 'INSERT') "
        "OR has_table_privilege('newsdedup_reader', c.oid, 'UPDATE') OR has_table_privilege('newsdedup_reader', c.oid, "
        "'DELETE') OR has_table_privilege('newsdedup_reader', c.oid, 'TRUNCATE'))",
    )
    assert writable == []


def test_roles_migration_is_idempotent_and_keeps_an_existing_role(db_url: str) -> None:
    """Roles belong to the cluster: applying 009 again (another database, a rerun) changes nothing."""
    before = admin(db_url, "SELECT rolcanlogin, rolsuper, rolinherit FROM pg_roles WHERE rolname = 'newsdedup_reader'")
    admin(db_url, (REPO / "sql" / "009_roles.sql").read_text())
    after = admin(db_url, "SELECT rolcanlogin, rolsuper, rolinherit FROM pg_roles WHERE rolname = 'newsdedup_reader'")
    assert before == after == [(False, False, True)]


@pytest.fixture
def owner_db(pg_admin_url: str, login: tuple[str, str]) -> Iterator[str]:
    """An empty database owned by a plain login (no SUPERUSER, CREATEROLE or CREATEDB)."""
    name, password = login
    db = f"t_owned_{uuid.uuid4().hex[:8]}"
    # An administrator creates the cluster-wide role once; the owner's migrations then only grant to it.
    admin(pg_admin_url, "DO $$ BEGIN CREATE ROLE newsdedup_reader NOLOGIN; "
                        "EXCEPTION WHEN duplicate_object THEN NULL; END $$")
    admin(pg_admin_url, f'CREATE DATABASE "{db}" OWNER {name}')
    yield as_login(pg_admin_url.rsplit("/", 1)[0] + f"/{db}", name, password)
    admin(pg_admin_url, f'DROP DATABASE "{db}" WITH (FORCE)')


def test_pipeline_runs_as_a_plain_owner(owner_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert admin(owner_db, "SELECT rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = current_user") == [(False,)]
    with store.connect(owner_db) as conn:
        store.migrate(conn)
    monkeypatch.setenv("NEWSDEDUP_ALLOW_NETWORKS", "127.0.0.0/8")
    monkeypatch.setenv("NEWSDEDUP_MIN_HOST_DELAY", "0")
    site = demo_site.start()
    try:
        sources = tmp_path / "sources.yaml"
        demo_site.write_sources(site, sources)
        row = pipeline.run_once(Settings(db_url=owner_db, sources_path=sources))
        assert row["status"] == "success" and row["articles_new"] == len(site.article_urls()), row
    finally:
        site.stop()
    assert admin(owner_db, "SELECT has_table_privilege('newsdedup_reader', 'articles', 'SELECT')") == [(True,)]
