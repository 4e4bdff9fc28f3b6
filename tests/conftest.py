"""Shared fixtures: a real PostgreSQL server (started here unless the harness gave one), fresh databases."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest
from newsdedup import store

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("NEWSDEDUP_SHARED_DIR", REPO.parent / "shared"))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark `shared` every test of a module that reads ../shared or serves the demo site (and its seed).

    `.ci/run` runs these again with NEWSDEDUP_SHARED_DIR pointing at an empty folder, as on a user's clone.
    """
    for item in items:
        module = getattr(item, "module", None)
        names = vars(module) if module else {}
        if "shared_path" in names or "shared_dir" in names or any(
            getattr(value, "__name__", "") == "demo.site" for value in names.values()
        ):
            item.add_marker(pytest.mark.shared)


def shared_path(*parts: str) -> Path:
    """Return a path under ../shared, skipping the test with a clear reason where it is absent."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is absent (../shared is only present in CI and the team's checkouts)")
    return path


def query(db_url: str, sql: str, params: tuple = ()) -> list[tuple]:
    """Rows of one statement on its own connection (none for a statement that returns none)."""
    with psycopg2.connect(db_url) as conn, conn.cursor() as cur:
        cur.execute(sql, params or None)
        return cur.fetchall() if cur.description else []


def make_due(db_url: str) -> None:
    """Make every source due now, as its poll interval passing would: the next run reads them all again."""
    with psycopg2.connect(db_url) as conn, conn.cursor() as cur:
        cur.execute("UPDATE sources SET next_due_at = now()")


@pytest.fixture(scope="session")
def pg_admin_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of the maintenance database of a running PostgreSQL server.

    `make test` starts a private server and passes NEWSDEDUP_TEST_PG_URL; a bare `pytest` starts
    (and afterwards stops) one with scripts/pg.sh.
    """
    given = os.environ.get("NEWSDEDUP_TEST_PG_URL")
    if given:
        yield given
        return
    env = os.environ | {
        "NEWSDEDUP_PGHOME": f"/tmp/newsdedup-pytest-{uuid.uuid4().hex[:8]}",
        "NEWSDEDUP_PGOPTS": "-c fsync=off -c synchronous_commit=off -c full_page_writes=off",
    }
    pg = [str(REPO / "scripts" / "pg.sh")]
    subprocess.run([*pg, "start"], check=True, env=env, capture_output=True)
    try:
        yield subprocess.run(
            [*pg, "url", "postgres"], check=True, env=env, capture_output=True, text=True
        ).stdout.strip()
    finally:
        subprocess.run([*pg, "destroy"], check=False, env=env, capture_output=True)


def _create_database(admin_url: str) -> str:
    """Create an empty database and return its URL."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    conn = psycopg2.connect(admin_url)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    conn.close()
    return admin_url.rsplit("/", 1)[0] + f"/{name}"


def _drop_database(admin_url: str, db_url: str) -> None:
    """Drop a test database, disconnecting stragglers."""
    name = db_url.rsplit("/", 1)[1]
    conn = psycopg2.connect(admin_url)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    conn.close()


@pytest.fixture
def empty_db_url(pg_admin_url: str) -> Iterator[str]:
    """A fresh database without schema, dropped after the test."""
    url = _create_database(pg_admin_url)
    yield url
    _drop_database(pg_admin_url, url)


@pytest.fixture
def db_url(empty_db_url: str) -> str:
    """A fresh, migrated database for one test."""
    with store.connect(empty_db_url) as conn:
        store.migrate(conn)
    return empty_db_url


@pytest.fixture(scope="module")
def module_db_url(pg_admin_url: str) -> Iterator[str]:
    """A fresh, migrated database shared by the tests of one module."""
    url = _create_database(pg_admin_url)
    with store.connect(url) as conn:
        store.migrate(conn)
    yield url
    _drop_database(pg_admin_url, url)
