"""
### news_ingest

Hourly crawl of the configured news sources into the newsdedup article database.

1. **begin**: reads the sources file (`NEWSDEDUP_SOURCES`), writes it to the `sources` table and
   opens a row in `pipeline_runs`.
2. **crawl_source**: one mapped task per source (named by source in the UI): reads the feed or
   sitemap with a conditional GET, fetches new article pages and stages them in `raw_pages`.
   Every request lands in `crawl_log`. A failing source does not stop the others.
3. **process_pages**: extracts, cleans and stores the staged pages in `articles`.
4. **report**: closes the run with its counts; the numbers are in `pipeline_runs`.

The article database is the Airflow connection `newsdedup_db` (`AIRFLOW_CONN_NEWSDEDUP_DB`).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import Connection, dag, get_current_context, task
from newsdedup import pipeline
from newsdedup.config import Settings

DEFAULT_ARGS = {
    "owner": "newsdedup",
    "retries": 3,
    "retry_delay": timedelta(seconds=30),
    "retry_exponential_backoff": True,
    "max_retry_delay": timedelta(minutes=10),
}


def _db_url() -> str:
    """Return the article database URL from the Airflow connection newsdedup_db."""
    return Connection.get("newsdedup_db").get_uri()


@dag(
    dag_id="news_ingest",
    schedule="@hourly",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["newsdedup"],
    doc_md=__doc__,
)
def news_ingest():
    """Crawl every source, then process and load, then report."""

    @task
    def begin() -> dict:
        """Sync the sources file and open the run."""
        settings = Settings(db_url=_db_url(), sources_path=Settings.from_env(require_db=False).sources_path)
        pipeline.sync_sources(settings)
        return pipeline.begin_run(settings.db_url, get_current_context()["run_id"], "airflow")

    @task
    def source_names(run: dict) -> list[str]:
        """List the sources to crawl, one mapped task each."""
        return run["sources"]

    @task(map_index_template="{{ source_name }}", retries=1)
    def crawl_source(source_name: str, run: dict) -> dict:
        """Discover and fetch one source."""
        get_current_context()["source_name"] = source_name
        return pipeline.crawl_source(_db_url(), run["run_id"], source_name)

    @task
    def process_pages(run: dict, reports: list[dict]) -> dict:
        """Extract, clean and store the staged pages."""
        return pipeline.process_pages(_db_url(), run["run_id"])

    @task
    def report(run: dict, reports: list[dict], processed: dict) -> dict:
        """Close the run and return its summary."""
        return pipeline.finish_run(_db_url(), run["run_id"], list(reports), processed)

    run = begin()
    reports = crawl_source.partial(run=run).expand(source_name=source_names(run))
    report(run, reports, process_pages(run, reports))


news_ingest()
