"""Monitoring against real PostgreSQL and the demo site: per-source results, summaries, checks, maintenance."""

import logging
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import psycopg2.extras
import pytest
import yaml
from newsdedup import airflow_helpers, dashboard_queries, pipeline, quality_checks, retention, run_report, store
from newsdedup.config import Settings

from demo import site as demo_site
from tests.conftest import REPO, _create_database, _drop_database, make_due, query

pytestmark = pytest.mark.integration
BROKEN = "broken-feed"


def dag_like_run(settings: Settings, run_key: str) -> tuple[dict, list[dict]]:
    """The news_ingest task sequence through the library: begin, crawl + record, process, finish, summarise."""
    pipeline.sync_sources(settings)
    make_due(settings.db_url)  # each run an hour after the last: every source is due again
    run = pipeline.begin_run(settings.db_url, run_key, "airflow")
    recorded = []
    for name in run["sources"]:
        report = pipeline.crawl_source(settings.db_url, run["run_id"], name)
        recorded.append(run_report.record_crawl(settings.db_url, run["run_id"], report))
    processed = pipeline.process_pages(settings.db_url, run["run_id"])
    pipeline.finish_run(
        settings.db_url, run["run_id"], run_report.crawl_reports(settings.db_url, run["run_id"]), processed
    )
    run_report.summarise_sources(settings.db_url, run["run_id"])
    return run_report.run_summary(settings.db_url, run["run_id"]), recorded


