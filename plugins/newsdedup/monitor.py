"""Run monitoring: per-source results, run summaries, data-quality SQL, retention, and dashboard queries.

Plain Python and psycopg2: the DAGs and the Airflow UI plugin call these, nothing here imports Airflow.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

import psycopg2.extras

from newsdedup import settings, store
from newsdedup.store import Connection

log = logging.getLogger(__name__)

NOTE_LIMIT = 1000  # Airflow's dag_run_note.content is varchar(1000)
LABEL_LIMIT = 250  # task_instance.rendered_map_index is varchar(250)
FUTURE_TOLERANCE = "1 hour"  # publication times further ahead than this are data errors, not clock skew
CRAWL_COUNTS = ("urls_discovered", "urls_skipped_known", "pages_fetched", "pages_failed", "feeds_not_modified")
MAINTAINED_TABLES = (
    "articles",
    "raw_pages",
    "crawl_log",
    "story_clusters",
    "duplicate_decisions",
    "lsh_bands",
    "article_signatures",
    "source_runs",
    "pipeline_runs",
)


def fail_after_runs() -> int:
    """Consecutive failed runs after which a source's task fails (NEWSDEDUP_FAIL_AFTER_RUNS)."""
    return settings.load().fail_after_runs


# --------------------------------------------------------------------------- per-source results


def record_crawl(db_url: str, run_id: int, report: dict) -> dict:
    """Record one source's crawl report in source_runs; return it with its robots count and failure streak."""
    name = report["source"]
    failed = bool(report.get("failed"))
    status = "failed" if failed else "not_modified" if report.get("feeds_not_modified") else "ok"
    error = (str(report.get("error") or "") or None) if failed else None
    row = {"source": name, "status": status, "error": error, "failure_streak": 0, "robots_disallowed": 0}
    row |= {key: int(report.get(key, 0) or 0) for key in CRAWL_COUNTS}
    with store.connect(db_url) as conn, conn.cursor() as cur:
        cur.execute("SELECT source_id FROM sources WHERE name = %s", (name,))
        found = cur.fetchone()
        if found is None:
            log.warning("source %s is not in the sources table: crawl not recorded", name)
            return row
        source_id = found[0]
        cur.execute(
            "SELECT count(*) FROM crawl_log WHERE run_id = %s AND source_id = %s AND outcome = 'robots_disallowed'",
            (run_id, source_id),
        )
        row["robots_disallowed"] = cur.fetchone()[0]
        cur.execute(
            "INSERT INTO source_runs (run_id, source_id, status, error, urls_discovered, urls_skipped_known, "
            "pages_fetched, pages_failed, feeds_not_modified, robots_disallowed) "
            "VALUES (%(run_id)s, %(source_id)s, %(status)s, %(error)s, %(urls_discovered)s, %(urls_skipped_known)s, "
            "%(pages_fetched)s, %(pages_failed)s, %(feeds_not_modified)s, %(robots_disallowed)s) "
            "ON CONFLICT (run_id, source_id) DO UPDATE SET status = EXCLUDED.status, error = EXCLUDED.error, "
            "urls_discovered = EXCLUDED.urls_discovered, urls_skipped_known = EXCLUDED.urls_skipped_known, "
            "pages_fetched = EXCLUDED.pages_fetched, pages_failed = EXCLUDED.pages_failed, "
            "feeds_not_modified = EXCLUDED.feeds_not_modified, robots_disallowed = EXCLUDED.robots_disallowed, "
            "crawled_at = now()",
            row | {"run_id": run_id, "source_id": source_id},
        )
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
    return _clip(label, LABEL_LIMIT)


def crawl_reports(db_url: str, run_id: int) -> list[dict]:
    """Return the run's recorded crawl reports, shaped like pipeline.crawl_source's return value."""
    with store.connect(db_url) as conn, conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
        cur.execute(
            "SELECT s.name AS source, r.status = 'failed' AS failed, r.error, r.urls_discovered, "
            "r.urls_skipped_known, r.pages_fetched, r.pages_failed, r.feeds_not_modified "
            "FROM source_runs r JOIN sources s USING (source_id) WHERE r.run_id = %s ORDER BY s.name",
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
                WHERE run_id = %(run)s AND request_kind = 'extract' AND outcome = 'extract_failed'
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
            {"run": run_id},
        )
        return _source_rows(cur, run_id)


