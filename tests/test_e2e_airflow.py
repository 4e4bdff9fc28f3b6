"""End to end: the demo site on 127.0.0.1, news_ingest run by real Airflow (`airflow dags test`)."""

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest

from demo import site as demo_site
from tests.conftest import REPO, _create_database, _drop_database

pytestmark = pytest.mark.e2e
AIRFLOW = str(Path(sys.executable).with_name("airflow"))


def query(db_url: str, sql: str, params: tuple = ()) -> list[tuple]:
    with psycopg2.connect(db_url) as conn, conn.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall()


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
    yield {"env": env, "articles_url": articles_url, "site": site}
    site.stop()
    _drop_database(pg_admin_url, articles_url)
    _drop_database(pg_admin_url, meta_url)


def dags_test(env: dict) -> subprocess.CompletedProcess:
    """Run news_ingest once through Airflow; fail with its log on error."""
    done = subprocess.run(
        [AIRFLOW, "dags", "test", "news_ingest"], env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    return done


def test_news_ingest_through_airflow(airflow_env: dict) -> None:
    site, db = airflow_env["site"], airflow_env["articles_url"]
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

    # The same sources again: nothing new, nothing duplicated.
    dags_test(airflow_env["env"])
    assert query(db, "SELECT count(*) FROM articles") == [(expected,)]
    assert query(db, "SELECT count(*), sum(articles_new) FROM pipeline_runs") == [(2, expected)]
