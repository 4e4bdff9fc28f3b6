"""The run counters' one definition (newsdedup.run_counters) against the migrated database and docs/schema.md."""

from __future__ import annotations

import re

import psycopg2
import pytest
from newsdedup import run_counters
from newsdedup.run_counters import RUN_COUNTERS, SOURCE_COUNTERS

from tests.conftest import REPO

# Integer columns of the runs tables that are not counters: what the run or its source is, not what it counted.
NOT_COUNTERS = {"pipeline_runs": {"run_id", "sources_total"}, "source_runs": {"run_id", "source_id", "failure_streak"}}
TABLES = {"pipeline_runs": RUN_COUNTERS, "source_runs": SOURCE_COUNTERS}


def integer_columns(db_url: str, table: str) -> list[str]:
    """The table's integer columns, in column order, as information_schema lists them."""
    with psycopg2.connect(db_url) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() "
            "AND table_name = %s AND data_type IN ('integer', 'bigint') ORDER BY ordinal_position",
            (table,),
        )
        return [name for (name,) in cur.fetchall()]


def documented_columns(table: str) -> dict[str, tuple[str, str]]:
    """docs/schema.md's rows of one table: column name -> (type, meaning)."""
    text = (REPO / "docs" / "schema.md").read_text(encoding="utf-8")
    section = text.split(f"## `{table}`\n", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[0].startswith("`"):
            for name in re.findall(r"`([a-z_]+)`", cells[0]):
                rows[name] = (cells[1], cells[2])
    return rows


@pytest.mark.integration
@pytest.mark.parametrize("table", sorted(TABLES))
def test_counters_are_the_integer_columns_of_the_table(db_url: str, table: str) -> None:
    columns = [c for c in integer_columns(db_url, table) if c not in NOT_COUNTERS[table]]
    assert columns == [c.name for c in TABLES[table]]


@pytest.mark.parametrize("table", sorted(TABLES))
def test_docs_describe_each_counter_as_defined(table: str) -> None:
    documented = documented_columns(table)
    for counter in TABLES[table]:
        assert documented.get(counter.name) == ("integer", counter.description), counter.name


def test_the_sql_and_the_summary_follow_the_definition() -> None:
    steps = (run_counters.CRAWL, run_counters.PROCESS, run_counters.names("run"))
    assert sorted(name for step in steps for name in step) == sorted(run_counters.RUN)
    for name in run_counters.PROCESS:
        assert f"{name} = {name} + %({name})s" in run_counters.ADD_PROCESS_COUNTS
        assert name in run_counters.SELECT_PROCESS_COUNTS
    for name in run_counters.RUN:
        assert f"{name} = %({name})s" in run_counters.SET_RUN_COUNTS
    assert run_counters.ERRORS_SQL == "sources_failed + pages_failed + extract_failed"
    row = {c.name: n for n, c in enumerate(RUN_COUNTERS, start=1)}
    assert run_counters.summary(row)["copies_collapsed"] == row["duplicates_found"]
    assert run_counters.summary(row)["articles_revised"] == row["articles_updated"]
    assert run_counters.errors(row) == row["sources_failed"] + row["pages_failed"] + row["extract_failed"]
