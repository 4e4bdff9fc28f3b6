"""DAG integrity: the DAG files import cleanly and news_ingest is shaped as designed."""

from datetime import timedelta
from pathlib import Path

import pytest

DAGS = Path(__file__).resolve().parents[1] / "dags"


@pytest.fixture(scope="module")
def bag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS))


def test_no_import_errors(bag) -> None:
    assert bag.import_errors == {}
    assert "news_ingest" in bag.dags


def test_news_ingest_schedule_and_limits(bag) -> None:
    dag = bag.dags["news_ingest"]
    assert dag.schedule == "@hourly" or str(dag.timetable.summary) == "@hourly"
    assert dag.catchup is False
    assert dag.max_active_runs == 1
    assert dag.doc_md and "newsdedup_db" in dag.doc_md


def test_news_ingest_tasks_and_order(bag) -> None:
    dag = bag.dags["news_ingest"]
    assert set(dag.task_ids) == {"begin", "source_names", "crawl_source", "process_pages", "report"}
    crawl = dag.get_task("crawl_source")
    assert crawl.map_index_template == "{{ source_name }}"
    assert dag.get_task("begin").downstream_task_ids >= {"source_names", "crawl_source"}
    assert "process_pages" in crawl.downstream_task_ids
    assert dag.get_task("process_pages").downstream_task_ids == {"report"}


def test_retries_with_backoff(bag) -> None:
    for task in bag.dags["news_ingest"].tasks:
        assert task.retries >= 1
        assert task.retry_exponential_backoff
        assert task.retry_delay <= timedelta(minutes=1)
