"""The run report: each source's result in source_runs, the failure streaks, task labels, the run summary and note.

Plain Python and psycopg2: the DAG's tasks and `newsdedup ingest` call these, nothing here imports Airflow.
"""

from __future__ import annotations

import logging

import psycopg2.extras

from newsdedup import run_counters, settings, store
from newsdedup.airflow_helpers import LABEL_LIMIT, NOTE_LIMIT, clip
from newsdedup.jsonrows import fetch
from newsdedup.outcomes import Outcome
from newsdedup.shards import shard_of

log = logging.getLogger(__name__)

# What the Asset event of a finished run carries (keys of the run summary).
ASSET_EXTRA = (
    "run_key",
    "status",
    "articles_new",
    "articles_revised",
    "stories_created",
    "copies_collapsed",
    "segments_removed",
    "errors",
    "sources_failed",
)


def fail_after_runs() -> int:
    """Consecutive failed runs after which a source's task fails (NEWSDEDUP_FAIL_AFTER_RUNS)."""
    return settings.load().fail_after_runs


# --------------------------------------------------------------------------- per-source results


_RECORDED = ("status", "error", *run_counters.SOURCE_CRAWL)  # fixed column names
_RECORD_CRAWL = (
    f"INSERT INTO source_runs (run_id, source_id, {', '.join(_RECORDED)}) "  # noqa: S608
    f"VALUES (%(run_id)s, %(source_id)s, {', '.join(f'%({c})s' for c in _RECORDED)}) "
    "ON CONFLICT (run_id, source_id) DO UPDATE SET "
    + ", ".join(f"{c} = EXCLUDED.{c}" for c in _RECORDED)
    + ", crawled_at = now()"
)


def record_crawl(db_url: str, run_id: int, report: dict) -> dict:
    """Record one source's crawl report in source_runs; return it with its robots count and failure streak."""
    name = report["source"]
    failed = bool(report.get("failed"))
    status = "failed" if failed else "not_modified" if report.get("feeds_not_modified") else "ok"
    error = (str(report.get("error") or "") or None) if failed else None
    row = {"source": name, "status": status, "error": error, "failure_streak": 0}
    row |= {key: int(report.get(key, 0) or 0) for key in dict.fromkeys(run_counters.SOURCE_CRAWL + run_counters.CRAWL)}
    with store.connect(db_url) as conn, conn.cursor() as cur:
        cur.execute("SELECT source_id FROM sources WHERE name = %s", (name,))
        found = cur.fetchone()
        if found is None:
            log.warning("source %s is not in the sources table: crawl not recorded", name)
            return row
        source_id = found[0]
        cur.execute(
            "SELECT count(*) FROM crawl_log WHERE run_id = %s AND source_id = %s AND outcome = %s",
            (run_id, source_id, Outcome.ROBOTS_DISALLOWED),
        )
        row["robots_disallowed"] = cur.fetchone()[0]
        cur.execute(_RECORD_CRAWL, row | {"run_id": run_id, "source_id": source_id})
        row["failure_streak"] = _failure_streak(cur, source_id)
        cur.execute(
            "UPDATE source_runs SET failure_streak = %s WHERE run_id = %s AND source_id = %s",
            (row["failure_streak"], run_id, source_id),
        )
    return row


def _failure_streak(cur: psycopg2.extensions.cursor, source_id: int) -> int:
    """Count the source's most recent runs that failed, back to its last run that did not."""
    cur.execute(
        "SELECT count(*) FROM source_runs WHERE source_id = %(s)s AND status = 'failed' AND run_id > "
        "COALESCE((SELECT max(run_id) FROM source_runs WHERE source_id = %(s)s AND status <> 'failed'), 0)",
        {"s": source_id},
    )
    return cur.fetchone()[0]


def streak_message(row: dict, threshold: int) -> str | None:
    """Return why a source's task must fail (its failure streak reached the threshold), or None."""
    if row["status"] != "failed" or row["failure_streak"] < threshold:
        return None
    return f"source {row['source']} failed {row['failure_streak']} runs in a row: {row['error'] or 'unknown error'}"


def crawl_label(row: dict) -> str:
    """Name of a crawl task in the Airflow UI: the source and what its crawl did."""
    if row["status"] == "failed":
        label = f"{row['source']}: FAILED ({row['failure_streak']} in a row): {row['error'] or 'unknown error'}"
    elif row["status"] == "not_modified":
        label = f"{row['source']}: feed not modified (conditional GET)"
    else:
        label = (
            f"{row['source']}: {row['pages_fetched']} fetched, {row['pages_failed']} failed, "
            f"{row['urls_skipped_known']} known, {row['robots_disallowed']} robots"
        )
    return clip(label, LABEL_LIMIT)