def _source_rows(cur: psycopg2.extensions.cursor, run_id: int) -> list[dict]:
    """Return the run's source_runs rows with source names, by name."""
    cur.execute(
        "SELECT s.name AS source, r.* FROM source_runs r JOIN sources s USING (source_id) "
        "WHERE r.run_id = %s ORDER BY s.name",
        (run_id,),
    )
    return [_jsonable(dict(row)) for row in cur.fetchall()]


def source_stats(db_url: str, run_id: int, source: str) -> dict | None:
    """Return one source's row of a run (after summarise_sources), or None when it was not recorded."""
    with store.connect(db_url) as conn, conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
        rows = _source_rows(cur, run_id)
    return next((row for row in rows if row["source"] == source), None)


def failed_count(row: dict) -> int:
    """Everything that went wrong for a source in a run: its feed, article fetches and pages without text."""
    return int(row["status"] == "failed") + row["pages_failed"] + row["extract_failed"]


def source_line(row: dict) -> str:
    """One line per source for the mapped summary task's name and log."""
    if row["status"] == "failed":
        tail = f"feed FAILED ({row['failure_streak']} in a row): {row['error'] or 'unknown error'}"
        return _clip(f"{row['source']}: {tail}", LABEL_LIMIT)
    return _clip(
        f"{row['source']}: {row['pages_fetched']} fetched, {row['articles_new']} new, "
        f"{row['articles_revised']} revised, {row['duplicates']} duplicates, {failed_count(row)} failed, "
        f"skipped {row['robots_disallowed']} by robots, {row['feeds_not_modified']} by conditional GET",
        LABEL_LIMIT,
    )


# --------------------------------------------------------------------------- run summary


