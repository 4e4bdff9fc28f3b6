"""`newsdedup dedup rebuild`: recompute signatures, bands and clusters from stored texts under new params.

Articles are redone in `article_id` order, one batch per transaction, without refetching anything:
the batch's dedup state of any version is removed (rows of every table that has both `article_id` and
`params_version` columns, and what cascades from them), `assign_clusters` clusters the batch again
under the target params, the stories it touched are made true to their members again (size, seen
times, canonical article; emptied ones are dropped), and the progress row in `dedup_rebuilds` moves
past the batch. A kill loses at most the batch in flight: the next run continues after
`last_article_id`, nothing is done twice.

Every batch holds the pipeline's dedup advisory lock (`DEDUP_LOCK`) from its first statement, so the
hourly pipeline waits between batches and never clusters against a half-reset batch. Until the
rebuild ends, articles it has not reached keep their old stories and decisions (their
`params_version` says which); signatures of different versions are never compared. Articles already
of the target version ahead of the rebuild (clustered by the pipeline meanwhile, or by the run a
`restart` starts over) are candidates before they are redone: the stories are expected to come out
the same (tests/test_rebuild.py checks both cases), but a decision may name another copy as the match.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, replace
from datetime import datetime

import psycopg2.extras
from psycopg2 import sql
from psycopg2.extensions import connection as Connection

from newsdedup import store
from newsdedup.config import ConfigError
from newsdedup.dedup_records import Doc, canonical_key
from newsdedup.dedup_store import DEDUP_LOCK, assign_clusters
from newsdedup.minhash import DedupParams

# State learnt across articles, without a params_version: recomputed from scratch by a new rebuild
# (kept, the rebuild would count every article's evidence twice).
LEARNT_STATE = ("common_shingles", "source_boilerplate")

Progress = Callable[[int], None]


@dataclass(frozen=True)
class RebuildReport:
    """What one `rebuild` call did."""

    params_version: str
    resumed: bool
    articles: int  # redone by this call
    batches: int
    seconds: float
    articles_done: int  # by every call of this rebuild
    finished: bool

    @property
    def rate(self) -> float:
        """Articles redone per second by this call."""
        return self.articles / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, object]:
        """Fields plus the rate, for the command line."""
        return {**self.__dict__, "articles_per_second": round(self.rate, 1)}


def params_from_json(text: str | None) -> DedupParams:
    """Default params with the fields of a JSON object replaced, e.g. '{"seed": 2}'."""
    if not text:
        return DedupParams()
    try:
        fields = json.loads(text)
        if not isinstance(fields, dict):
            raise TypeError("not a JSON object")
        return replace(DedupParams(), **fields)
    except (json.JSONDecodeError, TypeError, ValueError) as exc:
        raise ConfigError(f"--params {text!r}: {exc}") from exc


def rebuild(
    db_url: str,
    params: DedupParams | None = None,
    *,
    batch_size: int = 500,
    max_batches: int | None = None,
    restart: bool = False,
    progress: Callable[[int], Progress] | None = None,
) -> RebuildReport:
    """Redo the dedup state of every stored article under `params`, resuming an unfinished rebuild.

    `progress(total)` returns a callback advanced by each batch's size; `max_batches` stops early
    (the rebuild stays resumable). A rebuild under other settings of the same version, or `restart`,
    starts over.
    """
    if batch_size < 1 or (max_batches is not None and max_batches < 1):
        raise ConfigError("the batch size and the number of batches must be positive")
    params = params or DedupParams()
    started = time.monotonic()
    with store.connect(db_url) as conn:
        resumed = _start(conn, params, restart)
        conn.commit()
        advance = progress(_remaining(conn, params.version)) if progress else None
        tables = _versioned_tables(conn)
        conn.commit()
        articles = batches = 0
        while max_batches is None or batches < max_batches:
            done = _redo_batch(conn, params, batch_size, tables)
            conn.commit()
            if not done:
                _finish(conn, params.version)
                conn.commit()
                break
            articles, batches = articles + done, batches + 1
            if advance:
                advance(done)
        with conn.cursor() as cur:
            cur.execute(
                "SELECT articles_done, finished_at IS NOT NULL FROM dedup_rebuilds WHERE params_version = %s",
                (params.version,),
            )
            total, finished = cur.fetchone()
    return RebuildReport(
        params.version, resumed, articles, batches, time.monotonic() - started, total, finished
    )


def _lock(conn: Connection) -> None:
    """Take the pipeline's dedup lock for the current transaction."""
    with conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (DEDUP_LOCK,))


