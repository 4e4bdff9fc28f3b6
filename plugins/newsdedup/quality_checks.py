"""Data-quality checks on the articles a run loaded: the news_ingest check operators' SQL, and the same in plain SQL."""

from __future__ import annotations

from newsdedup import store

FUTURE_TOLERANCE = "1 hour"  # publication times further ahead than this are data errors, not clock skew

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