@pytest.fixture(scope="module")
def site() -> Iterator[demo_site.DemoSite]:
    running = demo_site.start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def runs(module_db_url: str, site, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Three runs over the demo sources plus a feed that always answers 404."""
    patch = pytest.MonkeyPatch()
    patch.setenv("NEWSDEDUP_ALLOW_NETWORKS", "127.0.0.0/8")
    patch.setenv("NEWSDEDUP_MIN_HOST_DELAY", "0")
    path = tmp_path_factory.mktemp("monitor") / "sources.yaml"
    demo_site.write_sources(site, path)
    config = yaml.safe_load(path.read_text())
    config["sources"].append({"name": BROKEN, "url": site.url("/no-such-outlet/rss.xml"), "kind": "rss"})
    path.write_text(yaml.safe_dump(config))
    settings = Settings(db_url=module_db_url, sources_path=path)
    out = {"settings": settings, "summaries": [], "recorded": []}
    for n in range(3):
        summary, recorded = dag_like_run(settings, f"manual__test-{n}")
        out["summaries"].append(summary)
        out["recorded"].append({r["source"]: r for r in recorded})
    yield out
    patch.undo()


def test_first_run_summary_counts(runs: dict, site) -> None:
    first = runs["summaries"][0]
    expected = len(site.article_urls())
    assert first["articles_new"] == expected
    assert first["stories_created"] + first["copies_collapsed"] == expected
    assert first["copies_collapsed"] > 0
    assert first["segments_removed"] >= 1  # the seed's repeated headline
    assert first["sources_failed"] == 1 and first["errors"] >= 1
    assert first["status"] == "partial"
    by_source = {row["source"]: row for row in first["sources"]}
    assert sum(row["articles_new"] for row in first["sources"]) == expected
    assert sum(row["duplicates"] for row in first["sources"]) == first["copies_collapsed"]
    assert by_source[BROKEN]["status"] == "failed" and "404" in by_source[BROKEN]["error"]
    # Credited like the dashboard: to the article's own source, each article once.
    stored = dict(
        query(
            runs["settings"].db_url,
            "SELECT s.name, count(*) FROM articles a JOIN sources s USING (source_id) GROUP BY 1",
        )
    )
    assert {name: row["articles_new"] for name, row in by_source.items() if row["articles_new"]} == stored


def test_second_run_is_not_modified_or_known(runs: dict) -> None:
    second = runs["summaries"][1]
    assert second["articles_new"] == 0 and second["copies_collapsed"] == 0
    for row in second["sources"]:
        if row["source"] != BROKEN:
            assert row["status"] in ("ok", "not_modified")
            assert row["pages_fetched"] == 0
            assert row["feeds_not_modified"] + row["urls_skipped_known"] > 0


def test_failure_streak_reaches_the_threshold_on_the_third_run(runs: dict) -> None:
    streaks = [recorded[BROKEN]["failure_streak"] for recorded in runs["recorded"]]
    assert streaks == [1, 2, 3]
    assert run_report.streak_message(runs["recorded"][1][BROKEN], 3) is None
    message = run_report.streak_message(runs["recorded"][2][BROKEN], 3)
    assert message and message.startswith(f"source {BROKEN} failed 3 runs in a row")
    healthy = next(r for name, r in runs["recorded"][2].items() if name != BROKEN)
    assert healthy["failure_streak"] == 0 and run_report.streak_message(healthy, 1) is None


def test_streak_resets_after_a_success(runs: dict) -> None:
    db = runs["settings"].db_url
    (source_id,) = query(db, "SELECT source_id FROM sources WHERE name = %s", (BROKEN,))[0]
    run = pipeline.begin_run(db, "manual__test-recovered", "airflow")
    row = run_report.record_crawl(db, run["run_id"], {"source": BROKEN, "failed": False, "pages_fetched": 1})
    assert row["failure_streak"] == 0 and row["status"] == "ok"
    query(db, "DELETE FROM source_runs WHERE run_id = %s", (run["run_id"],))
    query(db, "DELETE FROM pipeline_runs WHERE run_id = %s", (run["run_id"],))
    assert source_id


def test_labels_and_lines(runs: dict) -> None:
    rows = {row["source"]: row for row in runs["summaries"][0]["sources"]}
    ok = next(row for name, row in rows.items() if name != BROKEN and row["articles_new"])
    line = run_report.source_line(ok)
    assert line.startswith(f"{ok['source']}: {ok['pages_fetched']} fetched, {ok['articles_new']} new")
    assert "duplicates" in line and "robots" in line and "conditional GET" in line
    assert "FAILED (1 in a row)" in run_report.source_line(rows[BROKEN])
    assert run_report.crawl_label(runs["recorded"][0][BROKEN]).startswith(f"{BROKEN}: FAILED")
    long = dict(ok, source="x" * 400)
    assert len(run_report.source_line(long)) == airflow_helpers.LABEL_LIMIT


def test_note_is_markdown_within_airflows_limit(runs: dict) -> None:
    summary = runs["summaries"][0]
    note = summary["note"]
    assert len(note) <= airflow_helpers.NOTE_LIMIT
    assert f"stories created: **{summary['stories_created']}**" in note
    assert f"copies collapsed: **{summary['copies_collapsed']}**" in note
    assert f"| {BROKEN} |" in note
    many = dict(summary, sources=[dict(summary["sources"][0], source=f"source-{i:03}") for i in range(80)])
    crowded = run_report.run_note(many)
    assert len(crowded) <= airflow_helpers.NOTE_LIMIT and "more sources" in crowded
    extra = summary["asset_extra"]
    assert extra["copies_collapsed"] == summary["copies_collapsed"] and extra["run_key"] == "manual__test-0"


def test_quality_checks_pass_on_good_data_and_catch_bad_data(runs: dict) -> None:
    db = runs["settings"].db_url
    assert all(quality_checks.quality_problems(db, "manual__test-0").values())
    assert all(quality_checks.quality_problems(db, "no-such-run").values())  # nothing in scope: nothing wrong
    conn = psycopg2.connect(db)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT article_id FROM articles ORDER BY article_id LIMIT 1")
            (article_id,) = cur.fetchone()
            cur.execute(
                "UPDATE articles SET published_at = now() + interval '3 days', word_count = 0, fetched_at = now() "
                "WHERE article_id = %s",
                (article_id,),
            )
            cur.execute("DELETE FROM duplicate_decisions WHERE article_id = %s", (article_id,))
            conn.commit()
            bad = quality_checks.quality_problems(db, "manual__test-2")
            assert bad["published_not_in_future"] is False
            assert bad["text_not_empty"] is False
            assert bad["every_article_decided"] is False
            assert bad["every_article_in_a_story"] is True
    finally:
        conn.rollback()
        conn.close()


def test_dashboard_data(runs: dict) -> None:
    data = dashboard_queries.dashboard(runs["settings"].db_url)
    first = runs["summaries"][0]
    assert data["totals"]["articles"] == first["articles_new"]
    assert data["totals"]["copies"] == data["totals"]["articles"] - data["totals"]["stories"]
    assert 0 < data["totals"]["duplicate_rate"] < 1
    series = data["duplicate_rate"]["series"]
    assert data["duplicate_rate"]["bucket"] == "hour"
    assert sum(p["duplicates"] for points in series.values() for p in points) == data["totals"]["copies"]
    assert sum(b["stories"] for b in data["cluster_sizes"]) == data["totals"]["stories"]
    assert data["latest_stories"] and all(
        s["copies"] and s["size"] == len(s["copies"]) + 1 for s in data["latest_stories"]
    )
    assert any(e["source"] == BROKEN and e["http_status"] == 404 for e in data["recent_errors"])
    assert [r["run_key"] for r in data["recent_runs"][:3]] == ["manual__test-2", "manual__test-1", "manual__test-0"]
    health = {row["source"]: row for row in data["sources"]}
    assert health[BROKEN]["last_status"] == "failed" and health[BROKEN]["failure_streak"] == 3


def test_maintenance_retention_analyze_and_stale_sources(db_url: str, site, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("NEWSDEDUP_ALLOW_NETWORKS", "127.0.0.0/8")
    monkeypatch.setenv("NEWSDEDUP_MIN_HOST_DELAY", "0")
    sources = tmp_path / "sources.yaml"
    demo_site.write_sources(site, sources)
    config = yaml.safe_load(sources.read_text())
    config["sources"].append({"name": BROKEN, "url": site.url("/no-such-outlet/rss.xml"), "kind": "rss"})
    sources.write_text(yaml.safe_dump(config))
    dag_like_run(Settings(db_url=db_url, sources_path=sources), "manual__maint")
    pages = query(db_url, "SELECT count(*) FROM raw_pages")[0][0]
    logged = query(db_url, "SELECT count(*) FROM crawl_log")[0][0]
    assert pages > 0
    query(db_url, "UPDATE sources SET created_at = now() - interval '2 days'")  # configured long enough ago
    # Nothing is old yet: retention keeps everything.
    kept = retention.maintenance(db_url, retention.Retention(raw_pages_days=7, crawl_log_days=90, stale_hours=24))
    assert (kept["raw_pages_deleted"], kept["crawl_log_deleted"]) == (0, 0)
    assert "articles" in kept["analyzed"] and "source_runs" in kept["analyzed"]
    assert [s["source"] for s in kept["stale_sources"]] == [BROKEN]
    assert kept["stale_sources"][0]["last_outcome"] == "http_error"
    # Age half of it: only processed pages and old log rows go, in batches.
    query(db_url, "UPDATE raw_pages SET processed_at = now() - interval '10 days' WHERE raw_page_id % 2 = 0")
    query(db_url, "UPDATE crawl_log SET attempted_at = now() - interval '100 days' WHERE request_kind = 'article'")
    query(
        db_url,
        "UPDATE raw_pages SET processed_at = NULL, fetched_at = now() - interval '30 days' "
        "WHERE raw_page_id = (SELECT max(raw_page_id) FROM raw_pages WHERE raw_page_id % 2 = 1)",
    )
    old_pages = query(db_url, "SELECT count(*) FROM raw_pages WHERE raw_page_id % 2 = 0")[0][0]
    old_log = query(db_url, "SELECT count(*) FROM crawl_log WHERE request_kind = 'article'")[0][0]
    assert retention.purge_raw_pages(db_url, 7, batch=3) == old_pages
    assert retention.purge_crawl_log(db_url, 90, batch=5) == old_log
    assert query(db_url, "SELECT count(*) FROM raw_pages")[0][0] == pages - old_pages
    assert query(db_url, "SELECT count(*) FROM raw_pages WHERE processed_at IS NULL") == [(1,)]
    assert query(db_url, "SELECT count(*) FROM crawl_log")[0][0] == logged - old_log
    # Articles and their stories are never touched by retention.
    assert query(db_url, "SELECT count(*) FROM articles WHERE cluster_id IS NULL") == [(0,)]


def test_task_failure_line_is_one_line() -> None:
    line = airflow_helpers.task_failure_line("news_ingest", "crawl_source[x]", 2, ValueError("bad\nsecond line"))
    assert line == "newsdedup: news_ingest.crawl_source[x] failed (try 2): ValueError: bad"
    assert "\n" not in airflow_helpers.task_failure_line("d", "t", None, None)


def test_dashboard_page_escapes_stored_text_and_draws_charts(runs: dict) -> None:
    import newsdedup_dashboard as ui

    data = dashboard_queries.dashboard(runs["settings"].db_url)
    story = dict(data["latest_stories"][0], title="<script>alert(1)</script>", url="javascript:alert(1)")
    story["copies"] = [dict(story["copies"][0], title="<img src=x onerror=alert(1)>", source="<b>")]
    data["latest_stories"] = [story]
    data["recent_errors"].insert(0, dict(data["recent_errors"][0], error_message="</td><script>x</script>"))
    page = ui.render_page(data)
    assert "<script" not in page and "<img" not in page and "javascript:" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert page.count("<svg") == 3
    assert f"<div class='n'>{data['totals']['articles']}</div>" in page
    for source, points in data["duplicate_rate"]["series"].items():
        assert source in page and len(points) >= 1
    assert ui.line_chart({}).count("no articles yet") == 1
    assert ui.bar_chart([], "empty").count("no stories yet") == 1


# --------------------------------------------------------------------------- the CLI's run writes what the DAG's does

CRAWL_COLUMNS = (
    "status",
    "error",
    "failure_streak",
    "urls_discovered",
    "urls_skipped_known",
    "pages_fetched",
    "pages_failed",
    "robots_disallowed",
    "feeds_not_modified",
    "extract_failed",
)
# Which source a page announced by two outlets is credited to, and which copy of a story came first,
# follow the order pages arrive in: compared as totals.
ORDER_COLUMNS = ("articles_new", "articles_revised", "duplicates")


def source_rows(db_url: str, run_id: int) -> dict[str, dict]:
    with psycopg2.connect(db_url) as conn, conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
        cur.execute(
            "SELECT s.name, r.* FROM source_runs r JOIN sources s USING (source_id) WHERE r.run_id = %s", (run_id,)
        )
        return {row.pop("name"): dict(row) for row in cur.fetchall()}


def run_row(db_url: str, run_id: int) -> dict:
    with psycopg2.connect(db_url) as conn, conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
        cur.execute("SELECT * FROM pipeline_runs WHERE run_id = %s", (run_id,))
        row = dict(cur.fetchone())
    return {k: v for k, v in row.items() if k not in ("run_id", "run_key", "trigger", "started_at", "finished_at")}


def with_broken_feed(site, path: Path) -> Path:
    demo_site.write_sources(site, path)
    config = yaml.safe_load(path.read_text())
    config["sources"].append({"name": BROKEN, "url": site.url("/no-such-outlet/rss.xml"), "kind": "rss"})
    path.write_text(yaml.safe_dump(config))
    return path


def test_cli_ingest_writes_what_a_dag_run_writes(
    db_url: str, pg_admin_url: str, site, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEWSDEDUP_ALLOW_NETWORKS", "127.0.0.0/8")
    monkeypatch.setenv("NEWSDEDUP_MIN_HOST_DELAY", "0")
    sources = with_broken_feed(site, tmp_path / "sources.yaml")
    cli_db = _create_database(pg_admin_url)
    try:
        with store.connect(cli_db) as conn:
            store.migrate(conn)
        dag_summary, _ = dag_like_run(Settings(db_url=db_url, sources_path=sources), "manual__dag")
        cli_row = pipeline.run_once(Settings(db_url=cli_db, sources_path=sources))
        dag_sources, cli_sources = source_rows(db_url, dag_summary["run_id"]), source_rows(cli_db, cli_row["run_id"])
        assert set(cli_sources) == set(dag_sources) and BROKEN in cli_sources
        for name, dag in dag_sources.items():
            cli = cli_sources[name]
            assert {c: cli[c] for c in CRAWL_COLUMNS} == {c: dag[c] for c in CRAWL_COLUMNS}, name
            assert cli["summarised_at"] is not None and dag["summarised_at"] is not None
        for column in ORDER_COLUMNS:
            assert sum(r[column] for r in cli_sources.values()) == sum(r[column] for r in dag_sources.values())
        assert sum(r["articles_new"] for r in cli_sources.values()) == len(site.article_urls())
        assert cli_sources[BROKEN]["status"] == "failed" and cli_sources[BROKEN]["failure_streak"] == 1
        # Equal although the CLI processes while it crawls: the sitemap source fetches the feed source's pages
        # again, after they may have been stored, and the same HTML is not processed (counted) twice.
        assert run_row(cli_db, cli_row["run_id"]) == run_row(db_url, dag_summary["run_id"])
        assert cli_row["failed_sources"] == [BROKEN]
        # The example query counts the failures of each source's last crawl, not of all time.
        outlet = next(name for name, row in cli_sources.items() if row["articles_new"])
        query(
            cli_db,
            "INSERT INTO crawl_log (run_id, source_id, url, request_kind, outcome, http_status, attempted_at) "
            "SELECT NULL, source_id, url, 'feed', 'http_error', 503, now() - interval '10 days' "
            "FROM sources WHERE name = %s",
            (outlet,),
        )
        per_source = query(cli_db, (REPO / "sql" / "queries" / "articles_per_source.sql").read_text())
        assert per_source and {row[0] for row in per_source} >= {outlet}
        assert all(row[-1] == 0 for row in per_source), per_source
    finally:
        _drop_database(pg_admin_url, cli_db)


def test_an_ingest_with_nothing_to_extract_starts_no_pool(
    db_url: str, site, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("NEWSDEDUP_ALLOW_NETWORKS", "127.0.0.0/8")
    monkeypatch.setenv("NEWSDEDUP_MIN_HOST_DELAY", "0")
    monkeypatch.setenv("NEWSDEDUP_WORKERS", "2")
    sources = tmp_path / "sources.yaml"
    demo_site.write_sources(site, sources)
    settings = Settings(db_url=db_url, sources_path=sources)
    started = "extraction pool: 2 worker processes started"
    with caplog.at_level(logging.INFO, logger="newsdedup.process"):
        first = pipeline.run_once(settings)
    assert first["pages_fetched"] > 0 and started in caplog.messages  # pages to extract: the pool ran
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="newsdedup.process"):
        second = pipeline.run_once(settings)
    assert second["pages_fetched"] == 0 and second["status"] == "success"
    assert started not in caplog.messages


def test_a_page_fetched_again_after_it_was_stored_is_not_counted_again(
    db_url: str, site, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEWSDEDUP_ALLOW_NETWORKS", "127.0.0.0/8")
    monkeypatch.setenv("NEWSDEDUP_MIN_HOST_DELAY", "0")
    settings = Settings(db_url=db_url, sources_path=demo_site.write_sources(site, tmp_path / "sources.yaml"))
    pipeline.sync_sources(settings)
    run = pipeline.begin_run(db_url, "manual__interleaved", "cli")
    feed = run["sources"][0]
    assert pipeline.crawl_source(db_url, run["run_id"], feed)["pages_fetched"] > 0
    stored = pipeline.process_pages(db_url, run["run_id"])
    # What a CLI run's sitemap source does when it read the stored URLs just before the feed's pages were
    # stored: it fetches the same pages again, and stages them after they were processed.
    with psycopg2.connect(db_url) as conn, conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
        cur.execute(
            "SELECT source_id, url, final_url, http_status, content_type, encoding, html FROM raw_pages "
            "WHERE run_id = %s",
            (run["run_id"],),
        )
        pages = [store.RawPage(**row) for row in cur.fetchall()]
    with store.connect(db_url) as conn:
        store.save_raw_pages(conn, run["run_id"], pages)
    again = pipeline.process_pages(db_url, run["run_id"])
    assert stored["articles_new"] > 0 and again == stored
