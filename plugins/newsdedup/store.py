"""PostgreSQL storage: migrations, sources, runs, crawl log, raw pages and articles, in batches."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import psycopg2
import psycopg2.extras
from psycopg2.extensions import connection as Connection

from newsdedup import run_counters, settings
from newsdedup.article import ArticleFields
from newsdedup.config import ConfigError, redact
from newsdedup.outcomes import SUCCEEDED
from newsdedup.robots import StoredRobots
from newsdedup.sources import Source
from newsdedup.urls import url_variants

if TYPE_CHECKING:
    from newsdedup.dedup_records import Fingerprint

SQL_DIR = Path(os.environ.get("NEWSDEDUP_SQL_DIR") or settings.DEFAULTS.sql_dir)
MIGRATION_LOCK = 4_172_001  # pg_advisory_xact_lock key: one migrator at a time


def open_connection(db_url: str) -> Connection:
    """Open a connection (the caller closes it); a refused one is a ConfigError naming the database."""
    try:
        return psycopg2.connect(db_url, connect_timeout=10, application_name="newsdedup")
    except psycopg2.OperationalError as exc:
        raise ConfigError(redact(f"cannot connect to the article database ({db_url}): {exc}")) from exc


@contextmanager
def connect(db_url: str) -> Iterator[Connection]:
    """Open a connection; commit on success, roll back on error, always close."""
    conn = open_connection(db_url)
    try:
        with conn:
            yield conn
    finally:
        conn.close()


def migrations(sql_dir: Path = SQL_DIR) -> list[Path]:
    """Return the numbered migration files in order."""
    files = sorted(p for p in sql_dir.glob("[0-9][0-9][0-9]_*.sql"))
    if not files:
        raise ConfigError(f"no migrations found in {sql_dir} (set NEWSDEDUP_SQL_DIR)")
    return files


@dataclass(frozen=True)
class Migration:
    """One migration: its file, and when it was applied (None: pending)."""

    version: str
    path: Path | None  # None: applied, but its file is gone
    checksum: str | None  # of the file as it is now
    applied_at: datetime | None = None
    applied_checksum: str | None = None

    @property
    def state(self) -> str:
        """'pending', 'applied', 'changed' (file edited after it was applied) or 'missing' (file gone)."""
        if self.applied_at is None:
            return "pending"
        if self.path is None:
            return "missing"
        return "applied" if self.checksum == self.applied_checksum else "changed"

    def to_dict(self) -> dict:
        """JSON-ready form for `db status --json`."""
        applied = self.applied_at.astimezone(UTC).isoformat() if self.applied_at else None
        return {"version": self.version, "state": self.state, "applied_at": applied, "file": str(self.path or "")}


class MigrationChanged(ConfigError):
    """An applied migration's file no longer matches what was applied."""


def migration_status(conn: Connection, sql_dir: Path = SQL_DIR) -> list[Migration]:
    """Every migration, by version: the files in sql_dir and what schema_migrations says was applied."""
    applied: dict[str, tuple[str, datetime]] = {}
    with conn.cursor() as cur:
        cur.execute("SELECT to_regclass('schema_migrations') IS NOT NULL")
        if cur.fetchone()[0]:
            cur.execute("SELECT version, checksum, applied_at FROM schema_migrations")
            applied = {version: (checksum, at) for version, checksum, at in cur.fetchall()}
    files = {path.stem: path for path in migrations(sql_dir)}
    status = []
    for version in sorted(files.keys() | applied.keys()):
        path = files.get(version)
        checksum, applied_at = applied.get(version, (None, None))
        now = _checksum(path.read_text(encoding="utf-8")) if path else None
        status.append(Migration(version, path, now, applied_at, checksum))
    return status


def _checksum(body: str) -> str:
    """SHA-256 of a migration's text as read (universal newlines: a CRLF checkout matches)."""
    return hashlib.sha256(body.encode()).hexdigest()


