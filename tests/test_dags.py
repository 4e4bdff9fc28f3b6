"""DAG integrity: the DAG files import cleanly and news_ingest / news_maintenance are shaped as designed."""

from datetime import timedelta
from pathlib import Path

import pytest

DAGS = Path(__file__).resolve().parents[1] / "dags"
QUALITY = {"quality.articles_in_stories", "quality.articles_text_and_dates", "quality.decisions_consistent"}


@pytest.fixture(scope="module")
def bag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS))


def test_no_import_errors(bag) -> None:
    assert bag.import_errors == {}
    assert {"news_ingest", "news_maintenance"} <= set(bag.dags)


def test_news_ingest_schedule_and_limits(bag) -> None:
    dag = bag.dags["news_ingest"]
    assert dag.schedule == "@hourly" or str(dag.timetable.summary) == "@hourly"
    assert dag.catchup is False
    assert dag.max_active_runs == 1
    assert dag.doc_md and "newsdedup_db" in dag.doc_md
    assert dag.on_failure_callback


def test_news_ingest_tasks_and_order(bag) -> None:
    dag = bag.dags["news_ingest"]
    assert set(dag.task_ids) == {
        "begin",
        "shard_list",
        "processor_list",
        "crawl_shard",
        "process_shard",
        "finish_processing",
        "shard_summary",
        "report",
        *QUALITY,
    }
    crawl = dag.get_task("crawl_shard")
    assert crawl.map_index_template == "{{ crawl_label }}"
    assert dag.get_task("process_shard").map_index_template == "{{ process_label }}"
    assert dag.get_task("shard_summary").map_index_template == "{{ summary_line }}"
    assert dag.get_task("begin").downstream_task_ids >= {"shard_list", "processor_list", "crawl_shard"}
    # Mapped over shards and processors (XCom lists), never over sources.
    assert dag.get_task("shard_list").downstream_task_ids == {"crawl_shard", "shard_summary"}
    assert dag.get_task("processor_list").downstream_task_ids == {"process_shard"}
    assert crawl.downstream_task_ids == {"process_shard"}
    assert dag.get_task("process_shard").downstream_task_ids == {"finish_processing"}
    assert dag.get_task("finish_processing").downstream_task_ids == QUALITY | {"shard_summary"}
    for task_id in QUALITY | {"shard_summary"}:
        assert dag.get_task(task_id).downstream_task_ids == {"report"}
    assert dag.get_task("report").downstream_task_ids == set()


def test_failures_do_not_stop_the_rest_and_report_always_runs(bag) -> None:
    dag = bag.dags["news_ingest"]
    # One failing shard must not keep the others' pages from being processed; a dead processing task's
    # pages are processed by finish_processing.
    assert dag.get_task("process_shard").trigger_rule == "all_done_min_one_success"
    assert dag.get_task("finish_processing").trigger_rule == "all_done_min_one_success"
    # The run is always closed and summarised; report itself fails when anything failed.
    assert dag.get_task("report").trigger_rule == "all_done"


def test_quality_checks_use_common_sql_on_the_article_connection(bag) -> None:
    from airflow.providers.common.sql.operators.sql import (
        SQLCheckOperator,
        SQLColumnCheckOperator,
        SQLTableCheckOperator,
    )

    dag = bag.dags["news_ingest"]
    kinds = {type(dag.get_task(task_id)) for task_id in QUALITY}
    assert kinds == {SQLCheckOperator, SQLColumnCheckOperator, SQLTableCheckOperator}
    for task_id in QUALITY:
        check = dag.get_task(task_id)
        assert check.conn_id == "newsdedup_db"
        assert "run_id" in check.sql  # scoped to this DAG run's articles by a template
    table = dag.get_task("quality.articles_text_and_dates")
    assert set(table.checks) == {"text_not_empty", "published_not_in_future"}
    assert dag.get_task("quality.articles_in_stories").column_mapping == {"cluster_id": {"null_check": {"equal_to": 0}}}


def test_report_publishes_the_articles_asset(bag) -> None:
    outlets = bag.dags["news_ingest"].get_task("report").outlets
    assert [(a.name, a.uri) for a in outlets] == [("newsdedup_articles", "x-newsdedup://articles")]


def test_retries_with_backoff(bag) -> None:
    for dag_id in ("news_ingest", "news_maintenance"):
        for task in bag.dags[dag_id].tasks:
            assert task.retries >= 1, task.task_id
            assert task.retry_delay <= timedelta(minutes=1), task.task_id
            assert task.on_failure_callback, task.task_id
    for task in bag.dags["news_ingest"].tasks:
        assert task.retry_exponential_backoff


def test_news_maintenance_shape(bag) -> None:
    dag = bag.dags["news_maintenance"]
    assert dag.schedule == "@daily" or str(dag.timetable.summary) == "@daily"
    assert dag.catchup is False and dag.max_active_runs == 1
    assert set(dag.task_ids) == {"retention", "analyze", "stale_sources"}
    assert dag.get_task("retention").downstream_task_ids == {"analyze", "stale_sources"}
    assert dag.get_task("analyze").downstream_task_ids == {"stale_sources"}


def test_the_dag_helpers_import_without_airflow() -> None:
    """DAGs and the dashboard share newsdedup.airflow_helpers; importing it must not import Airflow."""
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['airflow'] = None\n"  # any `import airflow...` now fails
        "from newsdedup import airflow_helpers as h\n"
        "assert 'airflow' not in {m.split('.')[0] for m in sys.modules if sys.modules[m] is not None}\n"
        "print(h.clip('x' * 300, h.LABEL_LIMIT).endswith('…'), len(h.task_failure_line('d', 't', 1, 'a\\nb')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=DAGS.parent / "plugins")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", str(len("newsdedup: d.t failed (try 1): a"))]


def test_parsing_the_ingest_dag_imports_no_extraction_or_dedup_library() -> None:
    """The DAG file imports the library inside its tasks: a parse loads no trafilatura, datasketch or numpy."""
    import subprocess
    import sys

    code = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('news_ingest', {str(DAGS / 'news_ingest.py')!r})\n"
        "spec.loader.exec_module(importlib.util.module_from_spec(spec))\n"
        "heavy = ('trafilatura', 'datasketch', 'numpy')\n"
        "print(sorted(m for m in heavy if m in sys.modules), 'newsdedup.airflow_helpers' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=DAGS.parent / "plugins")
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split("\n")[-2] == "[] True", done.stdout[-2000:]
