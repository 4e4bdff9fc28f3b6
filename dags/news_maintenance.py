"""
### news_maintenance

Daily upkeep of the newsdedup article database (the Airflow connection `newsdedup_db`). Without Airflow,
`newsdedup maintain` does the same through the same library functions (newsdedup.monitor).

1. **retention**: deletes raw pages processed more than `NEWSDEDUP_RETAIN_RAW_PAGES_DAYS` (7) days ago
   and `crawl_log` rows older than `NEWSDEDUP_RETAIN_CRAWL_LOG_DAYS` (90) days, in short batches.
   Articles, stories, decisions, runs and per-source results are never deleted.
2. **analyze**: `ANALYZE` on newsdedup's tables, so the planner knows their new sizes.
3. **stale_sources**: lists the enabled sources whose feed was not read successfully for
   `NEWSDEDUP_STALE_HOURS` (24) hours, with their last error, in the log and the DAG run's note.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from airflow.sdk import Connection, dag, get_current_context, task
from newsdedup import monitor
from newsdedup.textsafe import one_line

log = logging.getLogger(__name__)


def _db_url() -> str:
    """Return the article database URL from the Airflow connection newsdedup_db."""
    return Connection.get("newsdedup_db").get_uri()


def log_task_failure(context: dict) -> None:
    """on_failure_callback: one line naming the task and the reason."""
    ti = context["ti"]
    log.error(one_line(monitor.task_failure_line(ti.dag_id, ti.task_id, ti.try_number, context.get("exception"))))


@dag(
    dag_id="news_maintenance",
    schedule="@daily",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args={
        "owner": "newsdedup",
        "retries": 2,
        "retry_delay": timedelta(minutes=1),
        "retry_exponential_backoff": True,
        "on_failure_callback": log_task_failure,
    },
    tags=["newsdedup"],
    doc_md=__doc__,
)
def news_maintenance():
    """Retention, ANALYZE, stale-source report."""

    @task
    def retention() -> dict:
        """Delete processed raw pages and old crawl_log rows."""
        done = monitor.apply_retention(_db_url(), monitor.Retention.from_env())
        log.info("retention: %(raw_pages_deleted)d raw pages and %(crawl_log_deleted)d crawl_log rows deleted", done)
        return done

    @task
    def analyze() -> list[str]:
        """Refresh planner statistics."""
        tables = monitor.analyze(_db_url())
        log.info("analyzed %s", ", ".join(tables))
        return tables

    @task
    def stale_sources(purged: dict, tables: list[str]) -> list[dict]:
        """Report the sources that have not been read successfully for too long."""
        hours = monitor.Retention.from_env().stale_hours
        stale = monitor.stale_sources(_db_url(), hours)
        for source in stale:
            log.warning("stale source %s", one_line(monitor.stale_line(source)))  # it quotes the last error
        lines = [
            f"**retention**: {purged['raw_pages_deleted']} raw pages, {purged['crawl_log_deleted']} crawl_log rows "
            f"deleted · **analyzed** {len(tables)} tables",
            f"**stale sources** (no successful read for {hours} h): {len(stale)}",
            *[f"- {s['source']}: last success {s['last_success'] or 'never'}" for s in stale[:10]],
        ]
        get_current_context()["ti"].xcom_push(key="run_note", value="\n".join(lines)[: monitor.NOTE_LIMIT])
        return stale

    purged = retention()
    tables = analyze()
    purged >> tables
    stale_sources(purged, tables)


news_maintenance()
