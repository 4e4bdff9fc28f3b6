"""Database upkeep: retention of raw pages, crawl_log and dedup candidates, ANALYZE, and the stale-source report.

`newsdedup maintain` runs all of it (maintenance); the news_maintenance DAG runs each part as a task.
"""

from __future__ import annotations

from dataclasses import dataclass

from newsdedup import settings, store
from newsdedup.jsonrows import fetch
from newsdedup.outcomes import SUCCEEDED

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


@dataclass(frozen=True)
class Retention(settings.FromSettings):
    """How long processed raw pages, crawl log rows and dedup candidates are kept; when a source counts as stale."""

    raw_pages_days: int = settings.setting("retain_raw_pages_days")
    crawl_log_days: int = settings.setting("retain_crawl_log_days")
    stale_hours: int = settings.setting("stale_hours")
    candidate_days: int = settings.setting("candidate_days")


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


def purge_candidates(db_url: str, days: int, batch: int = 1000) -> int:
    """Take articles older than `days` (published_at, else fetched_at) out of the LSH band index, in batches.

    Returns how many articles left it. Their signatures, stories and decisions stay; 0 days keeps every one.
    """
    if days == 0:
        return 0
    return _purge(
        db_url,
        "WITH old AS MATERIALIZED (SELECT s.article_id FROM article_signatures s JOIN articles a USING (article_id) "
        "WHERE s.unindexed_at IS NULL AND coalesce(a.published_at, a.fetched_at) < now() - make_interval(days => %s) "
        "LIMIT %s), "
        "bands AS (DELETE FROM lsh_bands b USING old WHERE b.article_id = old.article_id) "
        "UPDATE article_signatures s SET unindexed_at = now() FROM old WHERE s.article_id = old.article_id",
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
    with store.connect(db_url) as conn:
        return fetch(
            conn,
            """
            SELECT s.name AS source, s.url, last_ok.at AS last_success,
                   last_err.outcome AS last_outcome, last_err.error_message AS last_error,
                   COALESCE(streak.failure_streak, 0) AS failure_streak
            FROM sources s
            LEFT JOIN LATERAL (
                SELECT greatest(s.last_crawled_at,
                    (SELECT max(attempted_at) FROM crawl_log c WHERE c.source_id = s.source_id
                       AND c.request_kind = 'feed' AND c.outcome = ANY(%(succeeded)s)),
                    (SELECT max(crawled_at) FROM source_runs r WHERE r.source_id = s.source_id
                       AND r.status <> 'failed')) AS at
            ) last_ok ON true
            LEFT JOIN LATERAL (
                SELECT outcome, error_message FROM crawl_log c
                WHERE c.source_id = s.source_id AND c.request_kind = 'feed' AND c.outcome <> ALL(%(succeeded)s)
                ORDER BY crawl_id DESC LIMIT 1
            ) last_err ON true
            LEFT JOIN LATERAL (
                SELECT failure_streak FROM source_runs r WHERE r.source_id = s.source_id ORDER BY run_id DESC LIMIT 1
            ) streak ON true
            WHERE s.enabled AND s.created_at < now() - make_interval(hours => %(hours)s)
              AND (last_ok.at IS NULL OR last_ok.at < now() - make_interval(hours => %(hours)s))
            ORDER BY s.name
            """,
            {"hours": hours, "succeeded": SUCCEEDED},
        )


def apply_retention(db_url: str, retention: Retention) -> dict[str, int]:
    """Delete the processed raw pages and crawl_log rows, and the band rows of candidates, older than allowed."""
    return {
        "raw_pages_deleted": purge_raw_pages(db_url, retention.raw_pages_days),
        "crawl_log_deleted": purge_crawl_log(db_url, retention.crawl_log_days),
        "candidates_unindexed": purge_candidates(db_url, retention.candidate_days),
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
