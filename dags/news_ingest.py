"""
### news_ingest

Hourly crawl of the configured news sources into the newsdedup article database.

1. **begin**: applies pending migrations, reads the sources file (`NEWSDEDUP_SOURCES`), writes it to the
   `sources` table and opens a row in `pipeline_runs`.
2. **crawl_source**: one mapped task per source, named by the source and what its crawl did: reads the
   feed or sitemap with a conditional GET, fetches new article pages and stages them in `raw_pages`,
   starting no request after the source's time budget (`NEWSDEDUP_SOURCE_BUDGET_SECONDS`; the
   task's `execution_timeout` is that plus two request timeouts plus a minute).
   Every request lands in `crawl_log`, the source's result in `source_runs`. A failing source does not
   stop the others; a source failing `NEWSDEDUP_FAIL_AFTER_RUNS` (3) runs in a row fails its task.
3. **process_pages**: extracts, cleans, stores and deduplicates the staged pages in `articles`, then
   counts per source what became new, revised or a duplicate.
4. **quality**: data-quality checks on the articles this run loaded (common-sql check operators on the
   connection `newsdedup_db`): no empty text, no publication date in the future, every article in a
   story, no orphan or inconsistent duplicate decisions.
5. **source_summary**: one mapped task per source, named
   `source: fetched, new, revised, duplicates, failed, skipped by robots / conditional GET`.
6. **report**: closes the run in `pipeline_runs`, writes the run summary (stories created, copies
   collapsed, segments removed, errors) to the log, to the DAG run's note and to the `extra` of an
   event of the Asset `newsdedup_articles`; fails when any task of the run failed.

The article database is the Airflow connection `newsdedup_db` (`AIRFLOW_CONN_NEWSDEDUP_DB`).
"""

from __future__ import annotations

import copy
import logging
from datetime import datetime, timedelta

from airflow.providers.common.sql.operators.sql import (
    SQLCheckOperator,
    SQLColumnCheckOperator,
    SQLTableCheckOperator,
)
from airflow.sdk import Asset, Connection, TaskGroup, TriggerRule, dag, get_current_context, task
from airflow.sdk.exceptions import AirflowFailException
from newsdedup import monitor, pipeline, store
from newsdedup.config import Settings
from newsdedup.textsafe import one_line

log = logging.getLogger(__name__)

DB_CONN = "newsdedup_db"
ARTICLES = Asset(name="newsdedup_articles", uri="x-newsdedup://articles", group="newsdedup")
FAILED_STATES = ("failed",)  # root causes only: upstream_failed tasks follow from these


def _db_url() -> str:
    """Return the article database URL from the Airflow connection newsdedup_db."""
    return Connection.get(DB_CONN).get_uri()


def _task_label(context: dict) -> str:
    """Task id, with the mapped task's name (or index) in brackets."""
    ti = context["ti"]
    if getattr(ti, "map_index", -1) is None or getattr(ti, "map_index", -1) < 0:
        return ti.task_id
    return f"{ti.task_id}[{getattr(ti, 'rendered_map_index', None) or ti.map_index}]"


def _check_failures(task_obj: object) -> list[str]:
    """Names of the failed checks a common-sql check operator recorded before it raised."""
    failed = [name for name, c in (getattr(task_obj, "checks", None) or {}).items() if c.get("success") is False]
    for column, checks in (getattr(task_obj, "column_mapping", None) or {}).items():
        failed += [f"{column}.{name}" for name, c in checks.items() if c.get("success") is False]
    if isinstance(task_obj, SQLCheckOperator):
        for result in getattr(task_obj, "check_results", None) or []:
            if not result.success:
                failed.append(f"{task_obj.task_id} returned {result.actual}")
    return failed


def log_task_failure(context: dict) -> None:
    """on_failure_callback: one line naming the task and the reason."""
    failed_checks = _check_failures(context.get("task"))
    reason = f"checks failed: {', '.join(failed_checks)}" if failed_checks else context.get("exception")
    ti = context["ti"]
    log.error(one_line(monitor.task_failure_line(ti.dag_id, _task_label(context), ti.try_number, reason)))


def log_task_retry(context: dict) -> None:
    """on_retry_callback: one line naming the task, the attempt and the reason."""
    ti = context["ti"]
    line = monitor.task_failure_line(ti.dag_id, _task_label(context), ti.try_number, context.get("exception"))
    log.warning("%s; retrying", one_line(line))


def log_run_failure(context: dict) -> None:
    """DAG on_failure_callback: one line naming the run, the reason and the last failed task."""
    ti = context.get("ti")
    last = f", last failed task {ti.task_id}" if ti is not None else ""
    log.error("newsdedup: news_ingest run %s failed (%s%s)", context.get("run_id"), context.get("reason"), last)


DEFAULT_ARGS = {
    "owner": "newsdedup",
    "retries": 3,
    "retry_delay": timedelta(seconds=30),
    "retry_exponential_backoff": True,
    "max_retry_delay": timedelta(minutes=10),
    "on_failure_callback": log_task_failure,
    "on_retry_callback": log_task_retry,
}


