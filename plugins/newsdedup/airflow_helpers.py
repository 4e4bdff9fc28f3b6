"""What the DAGs and the dashboard plugin share: the article database connection, failure callbacks, run notes.

Importing this module imports no Airflow (the CLI and the tests use it without Airflow); each function
imports what it needs when it runs.
"""

from __future__ import annotations

import logging
import os
from datetime import datetime, timedelta

from newsdedup import settings
from newsdedup.textsafe import one_line

log = logging.getLogger(__name__)

DB_CONN = "newsdedup_db"  # the Airflow connection of the article database
NOTE_XCOM_KEY = "run_note"  # a task pushes the DAG run's note under this key; the plugin's listener writes it
NOTE_LIMIT = 1000  # Airflow's dag_run_note.content is varchar(1000)
LABEL_LIMIT = 250  # task_instance.rendered_map_index is varchar(250)
SHARD_START_WINDOW = timedelta(minutes=30)  # an hourly run: no source of a shard starts later; the rest wait


def crawl_shard_time_limit(environ: dict[str, str] | None = None) -> timedelta:
    """Longest a crawl shard may take: its start window, then one source's budget, its request in flight
    and robots.txt, a minute."""
    env = settings.load(environ)
    return SHARD_START_WINDOW + timedelta(seconds=env.source_budget_seconds + 2 * env.fetch_timeout + 60)


def clip(text: str, limit: int) -> str:
    """Cut text to at most `limit` characters, marking the cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def task_db_url() -> str:
    """The article database URL, inside a task: the Airflow connection newsdedup_db."""
    from airflow.sdk import Connection

    return Connection.get(DB_CONN).get_uri()


def server_db_url() -> str | None:
    """The article database URL, in the API server: the connection newsdedup_db, else NEWSDEDUP_DB_URL, else None."""
    from airflow.exceptions import AirflowNotFoundException
    from airflow.models.connection import Connection

    try:
        return Connection.get_connection_from_secrets(DB_CONN).get_uri()
    except AirflowNotFoundException:
        return os.environ.get("NEWSDEDUP_DB_URL") or None


def push_run_note(context: dict, note: str) -> None:
    """Hand the DAG run's note to the plugin's listener (XCom NOTE_XCOM_KEY), cut to what Airflow stores."""
    context["ti"].xcom_push(key=NOTE_XCOM_KEY, value=note[:NOTE_LIMIT])


def task_failure_line(dag_id: str, task_label: str, try_number: int | None, exc: BaseException | str | None) -> str:
    """One line saying which task failed and why, for failure callbacks."""
    reason = exc if isinstance(exc, str) else f"{type(exc).__name__}: {exc}" if exc else "unknown reason"
    first = str(reason).strip().splitlines()[0] if str(reason).strip() else "unknown reason"
    attempt = f" (try {try_number})" if try_number else ""
    return clip(f"newsdedup: {dag_id}.{task_label} failed{attempt}: {first}", 500)


def task_label(context: dict) -> str:
    """Task id, with the mapped task's name (or index) in brackets."""
    ti = context["ti"]
    if getattr(ti, "map_index", -1) is None or getattr(ti, "map_index", -1) < 0:
        return ti.task_id
    return f"{ti.task_id}[{getattr(ti, 'rendered_map_index', None) or ti.map_index}]"


def check_failures(task_obj: object) -> list[str]:
    """Names of the failed checks a common-sql check operator recorded before it raised."""
    failed = [name for name, c in (getattr(task_obj, "checks", None) or {}).items() if c.get("success") is False]
    for column, checks in (getattr(task_obj, "column_mapping", None) or {}).items():
        failed += [f"{column}.{name}" for name, c in checks.items() if c.get("success") is False]
    from airflow.providers.common.sql.operators.sql import SQLCheckOperator

    if isinstance(task_obj, SQLCheckOperator):  # the column and table checks keep check_results too: named above
        for result in getattr(task_obj, "check_results", None) or []:
            if not result.success:
                failed.append(f"{task_obj.task_id} returned {result.actual}")
    return failed


def log_task_failure(context: dict) -> None:
    """on_failure_callback: one line naming the task and the reason (the failed checks of a check operator)."""
    failed_checks = check_failures(context.get("task"))
    reason = f"checks failed: {', '.join(failed_checks)}" if failed_checks else context.get("exception")
    ti = context["ti"]
    log.error(one_line(task_failure_line(ti.dag_id, task_label(context), ti.try_number, reason)))


def log_task_retry(context: dict) -> None:
    """on_retry_callback: one line naming the task, the attempt and the reason."""
    ti = context["ti"]
    line = task_failure_line(ti.dag_id, task_label(context), ti.try_number, context.get("exception"))
    log.warning("%s; retrying", one_line(line))


def log_run_failure(context: dict) -> None:
    """DAG on_failure_callback: one line naming the run, the reason and the last failed task."""
    ti = context.get("ti")
    dag = context.get("dag")
    dag_id = getattr(dag, "dag_id", None) or getattr(ti, "dag_id", None) or "newsdedup"
    last = f", last failed task {ti.task_id}" if ti is not None else ""
    log.error("newsdedup: %s run %s failed (%s%s)", dag_id, context.get("run_id"), context.get("reason"), last)


def dag_arguments(dag_id: str, schedule: str, doc_md: str | None, **task_args: object) -> dict:
    """The @dag arguments every newsdedup DAG shares: one run at a time, no catch-up, failed tasks logged in one line.

    `task_args` add to (or override) the tasks' default_args, e.g. their retries.
    """
    return {
        "dag_id": dag_id,
        "schedule": schedule,
        "start_date": datetime(2026, 1, 1),
        "catchup": False,
        "max_active_runs": 1,
        "default_args": {
            "owner": "newsdedup",
            "retry_exponential_backoff": True,
            "on_failure_callback": log_task_failure,
            **task_args,
        },
        "tags": ["newsdedup"],
        "doc_md": doc_md,
    }
