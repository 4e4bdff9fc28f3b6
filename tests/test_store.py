"""Storage against a real PostgreSQL: migrations, sources, runs, articles, crawl log."""

import dataclasses
from datetime import UTC, datetime
from pathlib import Path

import psycopg2
import pytest
from newsdedup import store
from newsdedup.config import ConfigError
from newsdedup.sources import Source

pytestmark = pytest.mark.integration


def article(url: str, text: str = "Body text of the story.", title: str = "Title") -> store.ArticleRow:
    return store.ArticleRow(
        source_id=None,
        url=url,
        canonical_url=url,
        title=title,
        text=text,
        author=None,
        published_at=datetime(2026, 3, 1, tzinfo=UTC),
        language="en",
        fetched_at=datetime.now(UTC),
    )


def test_migrate_is_idempotent_and_recorded(empty_db_url: str) -> None:
    with store.connect(empty_db_url) as conn:
        first = store.migrate(conn)
        second = store.migrate(conn)
        with conn.cursor() as cur:
            cur.execute("SELECT version FROM schema_migrations ORDER BY version")
            recorded = [row[0] for row in cur.fetchall()]
    assert first and first == recorded
    assert second == []


def test_sync_sources_upserts_and_disables(db_url: str) -> None:
    a = Source("a", "https://a.example/rss.xml", "rss", "tr")
    b = Source("b", "https://b.example/atom.xml", "atom", "en")
    with store.connect(db_url) as conn:
        assert store.sync_sources(conn, [a, b]) == {"enabled": 2, "disabled": 0}
        store.save_source_state(conn, store.get_source(conn, "a").source_id, '"v1"', None)
        assert store.sync_sources(conn, [a]) == {"enabled": 1, "disabled": 1}
        kept = store.get_source(conn, "a")
        assert kept.etag == '"v1"'
        with pytest.raises(ConfigError, match="'b' is not configured"):
            store.get_source(conn, "b")


def test_upsert_counts_new_updated_unchanged(db_url: str) -> None:
    with store.connect(db_url) as conn:
        assert store.upsert_articles(conn, [article("https://a.example/1"), article("https://a.example/2")]).counts == {
            "articles_new": 2,
            "articles_updated": 0,
            "articles_unchanged": 0,
        }
        again = [article("https://a.example/1"), article("https://a.example/2", text="Corrected body.")]
        assert store.upsert_articles(conn, again).counts == {
            "articles_new": 0,
            "articles_updated": 1,
            "articles_unchanged": 1,
        }
        with conn.cursor() as cur:
            cur.execute("SELECT count(*), max(text) FILTER (WHERE url LIKE '%/2') FROM articles")
            assert cur.fetchone() == (2, "Corrected body.")
        assert set(store.known_urls(conn, ["https://a.example/1", "https://a.example/9"])) == {"https://a.example/1"}


def test_run_lifecycle_and_crawl_log(db_url: str) -> None:
    with store.connect(db_url) as conn:
        run_id = store.start_run(conn, "manual__1", "cli", 2)
        assert store.start_run(conn, "manual__1", "cli", 2) == run_id  # a retry reuses the row
        store.log_crawl(
            conn,
            run_id,
            [
                store.CrawlRecord(
                    "https://a.example/x",
                    "article",
                    "http_error",
                    http_status=404,
                    error_class="HTTPError",
                    error_message="404 Not Found",
                ),
            ],
        )
        row = store.finish_run(conn, run_id, {"pages_failed": 1, "articles_new": 3}, "partial")
    assert (row["status"], row["pages_failed"], row["articles_new"]) == ("partial", 1, 3)
    with store.connect(db_url) as conn:
        assert store.stats(conn)["crawl_failures"] == 1
        assert store.last_run(conn)["run_key"] == "manual__1"


def test_raw_pages_round_trip(db_url: str) -> None:
    with store.connect(db_url) as conn:
        store.sync_sources(conn, [Source("a", "https://a.example/rss.xml", "rss", "tr")])
        sid = store.get_source(conn, "a").source_id
        run_id = store.start_run(conn, "r", "cli", 1)
        page = store.RawPage(
            sid, "https://a.example/1", "https://a.example/1", 200, "text/html", "utf-8", "<p>x\x00</p>"
        )
        store.save_raw_pages(conn, run_id, [page, page])
        (pending,) = store.pending_raw_pages(conn, run_id, 10)
        assert pending["html"] == "<p>x</p>" and pending["source_language"] == "tr"
        store.mark_processed(conn, [pending["raw_page_id"]])
        assert store.pending_raw_pages(conn, run_id, 10) == []
        # Fetched again in the same run (a sitemap beside the feed): the same HTML is not processed twice...
        store.save_raw_pages(conn, run_id, [page])
        assert store.pending_raw_pages(conn, run_id, 10) == []
        # ...a changed page is.
        store.save_raw_pages(conn, run_id, [dataclasses.replace(page, html="<p>y</p>")])
        (again,) = store.pending_raw_pages(conn, run_id, 10)
        assert again["raw_page_id"] == pending["raw_page_id"] and again["html"] == "<p>y</p>"