def _refuse_changed(status: list[Migration]) -> None:
    """Raise MigrationChanged, naming the file and what to do, when an applied migration was edited."""
    changed = [m for m in status if m.state == "changed"]
    if not changed:
        return
    m = changed[0]
    applied = m.applied_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if m.applied_at else "?"
    more = f" (and {len(changed) - 1} more: {', '.join(c.version for c in changed[1:])})" if len(changed) > 1 else ""
    raise MigrationChanged(
        f"migration {m.path} was changed after it was applied on {applied}: its SHA-256 is now "
        f"{m.checksum[:12]}…, not {(m.applied_checksum or '')[:12]}… as applied{more}. Nothing was migrated. "
        f"Restore the file as it was applied (`git log -p -- sql/{m.path.name}` shows its history); "
        "to change the schema, add a new migration (sql/NNN_name.sql, numbered after the last one)."
    )


def migrate(conn: Connection, sql_dir: Path = SQL_DIR) -> list[str]:
    """Apply pending migrations, each in its own transaction; return the versions applied.

    Refuses (MigrationChanged) to do anything while an applied migration's file differs from what was applied.
    """
    applied: list[str] = []
    with conn.cursor() as cur:
        cur.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version text PRIMARY KEY, checksum text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        conn.commit()
    _refuse_changed(migration_status(conn, sql_dir))
    conn.commit()
    for path in migrations(sql_dir):
        version = path.stem
        body = path.read_text(encoding="utf-8")
        checksum = _checksum(body)
        with conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
            cur.execute("SELECT checksum FROM schema_migrations WHERE version = %s", (version,))
            row = cur.fetchone()
            if row is None:
                cur.execute(body)
                cur.execute("INSERT INTO schema_migrations (version, checksum) VALUES (%s, %s)", (version, checksum))
                applied.append(version)
        conn.commit()
    return applied


def sync_sources(conn: Connection, sources: Sequence[Source]) -> dict[str, int]:
    """Upsert configured sources; sources no longer configured are disabled, never deleted."""
    with conn.cursor() as cur:
        if sources:
            psycopg2.extras.execute_values(
                cur,
                "INSERT INTO sources (name, url, kind, language, enabled, rate_limit, max_articles) VALUES %s "
                "ON CONFLICT (name) DO UPDATE SET url = EXCLUDED.url, kind = EXCLUDED.kind, "
                "language = EXCLUDED.language, enabled = EXCLUDED.enabled, rate_limit = EXCLUDED.rate_limit, "
                "max_articles = EXCLUDED.max_articles, updated_at = now(), "
                "etag = CASE WHEN sources.url = EXCLUDED.url THEN sources.etag END, "
                "last_modified = CASE WHEN sources.url = EXCLUDED.url THEN sources.last_modified END, "
                "child_validators = CASE WHEN sources.url = EXCLUDED.url THEN sources.child_validators "
                "ELSE '{}'::jsonb END",
                [(s.name, s.url, s.kind, s.language, s.enabled, s.rate_limit, s.max_articles) for s in sources],
            )
        cur.execute(
            "UPDATE sources SET enabled = false, updated_at = now() WHERE enabled AND NOT (name = ANY(%s))",
            ([s.name for s in sources],),
        )
        disabled = cur.rowcount
        cur.execute("SELECT count(*) FROM sources WHERE enabled")
        (enabled,) = cur.fetchone()
    return {"enabled": enabled, "disabled": disabled}


@dataclass(frozen=True)
class StoredSource:
    """A source row with its conditional-GET state."""

    source_id: int
    source: Source
    etag: str | None
    last_modified: str | None
    child_validators: dict[str, list[str | None]] = field(default_factory=dict)


_SOURCE_COLUMNS = (
    "source_id, name, url, kind, language, enabled, rate_limit, max_articles, etag, last_modified, child_validators"
)


def _stored_source(row: tuple) -> StoredSource:
    """Build a StoredSource from a row of _SOURCE_COLUMNS."""
    sid, name, url, kind, lang, enabled, rate_limit, max_articles, etag, lm, children = row
    source = Source(name, url, kind, lang, enabled, rate_limit, max_articles)
    return StoredSource(sid, source, etag, lm, dict(children or {}))


def enabled_sources(conn: Connection) -> list[StoredSource]:
    """Return the enabled sources, by name."""
    with conn.cursor() as cur:
        cur.execute(f"SELECT {_SOURCE_COLUMNS} FROM sources WHERE enabled ORDER BY name")  # noqa: S608 - constant
        return [_stored_source(row) for row in cur.fetchall()]


