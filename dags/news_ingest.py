"""
### news_ingest

Hourly crawl of the configured news sources into the newsdedup article database, in shards.

1. **begin**: applies pending migrations, reads the sources file (`NEWSDEDUP_SOURCES`), writes it to the
   `sources` table, plans the run (the sources due now, adaptive polling, grouped into
   `NEWSDEDUP_CRAWL_SHARDS` shards by a hash of their host) and opens a row in `pipeline_runs`.
2. **crawl_shard**: one mapped task per shard, named by what it did (sources, pages, failures). It crawls
   its due sources concurrently with one fetcher (all sources of a host are in one shard, so per-host
   politeness holds across workers): each source's feed or sitemap with a conditional GET, its new
   article pages staged in `raw_pages`, no request after the source's time budget
   (`NEWSDEDUP_SOURCE_BUDGET_SECONDS`), no source started after 30 minutes (the rest stay due).
   Every request lands in `crawl_log`, each source's result in `source_runs`. A failing source does not
   stop the others; a source failing `NEWSDEDUP_FAIL_AFTER_RUNS` (3) runs in a row fails its shard's task.
3. **process_shard**: `NEWSDEDUP_PROCESS_SHARDS` mapped tasks extract, clean, store and deduplicate the
   staged pages in `articles`, each claiming disjoint batches (row locks, `FOR UPDATE SKIP LOCKED`; a
   crashed task's claims end with its connection). **finish_processing** processes what is left (the
   pages of a task that died), settles the pages without text and counts per source what became new,
   revised or a duplicate.
4. **quality**: data-quality checks on the articles this run loaded (common-sql check operators on the
   connection `newsdedup_db`): no empty text, no publication date in the future, every article in a
   story, no orphan or inconsistent duplicate decisions.
5. **shard_summary**: one mapped task per crawl shard, named `shard: sources, fetched, new, revised,
   duplicates, failed`; its log has one line per source (as `source_runs`, the run note and the dashboard).
6. **report**: closes the run in `pipeline_runs`, writes the run summary (stories created, copies
   collapsed, segments removed, errors) to the log, to the DAG run's note and to the `extra` of an
   event of the Asset `newsdedup_articles`; fails when any task of the run failed.

The article database is the Airflow connection `newsdedup_db` (`AIRFLOW_CONN_NEWSDEDUP_DB`). The library
is imported inside the tasks: parsing this file imports no extraction or dedup code.
"""

from __future__ import annotations

import copy
import logging
from datetime import timedelta

from airflow.providers.common.sql.operators.sql import (
    SQLCheckOperator,
    SQLColumnCheckOperator,
    SQLTableCheckOperator,
)
from airflow.sdk import Asset, TaskGroup, TriggerRule, dag, get_current_context, task
from airflow.sdk.exceptions import AirflowFailException
from newsdedup import quality_checks
from newsdedup.airflow_helpers import (
    DB_CONN,
    crawl_shard_time_limit,
    dag_arguments,
    log_run_failure,
    log_task_retry,
    push_run_note,
    task_db_url,
)
from newsdedup.textsafe import one_line

log = logging.getLogger(__name__)

ARTICLES = Asset(name="newsdedup_articles", uri="x-newsdedup://articles", group="newsdedup")
FAILED_STATES = ("failed",)  # root causes only: upstream_failed tasks follow from these


