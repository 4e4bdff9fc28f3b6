"""A whole run through the library (same code path as the DAG) against the demo site on 127.0.0.1."""

from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest
from newsdedup import pipeline
from newsdedup.config import Settings

from demo import site as demo_site

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def demo() -> Iterator[demo_site.DemoSite]:
    running = demo_site.start()
    yield running
    running.stop()


@pytest.fixture
def settings(db_url: str, demo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("NEWSDEDUP_ALLOW_NETWORKS", "127.0.0.0/8")
    monkeypatch.setenv("NEWSDEDUP_MIN_HOST_DELAY", "0")
    sources = tmp_path / "sources.yaml"
    demo_site.write_sources(demo, sources)
    return Settings(db_url=db_url, sources_path=sources)


def query(db_url: str, sql: str, params: tuple = ()) -> list[tuple]:
    with psycopg2.connect(db_url) as conn, conn.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall()


def test_run_once_stores_every_article(settings: Settings, demo) -> None:
    row = pipeline.run_once(settings)
    expected = len(demo.article_urls())
    assert row["status"] == "success", row
    assert row["articles_new"] == expected
    assert query(settings.db_url, "SELECT count(*) FROM articles") == [(expected,)]
    assert query(settings.db_url, "SELECT count(DISTINCT language) FROM articles") == [(2,)]
    (missing,) = query(
        settings.db_url, "SELECT count(*) FROM articles WHERE published_at IS NULL OR text = ''"
    )
    assert missing == (0,)
    feeds = query(
        settings.db_url, "SELECT count(*) FROM crawl_log WHERE request_kind = 'feed' AND outcome = 'ok'"
    )
    assert feeds == [(row["sources_total"],)]


def test_second_run_fetches_nothing_and_adds_nothing(settings: Settings, demo) -> None:
    first = pipeline.run_once(settings)
    second = pipeline.run_once(settings)
    assert second["articles_new"] == 0
    assert second["pages_fetched"] == 0
    assert second["urls_skipped_known"] + second["feeds_not_modified"] > 0
    assert query(settings.db_url, "SELECT count(*) FROM articles") == [(first["articles_new"],)]


def test_seed_article_comes_out_clean(settings: Settings, demo) -> None:
    pipeline.run_once(settings)
    ((title, text),) = query(
        settings.db_url, "SELECT title, text FROM articles WHERE canonical_url = %s", (demo.seed_url,)
    )
    assert title.strip()
    assert title not in text
    assert text.count(title) == 0