def run_summary(db_url: str, run_id: int, failed_tasks: list[str] | None = None) -> dict:
    """Summarise a finished run: headline counts, per-source rows, a note for the UI, an Asset event extra."""
    with store.connect(db_url) as conn, conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
        cur.execute("SELECT * FROM pipeline_runs WHERE run_id = %s", (run_id,))
        run = cur.fetchone()
        if run is None:
            raise ValueError(f"pipeline run {run_id} does not exist")
        sources = _source_rows(cur, run_id)
    run = _jsonable(dict(run))
    errors = run["sources_failed"] + run["pages_failed"] + run["extract_failed"]
    summary = {
        "run_id": run_id,
        "run_key": run["run_key"],
        "status": run["status"],
        "started_at": run["started_at"],
        "finished_at": run["finished_at"],
        "sources_total": run["sources_total"],
        "sources_failed": run["sources_failed"],
        "pages_fetched": run["pages_fetched"],
        "articles_new": run["articles_new"],
        "articles_revised": run["articles_updated"],
        "stories_created": run["stories_created"],
        "copies_collapsed": run["duplicates_found"],
        "segments_removed": run["segments_removed"],
        "errors": errors,
        "failed_tasks": list(failed_tasks or []),
        "sources": sources,
    }
    summary["note"] = run_note(summary)
    summary["asset_extra"] = {
        key: summary[key]
        for key in (
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
    }
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
        return _clip(note, NOTE_LIMIT)
    more = "\n…and {} more sources: see the newsdedup dashboard"
    for shown in range(len(rows), -1, -1):
        candidate = "\n".join(head + table + rows[:shown])
        if shown < len(rows):
            candidate += more.format(len(rows) - shown)
        if len(candidate) <= NOTE_LIMIT:
            return candidate
    return _clip(note, NOTE_LIMIT)


def task_failure_line(dag_id: str, task_label: str, try_number: int | None, exc: BaseException | str | None) -> str:
    """One line saying which task failed and why, for failure callbacks."""
    reason = exc if isinstance(exc, str) else f"{type(exc).__name__}: {exc}" if exc else "unknown reason"
    first = str(reason).strip().splitlines()[0] if str(reason).strip() else "unknown reason"
    attempt = f" (try {try_number})" if try_number else ""
    return _clip(f"newsdedup: {dag_id}.{task_label} failed{attempt}: {first}", 500)


# --------------------------------------------------------------------------- data quality

# The SQL check operators in news_ingest look at the articles the current DAG run fetched. RUN_KEY_SQL is a
# Jinja expression rendering the DAG run's id as a SQL string literal (quotes doubled).
RUN_KEY_SQL = "'{{ run_id | replace(\"'\", \"''\") }}'"


def run_scope(run_key_sql: str = RUN_KEY_SQL) -> str:
    """WHERE clause selecting the articles fetched by a run (partition_clause of the check operators)."""
    return f"fetched_at >= (SELECT started_at FROM pipeline_runs WHERE run_key = {run_key_sql})"  # noqa: S608


ARTICLE_COLUMN_CHECKS = {"cluster_id": {"null_check": {"equal_to": 0}}}  # every article is in a story
ARTICLE_TABLE_CHECKS = {  # aggregates, so a run without articles yields one row and passes
    "text_not_empty": {"check_statement": "count(*) FILTER (WHERE word_count = 0 OR btrim(text) = '') = 0"},
    "published_not_in_future": {
        "check_statement": f"count(*) FILTER (WHERE published_at > now() + interval '{FUTURE_TOLERANCE}') = 0"
    },
}


def decisions_check_sql(run_key_sql: str = RUN_KEY_SQL) -> str:
    """SQLCheckOperator query: one row of booleans, true when the run left no orphan or inconsistent decisions."""
    # run_key_sql is RUN_KEY_SQL (a constant Jinja expression) or a literal quoted by psycopg2
    start = f"(SELECT started_at FROM pipeline_runs WHERE run_key = {run_key_sql})"  # noqa: S608
    return f"""
SELECT
  NOT EXISTS (SELECT 1 FROM articles a
              WHERE a.fetched_at >= {start}
                AND NOT EXISTS (SELECT 1 FROM duplicate_decisions d WHERE d.article_id = a.article_id))
    AS every_article_decided,
  NOT EXISTS (SELECT 1 FROM duplicate_decisions d JOIN articles a USING (article_id)
              WHERE d.decided_at >= {start} AND a.cluster_id IS DISTINCT FROM d.cluster_id)
    AS decisions_match_articles,
  NOT EXISTS (SELECT 1 FROM duplicate_decisions d
              WHERE d.decided_at >= {start} AND d.method <> 'new' AND d.matched_article_id IS NULL)
    AS matches_still_stored,
  NOT EXISTS (SELECT 1 FROM story_clusters c
              WHERE c.last_seen_at >= {start}
                AND NOT EXISTS (SELECT 1 FROM articles a WHERE a.cluster_id = c.cluster_id))
    AS no_empty_stories
"""  # noqa: S608


def quality_problems(db_url: str, run_key: str) -> dict[str, bool]:
    """Run the news_ingest data-quality checks for one run in plain SQL; return each check's pass/fail."""
    with store.connect(db_url) as conn, conn.cursor() as cur:
        literal = cur.mogrify("%s", (run_key,)).decode()
        scope = run_scope(literal)
        results: dict[str, bool] = {}
        for name, check in ARTICLE_TABLE_CHECKS.items():
            cur.execute(f"SELECT {check['check_statement']} FROM articles WHERE {scope}")  # noqa: S608
            results[name] = bool(cur.fetchone()[0])
        cur.execute(f"SELECT count(*) FILTER (WHERE cluster_id IS NULL) = 0 FROM articles WHERE {scope}")  # noqa: S608
        results["every_article_in_a_story"] = bool(cur.fetchone()[0])
        cur.execute(decisions_check_sql(literal))
        results |= {col.name: bool(value) for col, value in zip(cur.description, cur.fetchone(), strict=True)}
    return results


# --------------------------------------------------------------------------- maintenance


@dataclass(frozen=True)
class Retention:
    """How long processed raw pages and crawl log rows are kept, and when a source counts as stale."""

    raw_pages_days: int = settings.DEFAULTS.retain_raw_pages_days
    crawl_log_days: int = settings.DEFAULTS.retain_crawl_log_days
    stale_hours: int = settings.DEFAULTS.stale_hours

    @classmethod
    def from_env(cls) -> Retention:
        """NEWSDEDUP_RETAIN_RAW_PAGES_DAYS, _RETAIN_CRAWL_LOG_DAYS and _STALE_HOURS, bounded by newsdedup.settings."""
        env = settings.load()
        return cls(
            raw_pages_days=env.retain_raw_pages_days,
            crawl_log_days=env.retain_crawl_log_days,
            stale_hours=env.stale_hours,
        )


def purge_raw_pages(db_url: str, days: int, batch: int = 5000) -> int:
    """Delete raw pages processed more than `days` ago, in batches; unprocessed pages are kept."""
    return _purge(
        db_url,
        "DELETE FROM raw_pages WHERE raw_page_id IN (SELECT raw_page_id FROM raw_pages "
        "WHERE processed_at < now() - make_interval(days => %s) LIMIT %s)",
        days,
        batch,
    )


def purge_crawl_log(db_url: str, days: int, batch: int = 20000) -> int:
    """Delete crawl_log rows older than `days`, in batches."""
    return _purge(
        db_url,
        "DELETE FROM crawl_log WHERE crawl_id IN (SELECT crawl_id FROM crawl_log "
        "WHERE attempted_at < now() - make_interval(days => %s) LIMIT %s)",
        days,
        batch,
    )


def _purge(db_url: str, statement: str, days: int, batch: int) -> int:
    """Run a batched DELETE until it deletes nothing, one short transaction per batch."""
    if days < 0:  # `older than now() + N days` would be every row
        raise ValueError(f"a retention of {days} days is negative: it would delete every row")
    total = 0
    with store.connect(db_url) as conn:
        while True:
            with conn.cursor() as cur:
                cur.execute(statement, (days, batch))
                deleted = cur.rowcount
            conn.commit()
            total += deleted
            if deleted < batch:
                return total


def analyze(db_url: str, tables: tuple[str, ...] = MAINTAINED_TABLES) -> list[str]:
    """Refresh the planner statistics of newsdedup's tables."""
    with store.connect(db_url) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() AND tablename = ANY(%s)",
            (list(tables),),
        )
        present = sorted(row[0] for row in cur.fetchall())
        for table in present:
            cur.execute(f'ANALYZE "{table}"')  # names come from pg_tables, filtered by our fixed list
    return present