@dag(
    **dag_arguments(
        "news_ingest",
        "@hourly",
        __doc__,
        retries=3,
        retry_delay=timedelta(seconds=30),
        max_retry_delay=timedelta(minutes=10),
        on_retry_callback=log_task_retry,
    ),
    on_failure_callback=log_run_failure,
)
def news_ingest():
    """Plan, crawl the due sources by shard, process and load in parallel, check, summarise, report."""

    @task(multiple_outputs=False)
    def begin() -> dict:
        """Migrate, sync the sources file, plan and open the run."""
        from newsdedup import pipeline, store
        from newsdedup.config import Settings
        from newsdedup.settings import load

        db_url = task_db_url()
        with store.connect(db_url) as conn:
            store.migrate(conn)
        settings = Settings(db_url=db_url, sources_path=Settings.from_env(require_db=False).sources_path)
        pipeline.sync_sources(settings)
        run = pipeline.begin_run(db_url, get_current_context()["run_id"], "airflow")
        log.info("run %s plans %d due sources: %s", run["run_id"], len(run.pop("sources")), run["shards"])
        return run | {"processors": list(range(load().process_shards))}

    @task
    def shard_list(run: dict) -> list[dict]:
        """The crawl shards of the run, one mapped task each."""
        return run["shards"]

    @task
    def processor_list(run: dict) -> list[int]:
        """The processing tasks of the run, by index."""
        return run["processors"]

    # A source's crawl stops starting requests after NEWSDEDUP_SOURCE_BUDGET_SECONDS and no source starts
    # after the shard's start window; this stops a task stuck anyway (its sources stay due for the next run).
    @task(
        map_index_template="{{ crawl_label }}",
        retries=1,
        multiple_outputs=False,
        execution_timeout=crawl_shard_time_limit(),
    )
    def crawl_shard(shard: dict, run: dict) -> dict:
        """Crawl the shard's due sources, record each; fail when one of them failed too many runs in a row."""
        from newsdedup import pipeline, run_report

        context = get_current_context()
        index, count = shard["shard"], shard["shards"]
        context["crawl_label"] = f"shard {index + 1}/{count}: {shard['sources']} sources (not finished)"
        db_url = task_db_url()
        names = pipeline.shard_sources(db_url, index, count, run["planned_at"])
        done = pipeline.crawl_shard(db_url, run["run_id"], names)
        context["crawl_label"] = one_line(run_report.shard_label(index, count, done["rows"], done["deferred"]))
        log.info("%s", context["crawl_label"])
        threshold = run_report.fail_after_runs()
        if streaks := [m for row in done["rows"] if (m := run_report.streak_message(row, threshold))]:
            raise AirflowFailException("; ".join(streaks))
        return {"sources": len(done["rows"]), "deferred": done["deferred"]}

    @task(
        map_index_template="{{ process_label }}",
        trigger_rule=TriggerRule.ALL_DONE_MIN_ONE_SUCCESS,
        multiple_outputs=False,
    )
    def process_shard(index: int, run: dict) -> int:
        """Extract, clean, store and deduplicate staged pages no other processing task has claimed."""
        from newsdedup import process

        context = get_current_context()
        processors = len(run["processors"])
        context["process_label"] = f"processor {index + 1}/{processors}"
        written = process.drain_pages(task_db_url(), run["run_id"])
        context["process_label"] = f"processor {index + 1}/{processors}: {written} pages"
        log.info("%s", context["process_label"])
        return written

    @task(trigger_rule=TriggerRule.ALL_DONE_MIN_ONE_SUCCESS, multiple_outputs=False)
    def finish_processing(run: dict) -> dict:
        """Process the pages left (a processing task died), settle failures, count the outcome per source."""
        from newsdedup import pipeline, run_report

        db_url = task_db_url()
        processed = pipeline.process_pages(db_url, run["run_id"])
        run_report.summarise_sources(db_url, run["run_id"])
        return processed

    @task(map_index_template="{{ summary_line }}", multiple_outputs=False)
    def shard_summary(shard: dict, run: dict) -> list[dict]:
        """Name the task after what this run did with one shard's sources; log one line per source."""
        from newsdedup import run_report

        context = get_current_context()
        rows = run_report.shard_stats(task_db_url(), run["run_id"], shard["shard"], shard["shards"])
        context["summary_line"] = one_line(run_report.shard_summary_line(shard["shard"], shard["shards"], rows))
        log.info("%s", context["summary_line"])
        for row in rows:
            log.info("%s", one_line(run_report.source_line(row)))  # the line quotes errors from the web
        return [{"source": row["source"], "status": row["status"]} for row in rows]

    @task(trigger_rule=TriggerRule.ALL_DONE, outlets=[ARTICLES], retries=1, multiple_outputs=False)
    def report() -> dict:
        """Close the run, publish its summary (log, DAG run note, Asset event); fail if any task failed."""
        from newsdedup import pipeline, run_report

        context = get_current_context()
        ti = context["ti"]
        run = ti.xcom_pull(task_ids="begin")
        if not run:
            raise AirflowFailException("begin opened no pipeline run: see the begin task's log")
        db_url = task_db_url()
        processed = ti.xcom_pull(task_ids="finish_processing") or {}
        pipeline.finish_run(db_url, run["run_id"], run_report.crawl_reports(db_url, run["run_id"]), processed)
        states = ti.get_task_states(dag_id=ti.dag_id, run_ids=[ti.run_id]).get(ti.run_id, {})
        failed = sorted(task_id for task_id, state in states.items() if state in FAILED_STATES)
        summary = run_report.run_summary(db_url, run["run_id"], failed)
        for line in summary["note"].splitlines():
            log.info("%s", line)
        # The newsdedup UI plugin's listener turns this into the DAG run's note, success or not.
        push_run_note(context, summary["note"])
        if failed:
            raise AirflowFailException(f"{len(failed)} task(s) of this run failed: {', '.join(failed)}")
        context["outlet_events"][ARTICLES].extra = summary["asset_extra"]
        return summary

    run = begin()
    plans = shard_list(run)
    crawled = crawl_shard.partial(run=run).expand(shard=plans)
    processing = process_shard.partial(run=run).expand(index=processor_list(run))
    processed = finish_processing(run)
    crawled >> processing >> processed

    # A failed check fails again on the same data: one quick retry covers a dropped connection.
    checks_args = {"retries": 1, "retry_delay": timedelta(seconds=10)}
    with TaskGroup(
        "quality", tooltip="data-quality checks on the articles this run loaded", default_args=checks_args
    ) as quality:
        run_articles = {"conn_id": DB_CONN, "table": "articles", "partition_clause": quality_checks.run_scope()}
        SQLColumnCheckOperator(
            task_id="articles_in_stories",
            column_mapping=copy.deepcopy(quality_checks.ARTICLE_COLUMN_CHECKS),
            **run_articles,
        )
        SQLTableCheckOperator(
            task_id="articles_text_and_dates", checks=copy.deepcopy(quality_checks.ARTICLE_TABLE_CHECKS), **run_articles
        )
        SQLCheckOperator(task_id="decisions_consistent", conn_id=DB_CONN, sql=quality_checks.decisions_check_sql())

    summaries = shard_summary.partial(run=run).expand(shard=plans)
    processed >> [quality, summaries] >> report()


news_ingest()