@dag(
    dag_id="news_ingest",
    schedule="@hourly",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    on_failure_callback=log_run_failure,
    tags=["newsdedup"],
    doc_md=__doc__,
)
def news_ingest():
    """Crawl every source, process and load, check, summarise, report."""

    @task(multiple_outputs=False)
    def begin() -> dict:
        """Migrate, sync the sources file and open the run."""
        db_url = _db_url()
        with store.connect(db_url) as conn:
            store.migrate(conn)
        settings = Settings(db_url=db_url, sources_path=Settings.from_env(require_db=False).sources_path)
        pipeline.sync_sources(settings)
        return pipeline.begin_run(db_url, get_current_context()["run_id"], "airflow")

    @task
    def source_names(run: dict) -> list[str]:
        """List the sources to crawl, one mapped task each."""
        return run["sources"]

    # A source's crawl stops starting requests after NEWSDEDUP_SOURCE_BUDGET_SECONDS; this stops a task
    # stuck anyway (its pages then wait for the next run) before the next hourly run queues behind it.
    @task(
        map_index_template="{{ crawl_label }}",
        retries=1,
        multiple_outputs=False,
        execution_timeout=pipeline.crawl_time_limit(),
    )
    def crawl_source(source_name: str, run: dict) -> dict:
        """Discover and fetch one source, record its result; fail when it failed too many runs in a row."""
        context = get_current_context()
        context["crawl_label"] = source_name
        db_url = _db_url()
        try:
            report = pipeline.crawl_source(db_url, run["run_id"], source_name)
        except Exception as exc:
            monitor.record_crawl(db_url, run["run_id"], {"source": source_name, "failed": True, "error": repr(exc)})
            raise
        row = monitor.record_crawl(db_url, run["run_id"], report)
        context["crawl_label"] = one_line(monitor.crawl_label(row))  # the label quotes errors from the web
        log.info("%s", context["crawl_label"])
        if message := monitor.streak_message(row, monitor.fail_after_runs()):
            raise AirflowFailException(message)
        return report

    @task(trigger_rule=TriggerRule.ALL_DONE_MIN_ONE_SUCCESS, multiple_outputs=False)
    def process_pages(run: dict) -> dict:
        """Extract, clean, store and deduplicate the staged pages; count the outcome per source."""
        db_url = _db_url()
        processed = pipeline.process_pages(db_url, run["run_id"])
        monitor.summarise_sources(db_url, run["run_id"])
        return processed

    @task(map_index_template="{{ summary_line }}", multiple_outputs=False)
    def source_summary(source_name: str, run: dict) -> dict | None:
        """Name the task after what this run did with one source, and log it."""
        context = get_current_context()
        row = monitor.source_stats(_db_url(), run["run_id"], source_name)
        context["summary_line"] = one_line(monitor.source_line(row) if row else f"{source_name}: not recorded")
        log.info("%s", context["summary_line"])
        return row

    @task(trigger_rule=TriggerRule.ALL_DONE, outlets=[ARTICLES], retries=1, multiple_outputs=False)
    def report() -> dict:
        """Close the run, publish its summary (log, DAG run note, Asset event); fail if any task failed."""
        context = get_current_context()
        ti = context["ti"]
        run = ti.xcom_pull(task_ids="begin")
        if not run:
            raise AirflowFailException("begin opened no pipeline run: see the begin task's log")
        db_url = _db_url()
        processed = ti.xcom_pull(task_ids="process_pages") or {}
        pipeline.finish_run(db_url, run["run_id"], monitor.crawl_reports(db_url, run["run_id"]), processed)
        states = ti.get_task_states(dag_id=ti.dag_id, run_ids=[ti.run_id]).get(ti.run_id, {})
        failed = sorted(task_id for task_id, state in states.items() if state in FAILED_STATES)
        summary = monitor.run_summary(db_url, run["run_id"], failed)
        for line in summary["note"].splitlines():
            log.info("%s", line)
        # The newsdedup UI plugin's listener turns this into the DAG run's note, success or not.
        ti.xcom_push(key="run_note", value=summary["note"])
        if failed:
            raise AirflowFailException(f"{len(failed)} task(s) of this run failed: {', '.join(failed)}")
        context["outlet_events"][ARTICLES].extra = summary["asset_extra"]
        return summary

    run = begin()
    names = source_names(run)
    crawled = crawl_source.partial(run=run).expand(source_name=names)
    processed = process_pages(run)
    crawled >> processed

    # A failed check fails again on the same data: one quick retry covers a dropped connection.
    checks_args = {"retries": 1, "retry_delay": timedelta(seconds=10)}
    with TaskGroup(
        "quality", tooltip="data-quality checks on the articles this run loaded", default_args=checks_args
    ) as quality:
        SQLColumnCheckOperator(
            task_id="articles_in_stories",
            conn_id=DB_CONN,
            table="articles",
            column_mapping=copy.deepcopy(monitor.ARTICLE_COLUMN_CHECKS),
            partition_clause=monitor.run_scope(),
        )
        SQLTableCheckOperator(
            task_id="articles_text_and_dates",
            conn_id=DB_CONN,
            table="articles",
            checks=copy.deepcopy(monitor.ARTICLE_TABLE_CHECKS),
            partition_clause=monitor.run_scope(),
        )
        SQLCheckOperator(task_id="decisions_consistent", conn_id=DB_CONN, sql=monitor.decisions_check_sql())

    summaries = source_summary.partial(run=run).expand(source_name=names)
    processed >> [quality, summaries] >> report()


news_ingest()
