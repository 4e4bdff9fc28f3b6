"""
### news_maintenance

Daily upkeep of the newsdedup article database (the Airflow connection `newsdedup_db`). Without Airflow,
`newsdedup maintain` does the same through the same library functions (newsdedup.retention).

1. **retention**: deletes raw pages processed more than `NEWSDEDUP_RETAIN_RAW_PAGES_DAYS` (7) days ago
   and `crawl_log` rows older than `NEWSDEDUP_RETAIN_CRAWL_LOG_DAYS` (90) days, in short batches.
   Articles older than `NEWSDEDUP_CANDIDATE_DAYS` (30) leave the dedup band index (`lsh_bands`).
   Articles, stories, decisions, signatures, runs and per-source results are never deleted.
2. **analyze**: `ANALYZE` on newsdedup's tables, so the planner knows their new sizes.
3. **stale_sources**: lists the enabled sources whose feed was not read successfully for
   `NEWSDEDUP_STALE_HOURS` (24) hours, with their last error, in the log and the DAG run's note.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from airflow.sdk import dag, get_current_context, task
from newsdedup import retention as upkeep
from newsdedup.airflow_helpers import dag_arguments, push_run_note, task_db_url
from newsdedup.textsafe import one_line

log = logging.getLogger(__name__)


@dag(**dag_arguments("news_maintenance", "@daily", __doc__, retries=2, retry_delay=timedelta(minutes=1)))
def news_maintenance():
    """Retention, ANALYZE, stale-source report."""

    @task
    def retention() -> dict:
        """Delete processed raw pages and old crawl_log rows."""
        done = upkeep.apply_retention(task_db_url(), upkeep.Retention.from_env())
        log.info(
            "retention: %(raw_pages_deleted)d raw pages and %(crawl_log_deleted)d crawl_log rows deleted, "
            "%(candidates_unindexed)d articles left the band index",
            done,
        )
        return done

    @task
    def analyze() -> list[str]:
        """Refresh planner statistics."""
        tables = upkeep.analyze(task_db_url())
        log.info("analyzed %s", ", ".join(tables))
        return tables

    @task
    def stale_sources(purged: dict, tables: list[str]) -> list[dict]:
        """Report the sources that have not been read successfully for too long."""
        hours = upkeep.Retention.from_env().stale_hours
        stale = upkeep.stale_sources(task_db_url(), hours)
        for source in stale:
            log.warning("stale source %s", one_line(upkeep.stale_line(source)))  # it quotes the last error
        lines = [
            f"**retention**: {purged['raw_pages_deleted']} raw pages, {purged['crawl_log_deleted']} crawl_log rows "
            f"deleted, {purged['candidates_unindexed']} articles out of the band index · "
            f"**analyzed** {len(tables)} tables",
            f"**stale sources** (no successful read for {hours} h): {len(stale)}",
            *[f"- {s['source']}: last success {s['last_success'] or 'never'}" for s in stale[:10]],
        ]
        push_run_note(get_current_context(), "\n".join(lines))
        return stale

    purged = retention()
    tables = analyze()
    purged >> tables
    stale_sources(purged, tables)


news_maintenance()