def shard_label(shard: int, shards: int, rows: list[dict], deferred: int = 0) -> str:
    """Name of a crawl shard's task in the Airflow UI: its sources, pages, failures (the failed sources first)."""
    failed = [row for row in rows if row["status"] == "failed"]
    label = (
        f"shard {shard + 1}/{shards}: {len(rows)} sources, {sum(r['pages_fetched'] for r in rows)} pages, "
        f"{sum(r['pages_failed'] for r in rows)} pages failed, {len(failed)} sources failed"
    )
    if deferred:
        label += f", {deferred} left for the next run"
    if failed:
        label += ": " + "; ".join(crawl_label(row) for row in failed)
    return clip(label, LABEL_LIMIT)


def crawl_reports(db_url: str, run_id: int) -> list[dict]:
    """Return the run's recorded crawl reports, shaped like pipeline.crawl_source's return value."""
    with store.connect(db_url) as conn, conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
        cur.execute(
            "SELECT s.name AS source, r.status = 'failed' AS failed, r.error, "  # noqa: S608 - fixed column names
            + ", ".join(f"r.{name}" for name in run_counters.CRAWL)
            + " FROM source_runs r JOIN sources s USING (source_id) WHERE r.run_id = %s ORDER BY s.name",
            (run_id,),
        )
        return [dict(row) for row in cur.fetchall()]


def summarise_sources(db_url: str, run_id: int) -> list[dict]:
    """Add what processing made of each source's pages (new, revised, duplicates, no text) to source_runs."""
    with store.connect(db_url) as conn, conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
        cur.execute(
            """
            WITH run AS (SELECT started_at FROM pipeline_runs WHERE run_id = %(run)s),
            -- Articles this run's pages led to, credited to the article's own source (a page announced by
            -- two sources is stored once).
            touched AS (
                SELECT DISTINCT a.article_id, a.source_id, a.cluster_id, a.first_seen_at
                FROM raw_pages p
                JOIN articles a ON a.url = p.url OR a.canonical_url = p.url OR a.canonical_url = p.final_url
                WHERE p.run_id = %(run)s
            ),
            outcome AS (
                SELECT t.source_id,
                       count(*) FILTER (WHERE t.first_seen_at >= run.started_at) AS articles_new,
                       count(*) FILTER (WHERE t.first_seen_at < run.started_at AND EXISTS (
                           SELECT 1 FROM article_versions v
                           WHERE v.article_id = t.article_id AND v.replaced_at >= run.started_at)) AS articles_revised,
                       count(*) FILTER (WHERE t.first_seen_at >= run.started_at
                                          AND t.cluster_id <> t.article_id) AS duplicates
                FROM touched t CROSS JOIN run
                GROUP BY t.source_id
            ),
            no_text AS (
                SELECT source_id, count(*) AS extract_failed FROM crawl_log
                WHERE run_id = %(run)s AND request_kind = 'extract' AND outcome = %(no_text)s
                GROUP BY source_id
            )
            UPDATE source_runs r SET
                articles_new = COALESCE(o.articles_new, 0),
                articles_revised = COALESCE(o.articles_revised, 0),
                duplicates = COALESCE(o.duplicates, 0),
                extract_failed = COALESCE(n.extract_failed, 0),
                summarised_at = now()
            FROM source_runs r2
            LEFT JOIN outcome o ON o.source_id = r2.source_id
            LEFT JOIN no_text n ON n.source_id = r2.source_id
            WHERE r.run_id = %(run)s AND r2.run_id = r.run_id AND r2.source_id = r.source_id
            """,
            {"run": run_id, "no_text": Outcome.EXTRACT_FAILED},
        )
        return _source_rows(conn, run_id)


def _source_rows(conn: store.Connection, run_id: int) -> list[dict]:
    """Return the run's source_runs rows with source names, by name."""
    return fetch(
        conn,
        "SELECT s.name AS source, r.* FROM source_runs r JOIN sources s USING (source_id) "
        "WHERE r.run_id = %s ORDER BY s.name",
        (run_id,),
    )


def shard_stats(db_url: str, run_id: int, shard: int, shards: int) -> list[dict]:
    """The run's source_runs rows (after summarise_sources) of the sources of one crawl shard, by name."""
    with store.connect(db_url) as conn:
        rows = fetch(
            conn,
            "SELECT s.name AS source, s.url AS source_url, r.* FROM source_runs r JOIN sources s USING (source_id) "
            "WHERE r.run_id = %s ORDER BY s.name",
            (run_id,),
        )
    return [row for row in rows if shard_of(row.pop("source_url"), shards) == shard]