def _start(conn: Connection, params: DedupParams, restart: bool) -> bool:
    """Resume the rebuild row of these exact params, or start one afresh; return whether it resumed."""
    _lock(conn)
    wanted = json.loads(json.dumps(params.to_dict()))  # as jsonb gives it back: tuples become lists
    with conn.cursor() as cur:
        cur.execute("SELECT to_regclass('dedup_rebuilds')")
        if cur.fetchone()[0] is None:
            raise ConfigError("the database has no dedup_rebuilds table: run `newsdedup db migrate` first")
        cur.execute("SELECT params FROM dedup_rebuilds WHERE params_version = %s", (params.version,))
        row = cur.fetchone()
        if row is not None and row[0] == wanted and not restart:
            return True
        cur.execute(
            "INSERT INTO dedup_rebuilds (params_version, params) VALUES (%s, %s) "
            "ON CONFLICT (params_version) DO UPDATE SET params = EXCLUDED.params, last_article_id = 0, "
            "articles_done = 0, batches_done = 0, started_at = now(), updated_at = now(), finished_at = NULL",
            (params.version, json.dumps(wanted)),
        )
        for table in LEARNT_STATE:
            cur.execute("SELECT to_regclass(%s)", (table,))
            if cur.fetchone()[0] is not None:
                cur.execute(sql.SQL("DELETE FROM {}").format(sql.Identifier(table)))
    return False


def _versioned_tables(conn: Connection) -> list[str]:
    """Tables holding per-article dedup state: those with both `article_id` and `params_version`."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT c.table_name FROM information_schema.columns c "
            "JOIN information_schema.tables t USING (table_schema, table_name) "
            "WHERE t.table_type = 'BASE TABLE' AND c.table_schema = current_schema() "
            "AND c.column_name IN ('article_id', 'params_version') "
            "GROUP BY c.table_name HAVING count(*) = 2 ORDER BY c.table_name"
        )
        return [name for (name,) in cur.fetchall()]


def _remaining(conn: Connection, version: str) -> int:
    """Stored articles after the rebuild's position."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT count(*) FROM articles WHERE article_id > "
            "(SELECT last_article_id FROM dedup_rebuilds WHERE params_version = %s)",
            (version,),
        )
        return cur.fetchone()[0]


def _redo_batch(conn: Connection, params: DedupParams, size: int, tables: Collection[str]) -> int:
    """Redo the next batch after the recorded position (caller commits); return its size, 0 at the end."""
    _lock(conn)
    with conn.cursor() as cur:
        cur.execute(
            "SELECT last_article_id FROM dedup_rebuilds WHERE params_version = %s FOR UPDATE", (params.version,)
        )
        (position,) = cur.fetchone()
    docs = _next_docs(conn, position, size)
    if not docs:
        return 0
    ids = [d.id for d in docs]
    old_clusters = _reset(conn, ids, tables)
    decisions = assign_clusters(conn, docs, params)
    _tidy_stories(conn, old_clusters | {d.cluster_id for d in decisions})
    with conn.cursor() as cur:
        cur.execute(
            "UPDATE dedup_rebuilds SET last_article_id = %s, articles_done = articles_done + %s, "
            "batches_done = batches_done + 1, updated_at = now() WHERE params_version = %s",
            (ids[-1], len(ids), params.version),
        )
    return len(ids)


