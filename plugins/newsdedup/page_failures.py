"""Pages that keep yielding no text (table page_failures): their failure streaks, and the URLs given up."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from newsdedup.outcomes import Outcome
from newsdedup.store import Connection


def given_up_urls(conn: Connection, urls: Sequence[str]) -> dict[str, datetime]:
    """Return which of these URLs are given up and not due for a retry, with their last failure time."""
    if not urls:
        return {}
    with conn.cursor() as cur:
        cur.execute(
            "SELECT url, last_failed_at FROM page_failures WHERE url = ANY(%s) "
            "AND given_up_at IS NOT NULL AND (retry_at IS NULL OR retry_at > now())",
            (list(urls),),
        )
        return dict(cur.fetchall())


# Run after a run's pages are processed; each statement can run again for the same run without effect.
_SETTLE_FAILURES = (
    # A page that yielded an article this run ends its streak (a given-up one is thereby recovered).
    "DELETE FROM page_failures WHERE url IN (SELECT p.url FROM raw_pages p WHERE p.run_id = %(run)s "
    "AND p.processed_at IS NOT NULL AND NOT EXISTS (SELECT 1 FROM crawl_log c WHERE c.run_id = %(run)s "
    "AND c.request_kind = 'extract' AND c.url = p.url))",
    # One more failed run per URL (once per run, however often this runs).
    "INSERT INTO page_failures AS f (url, source_id, last_run_id, error_class, error_message) "
    "SELECT DISTINCT ON (url) url, source_id, run_id, error_class, error_message FROM crawl_log "
    "WHERE run_id = %(run)s AND request_kind = 'extract' ORDER BY url, crawl_id DESC "
    "ON CONFLICT (url) DO UPDATE SET failures = f.failures + 1, last_failed_at = now(), "
    "source_id = EXCLUDED.source_id, last_run_id = EXCLUDED.last_run_id, error_class = EXCLUDED.error_class, "
    "error_message = EXCLUDED.error_message WHERE f.last_run_id IS DISTINCT FROM EXCLUDED.last_run_id",
    # Give up (again, for a retry that failed): given_up_at keeps the first time.
    "UPDATE page_failures SET given_up_at = COALESCE(given_up_at, now()), "
    "retry_at = CASE WHEN %(days)s > 0 THEN now() + make_interval(days => %(days)s) END "
    "WHERE last_run_id = %(run)s AND failures >= %(after)s AND (given_up_at IS NULL OR retry_at <= now())",
)
_MARK_GIVEN_UP = (
    "UPDATE crawl_log c SET outcome = %(given_up)s, error_message = left(coalesce(c.error_message, '') || "
    "'; given up after ' || f.failures || ' runs without text', 2000) FROM page_failures f "
    "WHERE c.run_id = %(run)s AND c.request_kind = 'extract' AND c.outcome = %(no_text)s "
    "AND f.url = c.url AND f.last_run_id = %(run)s AND f.given_up_at IS NOT NULL"
)


def settle(conn: Connection, run_id: int, give_up_after: int, retry_days: int) -> int:
    """Update the failure streaks with a processed run; its failures of given-up URLs become `given_up`.

    Return how many of the run's extraction failures were of given-up URLs: they are not counted as
    failures of the run.
    """
    params = {
        "run": run_id, "after": give_up_after, "days": retry_days,
        "no_text": Outcome.EXTRACT_FAILED, "given_up": Outcome.GIVEN_UP,
    }
    with conn.cursor() as cur:
        for statement in _SETTLE_FAILURES:
            cur.execute(statement, params)
        cur.execute(_MARK_GIVEN_UP, params)
        given_up = cur.rowcount
        cur.execute(
            "UPDATE pipeline_runs SET extract_failed = extract_failed - %s WHERE run_id = %s", (given_up, run_id)
        )
    return given_up