def test_unreachable_database_is_a_clear_error() -> None:
    with (
        pytest.raises(ConfigError, match="cannot connect"),
        store.connect("postgresql://nobody@127.0.0.1:1/x"),
    ):
        pass


def test_constraints_reject_bad_kind(db_url: str) -> None:
    with pytest.raises(psycopg2.errors.CheckViolation), store.connect(db_url) as conn, conn.cursor() as cur:
        cur.execute("INSERT INTO sources (name, url, kind) VALUES ('x', 'https://x', 'podcast')")


def test_revision_updates_in_place_and_keeps_the_previous_version(db_url: str) -> None:
    with store.connect(db_url) as conn:
        first = store.upsert_articles(conn, [article("https://a.example/r", text="First version.")])
        (article_id,) = first.new.values()
        second = store.upsert_articles(conn, [article("https://a.example/r", text="Second version.")])
        assert second.changed == {"https://a.example/r": article_id}
        with conn.cursor() as cur:
            cur.execute("SELECT count(*), max(text) FROM articles")
            assert cur.fetchone() == (1, "Second version.")
            cur.execute("SELECT article_id, text FROM article_versions")
            assert cur.fetchall() == [(article_id, "First version.")]


def test_removed_segments_are_replaced(db_url: str) -> None:
    removal = {
        "position": 1,
        "sentence": None,
        "kind": "paragraph",
        "reason": "title_repeat",
        "measure": "equal",
        "similarity": 1.0,
        "segment": "Title",
        "matched": "Title",
    }
    with store.connect(db_url) as conn:
        (article_id,) = store.upsert_articles(conn, [article("https://a.example/s")]).new.values()
        assert store.save_removed_segments(conn, {article_id: [removal, removal | {"position": 2}]}) == 2
        assert store.save_removed_segments(conn, {article_id: [removal]}) == 1
        with conn.cursor() as cur:
            cur.execute("SELECT position, reason FROM removed_segments WHERE article_id = %s", (article_id,))
            assert cur.fetchall() == [(1, "title_repeat")]


def write_migrations(sql_dir: Path, **files: str) -> None:
    """Write migration files of our own (name -> SQL) into sql_dir."""
    sql_dir.mkdir(exist_ok=True)
    for name, body in files.items():
        (sql_dir / f"{name}.sql").write_text(body, encoding="utf-8")


def test_an_edited_applied_migration_is_refused_with_what_to_do(empty_db_url: str, tmp_path: Path) -> None:
    sql = tmp_path / "sql"
    write_migrations(sql, **{"001_kiosks": "CREATE TABLE IF NOT EXISTS kiosks (kiosk_id int);\n"})
    with store.connect(empty_db_url) as conn:
        assert store.migrate(conn, sql) == ["001_kiosks"]
        write_migrations(
            sql,
            **{
                "001_kiosks": "CREATE TABLE IF NOT EXISTS kiosks (kiosk_id int, city text);\n",
                "002_papers": "CREATE TABLE IF NOT EXISTS papers (paper_id int);\n",
            },
        )
        with pytest.raises(store.MigrationChanged) as refused:
            store.migrate(conn, sql)
        message = str(refused.value)
        assert f"migration {sql / '001_kiosks.sql'} was changed after it was applied on 20" in message
        assert "Restore the file as it was applied" in message and "add a new migration" in message
        assert [m.state for m in store.migration_status(conn, sql)] == ["changed", "pending"]
        with conn.cursor() as cur:  # nothing was applied, not even the pending migration
            cur.execute("SELECT to_regclass('papers')")
            assert cur.fetchone() == (None,)
        write_migrations(sql, **{"001_kiosks": "CREATE TABLE IF NOT EXISTS kiosks (kiosk_id int);\r\n"})
        assert store.migrate(conn, sql) == ["002_papers"]  # restored (a CRLF checkout reads the same)


def test_migration_status_lists_applied_pending_and_missing(empty_db_url: str, tmp_path: Path) -> None:
    sql = tmp_path / "sql"
    write_migrations(sql, **{"001_a": "SELECT 1;", "002_b": "SELECT 2;"})
    with store.connect(empty_db_url) as conn:
        assert [m.state for m in store.migration_status(conn, sql)] == ["pending", "pending"]  # no table yet
        store.migrate(conn, sql)
        (sql / "002_b.sql").unlink()
        write_migrations(sql, **{"003_c": "SELECT 3;"})
        status = store.migration_status(conn, sql)
    assert [(m.version, m.state) for m in status] == [("001_a", "applied"), ("002_b", "missing"), ("003_c", "pending")]
    assert status[0].applied_at is not None and status[2].applied_at is None
    assert status[0].to_dict() == {
        "version": "001_a",
        "state": "applied",
        "applied_at": status[0].applied_at.astimezone(UTC).isoformat(),
        "file": str(sql / "001_a.sql"),
    }