def shard_summary_line(shard: int, shards: int, rows: list[dict]) -> str:
    """One line per crawl shard for the mapped summary task's name: what processing made of its sources."""
    keys = ("pages_fetched", "articles_new", "articles_revised", "duplicates")
    total = {key: sum(r[key] for r in rows) for key in keys}
    return clip(
        f"shard {shard + 1}/{shards}: {len(rows)} sources, {total['pages_fetched']} fetched, "
        f"{total['articles_new']} new, {total['articles_revised']} revised, {total['duplicates']} duplicates, "
        f"{sum(failed_count(r) for r in rows)} failed",
        LABEL_LIMIT,
    )


def failed_count(row: dict) -> int:
    """Everything that went wrong for a source in a run: its feed, article fetches and pages without text."""
    return int(row["status"] == "failed") + row["pages_failed"] + row["extract_failed"]


def source_line(row: dict) -> str:
    """One line per source for the mapped summary task's name and log."""
    if row["status"] == "failed":
        tail = f"feed FAILED ({row['failure_streak']} in a row): {row['error'] or 'unknown error'}"
        return clip(f"{row['source']}: {tail}", LABEL_LIMIT)
    return clip(
        f"{row['source']}: {row['pages_fetched']} fetched, {row['articles_new']} new, "
        f"{row['articles_revised']} revised, {row['duplicates']} duplicates, {failed_count(row)} failed, "
        f"skipped {row['robots_disallowed']} by robots, {row['feeds_not_modified']} by conditional GET",
        LABEL_LIMIT,
    )


# --------------------------------------------------------------------------- run summary


def run_summary(db_url: str, run_id: int, failed_tasks: list[str] | None = None) -> dict:
    """Summarise a finished run: headline counts, per-source rows, a note for the UI, an Asset event extra."""
    with store.connect(db_url) as conn:
        found = fetch(conn, "SELECT * FROM pipeline_runs WHERE run_id = %s", (run_id,))
        if not found:
            raise ValueError(f"pipeline run {run_id} does not exist")
        sources = _source_rows(conn, run_id)
    run = found[0]
    summary = {key: run[key] for key in ("run_key", "status", "started_at", "finished_at", "sources_total")}
    summary = {"run_id": run_id, **summary, **run_counters.summary(run), "errors": run_counters.errors(run)}
    summary |= {"failed_tasks": list(failed_tasks or []), "sources": sources}
    summary["note"] = run_note(summary)
    summary["asset_extra"] = {key: summary[key] for key in ASSET_EXTRA}
    return summary


def run_note(summary: dict) -> str:
    """The run summary as Markdown for the DAG run's note, at most NOTE_LIMIT characters."""
    head = [
        f"**newsdedup run {summary['run_id']}: {summary['status']}** · {summary['sources_total']} sources, "
        f"{summary['pages_fetched']} pages fetched",
        "",
        f"- stories created: **{summary['stories_created']}**",
        f"- copies collapsed: **{summary['copies_collapsed']}**",
        f"- segments removed: **{summary['segments_removed']}**",
        f"- articles new / revised: **{summary['articles_new']}** / **{summary['articles_revised']}**",
        f"- errors: **{summary['errors']}**",
    ]
    if summary["failed_tasks"]:
        head.append(f"- failed tasks: {', '.join(summary['failed_tasks'])}")
    table = ["", "| source | fetched | new | rev | dup | failed | robots | 304 |", "|---|--:|--:|--:|--:|--:|--:|--:|"]
    rows = [
        f"| {r['source']} | {r['pages_fetched']} | {r['articles_new']} | {r['articles_revised']} | {r['duplicates']} "
        f"| {failed_count(r)} | {r['robots_disallowed']} | {r['feeds_not_modified']} |"
        for r in sorted(summary["sources"], key=lambda r: (-failed_count(r), r["source"]))
    ]
    note = "\n".join(head)
    if not rows:
        return clip(note, NOTE_LIMIT)
    more = "\n…and {} more sources: see the newsdedup dashboard"
    for shown in range(len(rows), -1, -1):
        candidate = "\n".join(head + table + rows[:shown])
        if shown < len(rows):
            candidate += more.format(len(rows) - shown)
        if len(candidate) <= NOTE_LIMIT:
            return candidate
    return clip(note, NOTE_LIMIT)
