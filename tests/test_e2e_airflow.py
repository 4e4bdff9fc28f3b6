"""End to end: the demo site on 127.0.0.1, news_ingest run by real Airflow (`airflow dags test`)."""

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest
import yaml

from demo import site as demo_site
from tests.conftest import REPO, _create_database, _drop_database, query

pytestmark = pytest.mark.e2e
AIRFLOW = str(Path(sys.executable).with_name("airflow"))


@pytest.fixture(scope="module")
def airflow_env(pg_admin_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """Environment for Airflow: metadata and article databases in the test server, demo site up."""
    meta_url = _create_database(pg_admin_url)
    articles_url = _create_database(pg_admin_url)
    site = demo_site.start()
    home = tmp_path_factory.mktemp("airflow")
    sources = home / "sources.yaml"
    demo_site.write_sources(site, sources)
    env = os.environ | {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": meta_url.replace("postgresql://", "postgresql+psycopg2://", 1),
        "AIRFLOW_CONN_NEWSDEDUP_DB": articles_url,
        "NEWSDEDUP_SOURCES": str(sources),
        "NEWSDEDUP_ALLOW_NETWORKS": "127.0.0.0/8",
        "NEWSDEDUP_MIN_HOST_DELAY": "0",
    }
    env.pop("NEWSDEDUP_DB_URL", None)
    subprocess.run(
        [sys.executable, "-m", "newsdedup", "db", "migrate"],
        check=True,
        env=env | {"NEWSDEDUP_DB_URL": articles_url, "PYTHONPATH": str(REPO / "plugins")},
    )
    subprocess.run([AIRFLOW, "db", "migrate"], check=True, env=env, capture_output=True)
    yield {"env": env, "articles_url": articles_url, "meta_url": meta_url, "site": site, "sources": sources}
    site.stop()
    _drop_database(pg_admin_url, articles_url)
    _drop_database(pg_admin_url, meta_url)


def dags_test(env: dict, *, ok: bool = True) -> subprocess.CompletedProcess:
    """Run news_ingest once through Airflow; fail with its log on an unexpected outcome."""
    done = subprocess.run(
        [AIRFLOW, "dags", "test", "news_ingest"], env=env, capture_output=True, text=True, timeout=600
    )
    assert (done.returncode == 0) is ok, done.stdout[-4000:] + done.stderr[-4000:]
    return done


def latest_run(meta_url: str) -> dict:
    """The latest news_ingest DAG run in Airflow's metadata: state, note, task states and names."""
    ((run_id, state, note),) = query(
        meta_url,
        "SELECT r.run_id, r.state, n.content FROM dag_run r LEFT JOIN dag_run_note n ON n.dag_run_id = r.id "
        "WHERE r.dag_id = 'news_ingest' ORDER BY r.id DESC LIMIT 1",
    )
    tasks = query(
        meta_url,
        "SELECT task_id, map_index, rendered_map_index, state FROM task_instance WHERE run_id = %s ORDER BY 1, 2",
        (run_id,),
    )
    return {"run_id": run_id, "state": state, "note": note, "tasks": tasks}


def test_news_ingest_through_airflow(airflow_env: dict) -> None:
    site, db, meta = airflow_env["site"], airflow_env["articles_url"], airflow_env["meta_url"]
    dags_test(airflow_env["env"])
    expected = len(site.article_urls())
    assert query(db, "SELECT count(*) FROM articles") == [(expected,)]
    ((status, trigger, new),) = query(db, "SELECT status, trigger, articles_new FROM pipeline_runs")
    assert (status, trigger, new) == ("success", "airflow", expected)
    sources = query(db, "SELECT count(*) FROM sources WHERE enabled")[0][0]
    assert query(db, "SELECT count(*) FROM crawl_log WHERE request_kind = 'feed'") == [(sources,)]
    assert query(db, "SELECT count(DISTINCT url) FROM crawl_log WHERE request_kind = 'article' AND outcome = 'ok'") == [
        (expected,)
    ]
    ((title, text),) = query(db, "SELECT title, text FROM articles WHERE canonical_url = %s", (site.seed_url,))
    assert title and title not in text
    (known,) = query(
        db,
        "SELECT a.text, a.language, s.name FROM articles a JOIN sources s USING (source_id) WHERE a.title = %s",
        ("Swing Bridge repairs to close harbour road for six weeks",),
    )
    assert known[1] == "en" and known[2] == "wyemouth-courier-atom"
    assert "Wyemouth" in known[0] and len(known[0].split()) > 100

    # Monitoring: every task succeeded, mapped tasks are shards named by what they did, per-source results
    # are in source_runs, the run has its summary as note, and the articles Asset got an event whose extra is
    # the same summary.
    run = latest_run(meta)
    assert run["state"] == "success"
    assert {state for *_, state in run["tasks"]} == {"success"}
    checks = {task_id for task_id, *_ in run["tasks"] if task_id.startswith("quality.")}
    assert checks == {"quality.articles_in_stories", "quality.articles_text_and_dates", "quality.decisions_consistent"}
    ((stories, copies, segments),) = query(
        db, "SELECT stories_created, duplicates_found, segments_removed FROM pipeline_runs ORDER BY run_id LIMIT 1"
    )
    assert copies > 0 and stories + copies == expected
    crawls = sorted(name for task_id, _, name, _ in run["tasks"] if task_id == "crawl_shard")
    assert len(crawls) == 4 and all(name.startswith(f"shard {n + 1}/4: ") for n, name in enumerate(crawls)), crawls
    # The demo's outlets share one host: one shard crawls them all, the others have nothing to do.
    assert sorted(int(name.split(": ")[1].split()[0]) for name in crawls) == [0, 0, 0, sources], crawls
    ((pages,),) = query(db, "SELECT sum(pages_fetched) FROM source_runs")
    assert any(f": {sources} sources, {pages} pages, 0 pages failed, 0 sources failed" in n for n in crawls), crawls
    summaries = [name for task_id, _, name, _ in run["tasks"] if task_id == "shard_summary"]
    assert len(summaries) == 4 and any(f" {expected} new, " in name for name in summaries), summaries
    processors = [name for task_id, _, name, _ in run["tasks"] if task_id == "process_shard"]
    assert len(processors) == 2 and sum(int(n.split(": ")[1].split()[0]) for n in processors) == expected
    per_source = query(db, "SELECT count(*), sum(articles_new) FROM source_runs")
    assert per_source == [(sources, expected)]
    assert run["note"] and f"stories created: **{stories}**" in run["note"]
    assert f"copies collapsed: **{copies}**" in run["note"] and f"segments removed: **{segments}**" in run["note"]
    ((extra,),) = query(
        meta,
        "SELECT e.extra FROM asset_event e JOIN asset a ON a.id = e.asset_id "
        "WHERE a.name = 'newsdedup_articles' ORDER BY e.id DESC LIMIT 1",
    )
    assert extra["stories_created"] == stories and extra["copies_collapsed"] == copies
    assert extra["run_key"] == run["run_id"] and extra["errors"] == 0

    # The same sources again: nothing new, nothing duplicated.
    dags_test(airflow_env["env"])
    assert query(db, "SELECT count(*) FROM articles") == [(expected,)]
    assert query(db, "SELECT count(*), sum(articles_new) FROM pipeline_runs") == [(2, expected)]


def test_a_source_failing_three_runs_in_a_row_fails_loudly(airflow_env: dict) -> None:
    db, meta, env = airflow_env["articles_url"], airflow_env["meta_url"], airflow_env["env"]
    sources = yaml.safe_load(airflow_env["sources"].read_text())
    broken_url = airflow_env["site"].url("/no-such-outlet/rss.xml")
    sources["sources"].append({"name": "broken-feed", "url": broken_url, "kind": "rss"})
    broken_sources = airflow_env["sources"].with_name("sources-broken.yaml")
    broken_sources.write_text(yaml.safe_dump(sources))
    # Two earlier runs in which the feed already failed.
    with psycopg2.connect(db) as conn, conn.cursor() as cur:
        cur.execute("INSERT INTO sources (name, url, kind) VALUES ('broken-feed', %s, 'rss')", (broken_url,))
        for n in (1, 2):
            cur.execute(
                "WITH r AS (INSERT INTO pipeline_runs (run_key, trigger, status) VALUES (%s, 'airflow', 'partial') "
                "RETURNING run_id) INSERT INTO source_runs (run_id, source_id, status, error, failure_streak) "
                "SELECT r.run_id, s.source_id, 'failed', 'HTTP 404', %s FROM r, sources s WHERE s.name = 'broken-feed'",
                (f"manual__earlier-{n}", n),
            )
    done = dags_test(env | {"NEWSDEDUP_SOURCES": str(broken_sources)}, ok=False)
    run = latest_run(meta)
    assert run["state"] == "failed"
    states = {(task_id, name): state for task_id, _, name, state in run["tasks"]}
    failed = [(task_id, name) for (task_id, name), state in states.items() if state == "failed"]
    assert {task_id for task_id, _ in failed} == {"crawl_shard", "report"}, failed
    broken = next(name for task_id, name in failed if task_id == "crawl_shard")
    assert "1 sources failed: broken-feed: FAILED (3 in a row)" in broken, broken
    # The other sources were processed and checked all the same.
    assert states[("finish_processing", None)] == "success"
    assert all(state == "success" for (task_id, _), state in states.items() if task_id.startswith("quality."))
    # Loud: a one-line reason from the callback, the run's note names the failed task.
    assert "newsdedup: news_ingest.crawl_shard[shard " in done.stdout + done.stderr
    assert "source broken-feed failed 3 runs in a row" in done.stdout + done.stderr
    assert run["note"] and "failed tasks: crawl_shard_" in run["note"] and "| broken-feed |" in run["note"]
    assert query(
        db,
        "SELECT failure_streak FROM source_runs r JOIN sources s USING (source_id) "
        "WHERE s.name = 'broken-feed' ORDER BY run_id DESC LIMIT 1",
    ) == [(3,)]