def get_source(conn: Connection, name: str) -> StoredSource:
    """Return one enabled source by name."""
    with conn.cursor() as cur:
        cur.execute(f"SELECT {_SOURCE_COLUMNS} FROM sources WHERE enabled AND name = %s", (name,))  # noqa: S608
        row = cur.fetchone()
    if row is None:
        raise ConfigError(f"source {name!r} is not configured or not enabled (run: newsdedup sources sync)")
    return _stored_source(row)


def save_source_state(
    conn: Connection,
    source_id: int,
    etag: str | None,
    last_modified: str | None,
    child_validators: dict[str, list[str | None]] | None = None,
) -> None:
    """Remember the validators of a source's last complete fetch (None: read it in full next time)."""
    with conn.cursor() as cur:
        cur.execute(
            "UPDATE sources SET etag = %s, last_modified = %s, child_validators = %s, last_crawled_at = now() "
            "WHERE source_id = %s",
            (etag, last_modified, psycopg2.extras.Json(child_validators or {}), source_id),
        )


class RobotsTable:
    """The shared robots.txt copies (table robots_txt): a newsdedup.robots.RobotsStore in PostgreSQL."""

    def __init__(self, db_url: str) -> None:
        self.db_url = db_url

    def load(self, origin: str) -> StoredRobots | None:
        """Return the stored copy for origin, if any."""
        with connect(self.db_url) as conn, conn.cursor() as cur:
            cur.execute(
                "SELECT origin, verdict, reason, body, etag, last_modified, extract(epoch FROM fetched_at) "
                "FROM robots_txt WHERE origin = %s",
                (origin,),
            )
            row = cur.fetchone()
        return StoredRobots(*row[:6], float(row[6])) if row else None

    def save(self, robots: StoredRobots) -> None:
        """Store (replace) the copy for robots.origin."""
        with connect(self.db_url) as conn, conn.cursor() as cur:
            cur.execute(
                "INSERT INTO robots_txt (origin, verdict, reason, body, etag, last_modified, fetched_at) "
                "VALUES (%s, %s, %s, %s, %s, %s, to_timestamp(%s)) ON CONFLICT (origin) DO UPDATE SET "
                "verdict = EXCLUDED.verdict, reason = EXCLUDED.reason, body = EXCLUDED.body, etag = EXCLUDED.etag, "
                "last_modified = EXCLUDED.last_modified, fetched_at = EXCLUDED.fetched_at",
                (
                    robots.origin,
                    robots.verdict,
                    robots.reason,
                    (robots.body or None) and robots.body.replace("\x00", ""),
                    robots.etag,
                    robots.last_modified,
                    robots.fetched_at,
                ),
            )


def start_run(conn: Connection, run_key: str, trigger: str, sources_total: int) -> int:
    """Create (or, on a retry, reuse) the pipeline_runs row of a run."""
    with conn.cursor() as cur:
        cur.execute(
            "INSERT INTO pipeline_runs (run_key, trigger, sources_total) VALUES (%s, %s, %s) "
            "ON CONFLICT (run_key) DO UPDATE SET status = 'running', sources_total = EXCLUDED.sources_total "
            "RETURNING run_id",
            (run_key, trigger, sources_total),
        )
        return cur.fetchone()[0]


def finish_run(conn: Connection, run_id: int, counts: dict[str, int], status: str) -> dict:
    """Write a run's final counts and status; return the row as a dict."""
    values = {name: int(counts.get(name, 0)) for name in run_counters.RUN}
    with conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
        cur.execute(
            f"UPDATE pipeline_runs SET {run_counters.SET_RUN_COUNTS}, status = %(status)s, "  # noqa: S608
            "finished_at = now() WHERE run_id = %(run_id)s RETURNING *",
            values | {"status": status, "run_id": run_id},
        )
        return dict(cur.fetchone())


@dataclass
class CrawlRecord:
    """One fetch attempt (or extraction failure) for crawl_log."""

    url: str
    request_kind: str
    outcome: str
    source_id: int | None = None
    final_url: str | None = None
    http_status: int | None = None
    nbytes: int = 0
    elapsed_ms: int = 0
    error_class: str | None = None
    error_message: str | None = None