def stale_sources(db_url: str, hours: int) -> list[dict]:
    """Enabled sources configured over `hours` ago whose feed was not read successfully since, with their last error."""
    with store.connect(db_url) as conn, conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
        cur.execute(
            """
            SELECT s.name AS source, s.url, last_ok.at AS last_success,
                   last_err.outcome AS last_outcome, last_err.error_message AS last_error,
                   COALESCE(streak.failure_streak, 0) AS failure_streak
            FROM sources s
            LEFT JOIN LATERAL (
                SELECT greatest(s.last_crawled_at,
                    (SELECT max(attempted_at) FROM crawl_log c WHERE c.source_id = s.source_id
                       AND c.request_kind = 'feed' AND c.outcome IN ('ok', 'not_modified')),
                    (SELECT max(crawled_at) FROM source_runs r WHERE r.source_id = s.source_id
                       AND r.status <> 'failed')) AS at
            ) last_ok ON true
            LEFT JOIN LATERAL (
                SELECT outcome, error_message FROM crawl_log c
                WHERE c.source_id = s.source_id AND c.request_kind = 'feed' AND c.outcome NOT IN ('ok', 'not_modified')
                ORDER BY crawl_id DESC LIMIT 1
            ) last_err ON true
            LEFT JOIN LATERAL (
                SELECT failure_streak FROM source_runs r WHERE r.source_id = s.source_id ORDER BY run_id DESC LIMIT 1
            ) streak ON true
            WHERE s.enabled AND s.created_at < now() - make_interval(hours => %(hours)s)
              AND (last_ok.at IS NULL OR last_ok.at < now() - make_interval(hours => %(hours)s))
            ORDER BY s.name
            """,
            {"hours": hours},
        )
        return [_jsonable(dict(row)) for row in cur.fetchall()]


