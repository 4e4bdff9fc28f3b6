"""What the newsdedup dashboard shows: totals, duplicate rates, story sizes, latest stories, errors, runs, sources.

Plain psycopg2, JSON-safe rows: the Airflow UI plugin (plugins/newsdedup_dashboard.py) renders them.
"""

from __future__ import annotations

from newsdedup import run_counters, store
from newsdedup.jsonrows import fetch, jsonable
from newsdedup.outcomes import SUCCEEDED
from newsdedup.store import Connection

_HEADLINE = ", ".join(c.name for c in run_counters.RUN_COUNTERS if c.summary)  # the run summary's counters


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


def totals(conn: Connection) -> dict:
    """Headline numbers: articles, stories, copies collapsed, duplicate rate, sources, last run."""
    (row,) = fetch(
        conn,
        "SELECT (SELECT count(*) FROM articles) AS articles, (SELECT count(*) FROM story_clusters) AS stories, "
        "(SELECT count(*) FROM sources WHERE enabled) AS sources, "
        "(SELECT count(*) FROM crawl_log WHERE outcome <> ALL(%s) "
        "   AND attempted_at > now() - interval '1 day') AS errors_24h",
        (SUCCEEDED,),
    )
    row["copies"] = row["articles"] - row["stories"]
    row["duplicate_rate"] = round(row["copies"] / row["articles"], 4) if row["articles"] else 0.0
    last = store.last_run(conn)
    row["last_run"] = jsonable(last) if last else None
    return row


def duplicate_rate_series(conn: Connection, days: int = 14) -> dict:
    """Share of each source's new articles that joined a story already stored, per hour or day.

    A story's cluster_id is the id of its first stored article: any other article in it arrived as a copy.
    """
    (span,) = fetch(
        conn,
        "SELECT CASE WHEN min(first_seen_at) < now() - interval '2 days' THEN 'day' ELSE 'hour' END AS bucket "
        "FROM articles WHERE first_seen_at >= now() - make_interval(days => %s)",
        (days,),
    )
    bucket = span["bucket"]
    rows = fetch(
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
    return fetch(
        conn,
        "SELECT least(size, %s) AS size, count(*) AS stories FROM story_clusters GROUP BY 1 ORDER BY 1",
        (cap,),
    )


def latest_stories(conn: Connection, limit: int = 10) -> list[dict]:
    """The most recently updated stories that have copies, each with its canonical article and its copies."""
    stories = fetch(
        conn,
        "SELECT c.cluster_id, c.size, c.last_seen_at, a.article_id, a.title, a.url, a.published_at, "
        "s.name AS source FROM story_clusters c JOIN articles a ON a.article_id = c.canonical_article_id "
        "LEFT JOIN sources s ON s.source_id = a.source_id "
        "WHERE c.size > 1 ORDER BY c.last_seen_at DESC, c.size DESC, c.cluster_id DESC LIMIT %s",
        (limit,),
    )
    if not stories:
        return []
    copies = fetch(
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
    return fetch(
        conn,
        "SELECT c.attempted_at, s.name AS source, c.request_kind, c.url, c.outcome, c.http_status, "
        "c.error_class, left(c.error_message, 300) AS error_message "
        "FROM crawl_log c LEFT JOIN sources s USING (source_id) "
        "WHERE c.outcome <> ALL(%s) ORDER BY c.crawl_id DESC LIMIT %s",
        (SUCCEEDED, limit),
    )


def recent_runs(conn: Connection, limit: int = 24) -> list[dict]:
    """The latest runs with their headline counts, newest first."""
    return fetch(
        conn,
        f"SELECT run_id, run_key, trigger, status, started_at, finished_at, sources_total, {_HEADLINE}, "  # noqa: S608
        f"{run_counters.ERRORS_SQL} AS errors FROM pipeline_runs ORDER BY run_id DESC LIMIT %s",
        (limit,),
    )


def source_health(conn: Connection) -> list[dict]:
    """Each enabled source's articles, duplicate share, latest run result and polling schedule."""
    return fetch(
        conn,
        """
        SELECT s.name AS source, s.last_crawled_at,
               (SELECT count(*) FROM articles a WHERE a.source_id = s.source_id) AS articles,
               (SELECT count(*) FROM articles a
                 WHERE a.source_id = s.source_id AND a.cluster_id <> a.article_id) AS duplicates,
               r.status AS last_status, r.failure_streak, r.error AS last_error,
               s.next_due_at, s.poll_interval_seconds, s.poll_reason
        FROM sources s
        LEFT JOIN LATERAL (SELECT status, failure_streak, error FROM source_runs r
                           WHERE r.source_id = s.source_id ORDER BY run_id DESC LIMIT 1) r ON true
        WHERE s.enabled ORDER BY s.name
        """,
    )