def log_crawl(conn: Connection, run_id: int | None, records: Iterable[CrawlRecord]) -> int:
    """Append fetch attempts to crawl_log in one statement."""
    rows = [
        (
            run_id,
            r.source_id,
            r.url,
            r.final_url,
            r.request_kind,
            r.outcome,
            r.http_status,
            r.nbytes,
            r.elapsed_ms,
            r.error_class,
            (r.error_message or None) and redact(r.error_message)[:2000],
        )
        for r in records
    ]
    if rows:
        with conn.cursor() as cur:
            psycopg2.extras.execute_values(
                cur,
                "INSERT INTO crawl_log (run_id, source_id, url, final_url, request_kind, outcome, "
                "http_status, bytes, elapsed_ms, error_class, error_message) VALUES %s",
                rows,
            )
    return len(rows)


@dataclass
class RawPage:
    """A fetched page waiting to be processed."""

    source_id: int
    url: str
    final_url: str
    http_status: int | None
    content_type: str | None
    encoding: str | None
    html: str
    feed_title: str | None = None
    feed_published: datetime | None = None


def save_raw_pages(conn: Connection, run_id: int, pages: Iterable[RawPage]) -> int:
    """Store fetched pages for the processing step; a page fetched again this run is staged again if it changed.

    Another source of the run (a sitemap beside a feed) or a retried task may fetch a page that
    concurrent processing has already stored: the same HTML is not processed twice.
    """
    unique = {p.url: p for p in pages}  # ON CONFLICT cannot touch one row twice in a statement
    rows = [
        (
            run_id,
            p.source_id,
            p.url,
            p.final_url,
            p.http_status,
            p.content_type,
            p.encoding,
            p.html.replace("\x00", ""),
            p.feed_title,
            p.feed_published,
        )
        for p in unique.values()
    ]
    if rows:
        with conn.cursor() as cur:
            psycopg2.extras.execute_values(
                cur,
                "INSERT INTO raw_pages (run_id, source_id, url, final_url, http_status, content_type, "
                "encoding, html, feed_title, feed_published) VALUES %s "
                "ON CONFLICT (run_id, url) DO UPDATE SET html = EXCLUDED.html, "
                "final_url = EXCLUDED.final_url, fetched_at = now(), processed_at = NULL "
                "WHERE raw_pages.html IS DISTINCT FROM EXCLUDED.html",
                rows,
            )
    return len(rows)


def known_urls(conn: Connection, urls: Sequence[str]) -> dict[str, datetime]:
    """Return which of these URLs are already stored, with their latest fetch time.

    A URL is stored when an article has it as page or canonical URL in any of its spellings:
    http or https, with or without `www.` (see urls.url_variants).
    """
    return _article_times(conn, urls, "fetched_at")


def gone_urls(conn: Connection, urls: Sequence[str]) -> dict[str, datetime]:
    """Return which of these URLs are stored articles marked gone, with when their page last answered 404/410."""
    return _article_times(conn, urls, "gone_at")


def mark_gone(conn: Connection, gone: Mapping[str, int], back: Sequence[str]) -> None:
    """Mark the articles of these URLs gone (URL -> HTTP status 404/410); unmark those whose page came `back`."""
    with conn.cursor() as cur:
        for url, status in gone.items():
            cur.execute(
                "UPDATE articles SET gone_at = now(), gone_status = %(s)s "
                "WHERE url = ANY(%(u)s) OR canonical_url = ANY(%(u)s)",
                {"s": status, "u": url_variants(url) or [url]},
            )
        if back:
            cur.execute(
                "UPDATE articles SET gone_at = NULL, gone_status = NULL "
                "WHERE gone_at IS NOT NULL AND (url = ANY(%(u)s) OR canonical_url = ANY(%(u)s))",
                {"u": [v for url in back for v in url_variants(url) or [url]]},
            )