def apply_retention(db_url: str, retention: Retention) -> dict[str, int]:
    """Delete the processed raw pages and the crawl_log rows older than the retention allows."""
    return {
        "raw_pages_deleted": purge_raw_pages(db_url, retention.raw_pages_days),
        "crawl_log_deleted": purge_crawl_log(db_url, retention.crawl_log_days),
    }


def stale_line(source: dict) -> str:
    """One line about a stale source (a row of stale_sources) for logs and the CLI."""
    return (
        f"{source['source']}: last success {source['last_success'] or 'never'}, {source['failure_streak']} failed "
        f"runs in a row, last error {source['last_outcome']}: {source['last_error']}"
    )


def maintenance(db_url: str, retention: Retention | None = None) -> dict:
    """Retention, ANALYZE and the stale-source report: `newsdedup maintain`; news_maintenance runs them as tasks."""
    retention = retention or Retention.from_env()
    return apply_retention(db_url, retention) | {
        "analyzed": analyze(db_url),
        "stale_sources": stale_sources(db_url, retention.stale_hours),
    }


# --------------------------------------------------------------------------- dashboard queries


def dashboard(db_url: str, days: int = 14) -> dict:
    """Everything the newsdedup dashboard shows, as JSON-safe data."""
    with store.connect(db_url) as conn:
        return {
            "totals": totals(conn),
            "duplicate_rate": duplicate_rate_series(conn, days),
            "cluster_sizes": cluster_sizes(conn),
            "latest_stories": latest_stories(conn),
            "recent_errors": recent_errors(conn),
            "recent_runs": recent_runs(conn),
            "sources": source_health(conn),
        }


def _fetch(conn: Connection, sql: str, params: tuple | dict = ()) -> list[dict]:
    """Run a query, return JSON-safe dict rows."""
    with conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
        cur.execute(sql, params)
        return [_jsonable(dict(row)) for row in cur.fetchall()]


def totals(conn: Connection) -> dict:
    """Headline numbers: articles, stories, copies collapsed, duplicate rate, sources, last run."""
    (row,) = _fetch(
        conn,
        "SELECT (SELECT count(*) FROM articles) AS articles, (SELECT count(*) FROM story_clusters) AS stories, "
        "(SELECT count(*) FROM sources WHERE enabled) AS sources, "
        "(SELECT count(*) FROM crawl_log WHERE outcome NOT IN ('ok', 'not_modified') "
        "   AND attempted_at > now() - interval '1 day') AS errors_24h",
    )
    row["copies"] = row["articles"] - row["stories"]
    row["duplicate_rate"] = round(row["copies"] / row["articles"], 4) if row["articles"] else 0.0
    runs = _fetch(conn, "SELECT * FROM pipeline_runs ORDER BY run_id DESC LIMIT 1")
    row["last_run"] = runs[0] if runs else None
    return row


def duplicate_rate_series(conn: Connection, days: int = 14) -> dict:
    """Share of each source's new articles that joined a story already stored, per hour or day.

    A story's cluster_id is the id of its first stored article: any other article in it arrived as a copy.
    """
    (span,) = _fetch(
        conn,
        "SELECT CASE WHEN min(first_seen_at) < now() - interval '2 days' THEN 'day' ELSE 'hour' END AS bucket "
        "FROM articles WHERE first_seen_at >= now() - make_interval(days => %s)",
        (days,),
    )
    bucket = span["bucket"]
    rows = _fetch(
        conn,
        "SELECT s.name AS source, date_trunc(%s, a.first_seen_at) AS bucket, count(*) AS articles, "
        "count(*) FILTER (WHERE a.cluster_id <> a.article_id) AS duplicates "
        "FROM articles a JOIN sources s USING (source_id) "
        "WHERE a.first_seen_at >= now() - make_interval(days => %s) GROUP BY 1, 2 ORDER BY 2, 1",
        (bucket, days),
    )
    series: dict[str, list[dict]] = {}
    for row in rows:
        series.setdefault(row["source"], []).append(
            {
                "t": row["bucket"],
                "articles": row["articles"],
                "duplicates": row["duplicates"],
                "rate": round(row["duplicates"] / row["articles"], 4),
            }
        )
    return {"bucket": bucket, "series": series}