def _next_docs(conn: Connection, after: int, size: int) -> list[Doc]:
    """The next stored articles by id, as the pipeline hands them to deduplication."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT a.article_id, a.text, a.title, a.published_at, s.name, a.canonical_url "
            "FROM articles a LEFT JOIN sources s USING (source_id) "
            "WHERE a.article_id > %s ORDER BY a.article_id LIMIT %s",
            (after, size),
        )
        return [
            Doc(id=i, text=text, title=title, published_at=published_at, source=source, url=url)
            for i, text, title, published_at, source, url in cur.fetchall()
        ]


def _reset(conn: Connection, ids: list[int], tables: Collection[str]) -> set[int]:
    """Remove the articles' dedup state of any version; return the stories they were in."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT DISTINCT cluster_id FROM articles WHERE article_id = ANY(%s) AND cluster_id IS NOT NULL",
            (ids,),
        )
        clusters = {cluster_id for (cluster_id,) in cur.fetchall()}
        # articles.cluster_id is left to assign_clusters: one more update would recompute each row's
        # generated search vector (a third of the rebuild's time).
        for table in tables:
            cur.execute(sql.SQL("DELETE FROM {} WHERE article_id = ANY(%s)").format(sql.Identifier(table)), (ids,))
    return clusters


def _tidy_stories(conn: Connection, cluster_ids: Collection[int]) -> None:
    """Make the stories true to their members now: size, seen times, a member as canonical; drop empty ones."""
    ids = list(cluster_ids)
    with conn.cursor() as cur:
        # Seen times from the members, not the rebuild's clock: dashboards list recent stories by them.
        cur.execute(
            "UPDATE story_clusters c SET size = m.n, first_seen_at = m.first_seen, last_seen_at = m.last_seen "
            "FROM (SELECT cluster_id, count(*) AS n, min(first_seen_at) AS first_seen, max(first_seen_at) AS last_seen"
            " FROM articles WHERE cluster_id = ANY(%s) GROUP BY cluster_id) m "
            "WHERE c.cluster_id = m.cluster_id",
            (ids,),
        )
        cur.execute(
            "DELETE FROM story_clusters c WHERE cluster_id = ANY(%s) "
            "AND NOT EXISTS (SELECT 1 FROM articles a WHERE a.cluster_id = c.cluster_id)",
            (ids,),
        )
        # A story not redone yet whose canonical article has moved to another story gets its best member.
        cur.execute(
            "SELECT c.cluster_id, a.article_id, a.published_at, "
            "coalesce(nullif(char_length(a.text), 0), char_length(a.title)) "
            "FROM story_clusters c JOIN articles a ON a.cluster_id = c.cluster_id "
            "WHERE c.cluster_id = ANY(%s) AND NOT EXISTS (SELECT 1 FROM articles ca "
            "WHERE ca.article_id = c.canonical_article_id AND ca.cluster_id = c.cluster_id)",
            (ids,),
        )
        best: dict[int, tuple[tuple, int, datetime | None, int]] = {}
        for cluster_id, article_id, published_at, length in cur.fetchall():
            key = canonical_key(published_at, length, article_id)
            if cluster_id not in best or key < best[cluster_id][0]:
                best[cluster_id] = (key, article_id, published_at, length)
        if best:
            psycopg2.extras.execute_values(
                cur,
                "UPDATE story_clusters c SET canonical_article_id = v.article_id, "
                "canonical_published_at = v.published_at, canonical_length = v.length "
                "FROM (VALUES %s) AS v(cluster_id, article_id, published_at, length) WHERE c.cluster_id = v.cluster_id",
                [(cluster_id, *rest) for cluster_id, (_, *rest) in best.items()],
                template="(%s::bigint, %s::bigint, %s::timestamptz, %s::integer)",
            )


def _finish(conn: Connection, version: str) -> None:
    """Mark the rebuild finished (a later run redoes only articles stored since)."""
    with conn.cursor() as cur:
        cur.execute(
            "UPDATE dedup_rebuilds SET finished_at = now(), updated_at = now() "
            "WHERE params_version = %s",
            (version,),
        )