def _article_times(
    conn: Connection, urls: Sequence[str], column: Literal["fetched_at", "gone_at"]
) -> dict[str, datetime]:
    """URL -> the latest non-null `column` (fetched_at or gone_at) of the articles stored under any spelling of it."""
    if not urls:
        return {}
    spellings: dict[str, list[str]] = {}
    for url in urls:
        for variant in url_variants(url) or [url]:
            spellings.setdefault(variant, []).append(url)
    with conn.cursor() as cur:
        cur.execute(
            f"SELECT url, {column} FROM articles WHERE url = ANY(%(u)s) AND {column} IS NOT NULL "  # noqa: S608
            f"UNION ALL SELECT canonical_url, {column} FROM articles "  # noqa: S608
            f"WHERE canonical_url = ANY(%(u)s) AND {column} IS NOT NULL",
            {"u": list(spellings)},
        )
        rows = cur.fetchall()
    known: dict[str, datetime] = {}
    for found, fetched_at in rows:
        for url in spellings.get(found, ()):
            if url not in known or fetched_at > known[url]:
                known[url] = fetched_at
    return known


def pending_raw_pages(conn: Connection, run_id: int, limit: int) -> list[dict]:
    """Return a batch of unprocessed pages of a run, oldest first, locked for this worker."""
    with conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
        cur.execute(
            "SELECT p.raw_page_id, p.source_id, p.url, p.final_url, p.html, p.feed_title, "
            "p.feed_published, s.language AS source_language "
            "FROM raw_pages p LEFT JOIN sources s USING (source_id) "
            "WHERE p.run_id = %s AND p.processed_at IS NULL "
            "ORDER BY p.raw_page_id LIMIT %s FOR UPDATE OF p SKIP LOCKED",
            (run_id, limit),
        )
        return [dict(row) for row in cur.fetchall()]


# The claim: row locks on the next unprocessed pages, taken with SKIP LOCKED inside the limit so that each
# claimer gets the next pages nobody holds. The locks last as long as the claimer's transaction: its commit
# (the pages then processed) or the end of its connection (a crashed task) hands unprocessed pages back.
# "+ 0" keeps the planner on the partial index of unprocessed pages instead of walking the primary key
# through every earlier run's pages.
_CLAIM_PAGES = (
    "WITH claimed AS (SELECT raw_page_id FROM raw_pages "
    "WHERE run_id = %s AND processed_at IS NULL AND raw_page_id > %s ORDER BY raw_page_id + 0 LIMIT %s "
    "FOR UPDATE SKIP LOCKED) "
    "SELECT p.raw_page_id, p.source_id, p.url, p.final_url, p.html, p.feed_title, p.feed_published, "
    "p.fetched_at, s.language AS source_language "
    "FROM raw_pages p JOIN claimed USING (raw_page_id) LEFT JOIN sources s USING (source_id) "
    "ORDER BY p.raw_page_id"
)


def claim_pages(conn: Connection, run_id: int, after: int, limit: int) -> list[dict]:
    """Claim the next unprocessed pages of a run after a page id for this transaction, oldest first."""
    with conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
        cur.execute(_CLAIM_PAGES, (run_id, after, limit))
        return [dict(row) for row in cur.fetchall()]


def mark_processed(conn: Connection, raw_page_ids: Sequence[int]) -> None:
    """Mark pages as processed."""
    with conn.cursor() as cur:
        cur.execute("UPDATE raw_pages SET processed_at = now() WHERE raw_page_id = ANY(%s)", (list(raw_page_ids),))


@dataclass(kw_only=True)
class ArticleRow(ArticleFields):
    """A clean article ready to be stored: its own fields, and where, when and how it was fetched and cleaned."""

    source_id: int | None
    fetched_at: datetime
    removed: list[dict] = field(default_factory=list)
    fingerprint: Fingerprint | None = field(default=None, repr=False)  # made by the extraction worker

    @property
    def content_hash(self) -> str:
        """SHA-256 of title and text: equal hashes mean an unchanged article."""
        return hashlib.sha256(f"{self.title}\n{self.text}".encode()).hexdigest()


@dataclass
class Upserted:
    """What an upsert did: counts, and the id of each new or changed article by canonical URL."""

    counts: dict[str, int]
    new: dict[str, int]
    changed: dict[str, int]


