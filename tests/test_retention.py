"""The candidate window: old articles leave the LSH band index in batches; stories, decisions, signatures stay."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg2
import pytest
from newsdedup import retention, store
from newsdedup.dedup_records import Decision, Doc
from newsdedup.dedup_store import assign_clusters

pytestmark = pytest.mark.integration
FIXTURES = Path(__file__).parent / "fixtures" / "dedup"
STORY = (FIXTURES / "en_port_strike.txt").read_text(encoding="utf-8")
OTHER = (FIXTURES / "en_wildfire.txt").read_text(encoding="utf-8")
NOW = datetime.now(UTC)
OLD = NOW - timedelta(days=60)
RECENT = NOW - timedelta(days=5)
KEPT_TABLES = ("story_clusters", "duplicate_decisions", "articles", "article_signatures")


def add(db_url: str, url: str, text: str, published: datetime | None, fetched: datetime = NOW) -> Decision:
    """Store one article and assign it to a story, committed."""
    row = store.ArticleRow(url, url, "Title", text, None, published, "en", source_id=None, fetched_at=fetched)
    with store.connect(db_url) as conn:
        (article_id,) = store.upsert_articles(conn, [row]).new.values()
        (decision,) = assign_clusters(conn, [Doc(article_id, text, published_at=published)])
    return decision


def rows(db_url: str, sql: str, params: tuple = ()) -> list[tuple]:
    with psycopg2.connect(db_url) as conn, conn.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall()


def bands_per_article(db_url: str) -> dict[int, int]:
    return dict(rows(db_url, "SELECT article_id, count(*) FROM lsh_bands GROUP BY article_id"))


def snapshot(db_url: str) -> dict[str, list[tuple]]:
    """Every row of the tables the window must not touch (signatures without their unindexed_at stamp)."""
    columns = {"article_signatures": "article_id, params_version, md5(signature), md5(shingles), text_hash, length"}
    return {t: rows(db_url, f"SELECT {columns.get(t, '*')} FROM {t} ORDER BY 1") for t in KEPT_TABLES}  # noqa: S608


def test_old_articles_leave_the_band_index_in_batches(db_url: str) -> None:
    old = [add(db_url, f"https://old.example/{i}", text, OLD) for i, text in enumerate((STORY, OTHER))]
    undated_old = add(db_url, "https://old.example/undated", OTHER + "\n\nAn appended paragraph.", None, OLD)
    undated_new = add(db_url, "https://new.example/undated", "Haber: " + STORY, None)
    # published_at wins over fetched_at: a page fetched long ago about a recent event stays.
    recent = add(db_url, "https://new.example/dated", STORY + "\n\nSon dakika.", RECENT, OLD)
    before = bands_per_article(db_url)
    assert set(before) == {d.doc_id for d in (*old, undated_old, undated_new, recent)}
    kept = snapshot(db_url)

    gone = {d.doc_id for d in (*old, undated_old)}
    assert retention.purge_candidates(db_url, 30, batch=2) == 3
    after = bands_per_article(db_url)
    assert after == {a: n for a, n in before.items() if a not in gone}
    assert retention.purge_candidates(db_url, 30, batch=2) == 0  # idempotent
    assert bands_per_article(db_url) == after
    assert snapshot(db_url) == kept
    stamped = rows(db_url, "SELECT article_id FROM article_signatures WHERE unindexed_at IS NOT NULL")
    assert {a for (a,) in stamped} == gone


def test_zero_days_keeps_every_candidate_and_maintenance_reports_the_count(db_url: str) -> None:
    add(db_url, "https://old.example/1", STORY, OLD)
    add(db_url, "https://new.example/1", OTHER, RECENT)
    assert retention.purge_candidates(db_url, 0) == 0
    assert len(bands_per_article(db_url)) == 2
    with pytest.raises(ValueError, match="negative"):
        retention.purge_candidates(db_url, -1)
    done = retention.maintenance(
        db_url, retention.Retention(raw_pages_days=7, crawl_log_days=90, stale_hours=24, candidate_days=30)
    )
    assert done["candidates_unindexed"] == 1
    assert len(bands_per_article(db_url)) == 1


def test_maintain_prints_the_window(db_url: str) -> None:
    add(db_url, "https://old.example/1", STORY, OLD)
    plugins = str(Path(__file__).resolve().parents[1] / "plugins")
    env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/"), "PYTHONPATH": plugins,
           "NEWSDEDUP_DB_URL": db_url, "NEWSDEDUP_CANDIDATE_DAYS": "45"}
    done = subprocess.run(
        [sys.executable, "-m", "newsdedup", "maintain"], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "candidates     1 articles over 45 days old: unindexed" in done.stdout
    assert bands_per_article(db_url) == {}


def test_a_copy_finds_its_story_through_a_newer_member(db_url: str) -> None:
    original = add(db_url, "https://a.example/strike", STORY, OLD)
    newer = add(db_url, "https://b.example/strike", "Wire report.\n\n" + STORY, RECENT)
    assert newer.cluster_id == original.cluster_id and newer.method != "new"
    assert retention.purge_candidates(db_url, 30) == 1
    copy = add(db_url, "https://c.example/strike", STORY + "\n\nMore from our newsroom.", NOW)
    assert copy.method != "new" and copy.cluster_id == original.cluster_id
    assert copy.matched_id == newer.doc_id  # the original is no candidate any more
    assert rows(db_url, "SELECT canonical_article_id, size FROM story_clusters WHERE cluster_id = %s",
                (original.cluster_id,)) == [(original.doc_id, 3)]


def test_a_copy_of_a_story_out_of_the_window_starts_a_new_one(db_url: str) -> None:
    original = add(db_url, "https://a.example/fire", OTHER, OLD)
    text = "Haber ajansı: " + OTHER
    with store.connect(db_url) as conn:  # the control: inside the window the copy joins, rolled back
        row = store.ArticleRow("https://b.example/x", "https://b.example/x", "T", text, None, NOW, "en",
                               source_id=None, fetched_at=NOW)
        (article_id,) = store.upsert_articles(conn, [row]).new.values()
        (joined,) = assign_clusters(conn, [Doc(article_id, text, published_at=NOW)])
        conn.rollback()
    assert joined.cluster_id == original.cluster_id
    assert retention.purge_candidates(db_url, 30) == 1
    copy = add(db_url, "https://b.example/fire", text, NOW)
    assert copy.method == "new" and copy.cluster_id == copy.doc_id and copy.candidates == 0
    assert rows(db_url, "SELECT count(*) FROM story_clusters") == [(2,)]
    assert rows(db_url, "SELECT cluster_id, method FROM duplicate_decisions WHERE article_id = %s",
                (original.doc_id,)) == [(original.cluster_id, "new")]