def cluster_sizes(conn: Connection, cap: int = 6) -> list[dict]:
    """How many stories have 1, 2, ... articles (the last bucket is `cap` and more)."""
    return _fetch(
        conn,
        "SELECT least(size, %s) AS size, count(*) AS stories FROM story_clusters GROUP BY 1 ORDER BY 1",
        (cap,),
    )


def latest_stories(conn: Connection, limit: int = 10) -> list[dict]:
    """The most recently updated stories that have copies, each with its canonical article and its copies."""
    stories = _fetch(
        conn,
        "SELECT c.cluster_id, c.size, c.last_seen_at, a.article_id, a.title, a.url, a.published_at, "
        "s.name AS source FROM story_clusters c JOIN articles a ON a.article_id = c.canonical_article_id "
        "LEFT JOIN sources s ON s.source_id = a.source_id "
        "WHERE c.size > 1 ORDER BY c.last_seen_at DESC, c.size DESC, c.cluster_id DESC LIMIT %s",
        (limit,),
    )
    if not stories:
        return []
    copies = _fetch(
        conn,
        "SELECT a.cluster_id, a.article_id, a.title, a.url, s.name AS source, d.method, d.similarity "
        "FROM articles a LEFT JOIN sources s ON s.source_id = a.source_id "
        "LEFT JOIN duplicate_decisions d ON d.article_id = a.article_id "
        "WHERE a.cluster_id = ANY(%s) ORDER BY a.cluster_id, a.article_id",
        ([story["cluster_id"] for story in stories],),
    )
    for story in stories:
        story["copies"] = [
            c for c in copies if c["cluster_id"] == story["cluster_id"] and c["article_id"] != story["article_id"]
        ]
    return stories


def recent_errors(conn: Connection, limit: int = 20) -> list[dict]:
    """The latest failed requests and extractions, newest first."""
    return _fetch(
        conn,
        "SELECT c.attempted_at, s.name AS source, c.request_kind, c.url, c.outcome, c.http_status, "
        "c.error_class, left(c.error_message, 300) AS error_message "
        "FROM crawl_log c LEFT JOIN sources s USING (source_id) "
        "WHERE c.outcome NOT IN ('ok', 'not_modified') ORDER BY c.crawl_id DESC LIMIT %s",
        (limit,),
    )


def recent_runs(conn: Connection, limit: int = 24) -> list[dict]:
    """The latest runs with their headline counts, newest first."""
    return _fetch(
        conn,
        "SELECT run_id, run_key, trigger, status, started_at, finished_at, sources_total, sources_failed, "
        "pages_fetched, articles_new, articles_updated, stories_created, duplicates_found, segments_removed, "
        "sources_failed + pages_failed + extract_failed AS errors "
        "FROM pipeline_runs ORDER BY run_id DESC LIMIT %s",
        (limit,),
    )


def source_health(conn: Connection) -> list[dict]:
    """Each enabled source's articles, duplicate share and latest run result."""
    return _fetch(
        conn,
        """
        SELECT s.name AS source, s.last_crawled_at,
               (SELECT count(*) FROM articles a WHERE a.source_id = s.source_id) AS articles,
               (SELECT count(*) FROM articles a
                 WHERE a.source_id = s.source_id AND a.cluster_id <> a.article_id) AS duplicates,
               r.status AS last_status, r.failure_streak, r.error AS last_error
        FROM sources s
        LEFT JOIN LATERAL (SELECT status, failure_streak, error FROM source_runs r
                           WHERE r.source_id = s.source_id ORDER BY run_id DESC LIMIT 1) r ON true
        WHERE s.enabled ORDER BY s.name
        """,
    )


# --------------------------------------------------------------------------- helpers


def _jsonable(row: dict) -> dict:
    """Make a row JSON-safe: datetimes as ISO strings, decimals as floats."""
    out = {}
    for key, value in row.items():
        if isinstance(value, datetime | date):
            value = value.isoformat()
        elif isinstance(value, Decimal):
            value = float(value)
        out[key] = value
    return out


def _clip(text: str, limit: int) -> str:
    """Cut text to at most `limit` characters, marking the cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"