def upsert_articles(conn: Connection, articles: Sequence[ArticleRow]) -> Upserted:
    """Insert new articles and update changed ones by canonical URL; unchanged ones are left alone."""
    # Two pages of one batch with one canonical URL would make ON CONFLICT fail: last one wins.
    unique = {a.canonical_url: a for a in articles}
    rows = [
        (
            a.source_id,
            a.url,
            a.canonical_url,
            a.title,
            a.text,
            a.author,
            a.published_at,
            a.language,
            len(a.text.split()),
            a.content_hash,
            a.fetched_at,
            a.raw_title,
            a.modified_at,
            a.date_issue,
        )
        for a in unique.values()
    ]
    done = Upserted({"articles_new": 0, "articles_updated": 0, "articles_unchanged": 0}, {}, {})
    if not rows:
        return done
    with conn.cursor() as cur:
        returned = psycopg2.extras.execute_values(
            cur,
            "INSERT INTO articles (source_id, url, canonical_url, title, text, author, published_at, "
            "language, word_count, content_hash, fetched_at, raw_title, modified_at, date_issue) VALUES %s "
            "ON CONFLICT (canonical_url) DO UPDATE SET title = EXCLUDED.title, text = EXCLUDED.text, "
            "author = EXCLUDED.author, "
            "published_at = COALESCE(EXCLUDED.published_at, articles.published_at), "
            "raw_title = EXCLUDED.raw_title, modified_at = COALESCE(EXCLUDED.modified_at, articles.modified_at), "
            "date_issue = EXCLUDED.date_issue, "
            "language = EXCLUDED.language, word_count = EXCLUDED.word_count, "
            "content_hash = EXCLUDED.content_hash, fetched_at = EXCLUDED.fetched_at, updated_at = now() "
            "WHERE articles.content_hash <> EXCLUDED.content_hash "
            "RETURNING canonical_url, article_id, (xmax = 0) AS inserted",
            rows,
            fetch=True,
        )
    for url, article_id, inserted in returned:
        (done.new if inserted else done.changed)[url] = article_id
    done.counts["articles_new"] = len(done.new)
    done.counts["articles_updated"] = len(done.changed)
    # A page of this batch that another page with its canonical URL replaced counts as unchanged, as it does
    # when the two land in different batches: the count must not depend on where the batches split.
    done.counts["articles_unchanged"] = len(articles) - len(returned)
    return done


def save_removed_segments(conn: Connection, removed: dict[int, Sequence[dict]]) -> int:
    """Replace the recorded segment removals of these articles."""
    if not removed:
        return 0
    rows = [
        (
            article_id,
            r["position"],
            r.get("sentence"),
            r["kind"],
            r["reason"],
            r.get("measure", "equal"),
            r["similarity"],
            r["segment"],
            r["matched"],
        )
        for article_id, removals in removed.items()
        for r in removals
    ]
    with conn.cursor() as cur:
        cur.execute("DELETE FROM removed_segments WHERE article_id = ANY(%s)", (list(removed),))
        if rows:
            psycopg2.extras.execute_values(
                cur,
                "INSERT INTO removed_segments (article_id, position, sentence, kind, reason, measure, "
                "similarity, segment, matched) VALUES %s",
                rows,
            )
    return len(rows)


def last_run(conn: Connection) -> dict | None:
    """Return the most recent pipeline_runs row."""
    with conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
        cur.execute("SELECT * FROM pipeline_runs ORDER BY run_id DESC LIMIT 1")
        row = cur.fetchone()
        return dict(row) if row else None


def stats(conn: Connection) -> dict:
    """Return headline numbers about the database."""
    with conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
        cur.execute(
            "SELECT (SELECT count(*) FROM sources WHERE enabled) AS sources,"
            " (SELECT count(*) FROM articles) AS articles,"
            " (SELECT count(DISTINCT language) FROM articles) AS languages,"
            " (SELECT count(*) FROM story_clusters) AS stories,"
            " (SELECT count(*) FROM crawl_log) AS crawl_attempts,"
            " (SELECT count(*) FROM crawl_log WHERE outcome <> ALL(%s)) AS crawl_failures,"
            " (SELECT count(*) FROM pipeline_runs) AS runs,"
            " (SELECT max(finished_at) FROM pipeline_runs) AS last_run_finished_at",
            (SUCCEEDED,),
        )
        return dict(cur.fetchone())
