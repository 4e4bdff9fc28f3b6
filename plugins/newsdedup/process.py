"""The processing step of a run: staged raw pages become extracted, cleaned, stored and clustered articles.

Exactly once per page: a batch's articles, removed segments, story decisions, extraction failures,
processed marks and run counters are written in one transaction. A batch that fails (PostgreSQL
restarted, task killed) leaves nothing behind and is done again by the retry, here or by Airflow.
Extraction and cleaning run in a process pool when there is enough work (`NEWSDEDUP_WORKERS`);
the database writes and story clustering stay in the calling process, one batch at a time, while
the pool extracts the next batches.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import sys
import threading
import time
import types
from collections import Counter, deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import CancelledError, Future, ProcessPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TypeVar

import psycopg2
import psycopg2.extras
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_delay, wait_exponential

from newsdedup import settings as newsdedup_settings
from newsdedup import store
from newsdedup.clean import CleanResult, clean_article
from newsdedup.config import ConfigError
from newsdedup.dedup import DedupParams, Doc, fingerprint_text
from newsdedup.dedup_store import assign_clusters
from newsdedup.extract import ExtractedArticle, ReadPage, extract_text, read_page
from newsdedup.metadata import learned_affixes, strip_learned

log = logging.getLogger(__name__)

Progress = Callable[[int], None]
T = TypeVar("T")
MAX_TEXT_CHARS = 150_000  # about 25,000 words
CHUNK_PAGES = 16  # pages per unit of work sent to a worker (fewer when a batch is small)
READ_AHEAD_BYTES = 4_000_000  # HTML parsed ahead of trafilatura in a worker (a tree takes about 6.5 times its page)
DEDUP_PARAMS = DedupParams()  # what assign_clusters uses: fingerprints made with others are made again

# Processing counters of pipeline_runs, added to the run's row in each batch's transaction.
COUNTERS = (
    "extract_failed",
    "articles_new",
    "articles_updated",
    "articles_unchanged",
    "stories_created",
    "duplicates_found",
    "segments_removed",
)
_ADD_COUNTS = (
    "UPDATE pipeline_runs SET extract_failed = extract_failed + %(extract_failed)s, "
    "articles_new = articles_new + %(articles_new)s, articles_updated = articles_updated + %(articles_updated)s, "
    "articles_unchanged = articles_unchanged + %(articles_unchanged)s, "
    "stories_created = stories_created + %(stories_created)s, "
    "duplicates_found = duplicates_found + %(duplicates_found)s, "
    "segments_removed = segments_removed + %(segments_removed)s WHERE run_id = %(run_id)s"
)
_RUN_COUNTS = (
    "SELECT extract_failed, articles_new, articles_updated, articles_unchanged, stories_created, "
    "duplicates_found, segments_removed FROM pipeline_runs WHERE run_id = %s"
)
# Unlocked read of the next pages; SKIP LOCKED leaves out pages another worker is loading right now.
# The run's pages come from the partial index of unprocessed pages ("+ 0" keeps the planner from walking
# the primary key through every earlier run's pages instead: 24 ms at 20,000 pages, growing with the table).
_NEXT_PAGES = (
    "WITH todo AS MATERIALIZED (SELECT raw_page_id FROM raw_pages "
    "WHERE run_id = %s AND processed_at IS NULL AND raw_page_id > %s ORDER BY raw_page_id + 0 LIMIT %s) "
    "SELECT p.raw_page_id, p.source_id, p.url, p.final_url, p.html, p.feed_title, p.feed_published, "
    "p.fetched_at, s.language AS source_language "
    "FROM raw_pages p JOIN todo USING (raw_page_id) LEFT JOIN sources s USING (source_id) "
    "ORDER BY p.raw_page_id FOR UPDATE OF p SKIP LOCKED"
)
_LOCK_PAGES = (
    "SELECT raw_page_id, fetched_at FROM raw_pages "
    "WHERE raw_page_id = ANY(%s) AND processed_at IS NULL FOR UPDATE SKIP LOCKED"
)
_PENDING = "SELECT count(*) FROM raw_pages WHERE run_id = %s AND processed_at IS NULL"
# A source whose pages yielded no article this run reads its feed in full next run (no 304), so
# the pages are fetched again once the site is repaired: the known-URL filter skips stored ones.
# Pages given up (outcome given_up, see store.settle_page_failures) are not waited for.
_FORGET_VALIDATORS = (
    "UPDATE sources SET etag = NULL, last_modified = NULL, child_validators = '{}'::jsonb "
    "WHERE source_id IN (SELECT source_id FROM crawl_log WHERE run_id = %s AND request_kind = 'extract' "
    "AND outcome = 'extract_failed') "
    "AND (etag IS NOT NULL OR last_modified IS NOT NULL OR child_validators <> '{}'::jsonb)"
)

# SQLSTATEs that say nothing about the data: the same transaction can succeed later.
_TRANSIENT_STATES = frozenset({"40001", "40P01", "53300", "55P03", "57P01", "57P02", "57P03"})


def _cpus() -> int:
    """Cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


@dataclass(frozen=True)
class ProcessSettings:
    """How processing uses the machine: batch size, extraction workers, retries (see newsdedup.settings)."""

    batch_size: int = newsdedup_settings.DEFAULTS.batch_size
    workers: int = field(default_factory=_cpus)
    pool_min_pages: int = newsdedup_settings.DEFAULTS.pool_min_pages
    prefetch: int = 4  # batches extracted ahead while one is loaded
    db_retry_seconds: int = newsdedup_settings.DEFAULTS.db_retry_seconds
    page_timeout: float = newsdedup_settings.DEFAULTS.page_timeout
    give_up_after: int = newsdedup_settings.DEFAULTS.give_up_after
    give_up_retry_days: int = newsdedup_settings.DEFAULTS.give_up_retry_days

    @classmethod
    def from_env(cls) -> ProcessSettings:
        """The processing settings of newsdedup.settings (README, Configuration); ConfigError on a bad one."""
        env = newsdedup_settings.load()
        return cls(
            batch_size=env.batch_size,
            workers=env.workers or _cpus(),
            pool_min_pages=env.pool_min_pages,
            db_retry_seconds=env.db_retry_seconds,
            page_timeout=env.page_timeout,
            give_up_after=env.give_up_after,
            give_up_retry_days=env.give_up_retry_days,
        )


# --------------------------------------------------------------------------- extraction (worker side)


@dataclass
class Extracted:
    """What one raw page became: an article row, or a crawl_log record saying why not."""

    raw_page_id: int
    article: store.ArticleRow | None = None
    failure: store.CrawlRecord | None = None


def _failure(page: dict, error_class: str, message: str) -> store.CrawlRecord:
    """A crawl_log record for a page that yielded no article."""
    return store.CrawlRecord(
        page["url"],
        "extract",
        "extract_failed",
        page["source_id"],
        page["final_url"],
        error_class=error_class,
        error_message=message,
    )


def _no_nul(value: str | None) -> str | None:
    """PostgreSQL text cannot hold NUL characters."""
    return value.replace("\x00", "") if value else value


def extract_page(page: dict) -> Extracted:
    """Extract, clean and sign one raw page; any failure becomes a record, never an exception."""
    return extract_pages([page])[0]


def extract_pages(pages: Sequence[dict]) -> list[Extracted]:
    """Extract a chunk of pages (the unit of work sent to a worker process), one stage at a time.

    Pages are read (parsed, metadata), then their text extracted, then every article cleaned, then
    signed: each stage's code stays in the CPU caches across the chunk. Against going page by page,
    chunks of 16 generated pages took 12-16 % less CPU time (300 pages, five rounds). Parsed trees
    wait for trafilatura in groups of at most READ_AHEAD_BYTES of HTML, so that a chunk of huge pages
    does not hold all its trees at once.
    """
    found: list[ExtractedArticle | Extracted] = []
    for group in _by_size(pages, READ_AHEAD_BYTES):
        read = [_guarded(page, read_page, page["html"], page["final_url"]) for page in group]
        found += [
            _guarded(page, _extracted, page, item) if isinstance(item, ReadPage) else item
            for page, item in zip(group, read, strict=True)
        ]
        del read  # the group's trees
    _strip_source_affixes(pages, found)
    cleaned = [
        _guarded(page, _cleaned, page, item) if isinstance(item, ExtractedArticle) else item
        for page, item in zip(pages, found, strict=True)
    ]
    return [
        _guarded(page, _signed, page, item) if isinstance(item, _Cleaned) else item
        for page, item in zip(pages, cleaned, strict=True)
    ]


def _strip_source_affixes(pages: Sequence[dict], found: list[ExtractedArticle | Extracted]) -> None:
    """Strip from titles the prefix or suffix that most of their source's titles in the chunk share."""
    by_source: dict[int, list[ExtractedArticle]] = {}
    for page, item in zip(pages, found, strict=True):
        if isinstance(item, ExtractedArticle):
            by_source.setdefault(page["source_id"], []).append(item)
    for articles in by_source.values():
        affixes = learned_affixes([a.title for a in articles])
        if any(affixes):
            for article in articles:
                article.title = strip_learned(article.title, affixes) or article.title


def _by_size(pages: Sequence[dict], budget: int) -> Iterator[Sequence[dict]]:
    """Consecutive groups of pages whose HTML adds up to at most `budget` characters (a larger page alone)."""
    start, size = 0, 0
    for end, page in enumerate(pages):
        size += len(page["html"] or "")
        if size > budget and end > start:
            yield pages[start:end]
            start, size = end, len(page["html"] or "")
    if start < len(pages):
        yield pages[start:]


@dataclass
class _Cleaned:
    """An extracted article and its cleaned text, waiting for its signature."""

    found: ExtractedArticle
    title: str
    cleaned: CleanResult


def _guarded(page: dict, stage: Callable[..., T], *args: object) -> T | Extracted:
    """Run one stage on a page; an exception becomes the page's failure record (one bad page must not stop the run)."""
    try:
        return stage(*args)
    except RecursionError:
        return Extracted(page["raw_page_id"], failure=_failure(page, "RecursionError", "the page is nested too deeply"))
    except Exception as exc:  # noqa: BLE001 - recorded, not raised
        return Extracted(page["raw_page_id"], failure=_failure(page, type(exc).__name__, str(exc) or repr(exc)))


def _extracted(page: dict, read: ReadPage) -> ExtractedArticle | Extracted:
    """The page's article as extracted, or the failure of a text too long to be one."""
    found = extract_text(read, language_hint=page["source_language"])
    if len(found.text) > MAX_TEXT_CHARS:
        # Longer than any news article (a list or archive page); cleaning such text costs minutes.
        return Extracted(page["raw_page_id"], failure=_failure(
            page, "ExtractionError", f"{len(found.text):,} characters of text: longer than an article "
            f"(limit {MAX_TEXT_CHARS:,})"))
    return found


def _cleaned(page: dict, found: ExtractedArticle) -> _Cleaned | Extracted:
    """The article with repeated segments removed, or the failure of one that only repeats its headline."""
    title = _no_nul(found.title) or _no_nul(page["feed_title"]) or ""
    cleaned = clean_article(_no_nul(found.title) or "", _no_nul(found.text) or "")
    if not cleaned.text.strip():
        return Extracted(page["raw_page_id"], failure=_failure(
            page, "ExtractionError", "the page's text only repeats its headline"))
    return _Cleaned(found, title, cleaned)


def _signed(page: dict, item: _Cleaned) -> Extracted:
    """The article row with its signature, made here in the worker so the loading process only compares and writes."""
    found, cleaned = item.found, item.cleaned
    fingerprint = fingerprint_text(cleaned.text, item.title, DEDUP_PARAMS, norm=cleaned.norm)
    article = store.ArticleRow(
        source_id=page["source_id"],
        url=page["url"],
        canonical_url=_no_nul(found.canonical_url) or page["url"],
        title=item.title,
        text=cleaned.text,
        author=_no_nul(found.author),
        published_at=found.published_at or page["feed_published"],
        language=found.language,
        fetched_at=datetime.now(UTC),
        removed=[r.to_dict() for r in cleaned.removed],
        raw_title=_no_nul(found.raw_title),
        modified_at=found.modified_at,
        date_issue=found.date_issue,
        fingerprint=fingerprint,
    )
    return Extracted(page["raw_page_id"], article=article)


_PRELOAD = ["trafilatura", "lxml.html", "bs4", "htmldate", "courlan", "py3langid", "numpy", "datasketch", "psycopg2"]
_WARM_PAGE = (
    "<html><head><title>Warm-up</title></head><body><article><p>"
    + "The harbour ferry runs a new timetable from Monday, the operator said in a statement. " * 4
    + "</p></article></body></html>"
)


def _start_worker(pid: int) -> None:
    """In a new worker: watch the parent, and extract one page so lazy models (language ids) are loaded."""
    _watch_parent(pid)
    extract_page({"raw_page_id": 0, "source_id": None, "url": "http://127.0.0.1/", "final_url": "http://127.0.0.1/",
                  "html": _WARM_PAGE, "feed_title": None, "feed_published": None, "source_language": None})


def _watch_parent(pid: int) -> None:
    """In a worker: exit when the process that started the pool is gone (killed, say).

    A killed parent never sends the pool's shutdown; the workers would wait on their queue for ever and
    keep the fork server alive with them.
    """

    def watch() -> None:
        while True:
            time.sleep(1)
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                os._exit(0)
            except PermissionError:  # the id now belongs to another user's process
                os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


@contextmanager
def _without_main_module() -> Iterator[None]:
    """Hide the __main__ module from multiprocessing while worker processes are started."""
    main = sys.modules.get("__main__")
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        if main is not None:
            sys.modules["__main__"] = main


class _Extractor:
    """Runs extract_pages in this process, or in a pool of worker processes with a time limit per page.

    The pool starts once the work seen reaches `pool_min_pages`: a few pages are cheaper inline. Pages only
    expected (a crawl still going on) count too, but start no worker before one of them is submitted: a run
    with nothing to extract starts no process at all (bench/empty_run.py).
    """

    def __init__(self, settings: ProcessSettings, pending: int, expected: int = 0) -> None:
        """Plan for `pending` pages waiting now and for `expected` pages in all, some of them still to come."""
        self.workers = settings.workers
        self.page_timeout = settings.page_timeout
        self.pool_min_pages = max(settings.pool_min_pages, 1)
        self.seen = 0
        self.generation = 0
        self.pool: ProcessPoolExecutor | None = None
        self._want(pending)
        self.seen = max(self.seen, expected)

    def _want(self, pages: int) -> None:
        """Start the pool when there is enough work for it."""
        self.seen = max(self.seen, pages)
        if self.pool is None and self.workers > 1 and self.seen >= self.pool_min_pages:
            self.pool = self._new_pool()

    def _new_pool(self) -> ProcessPoolExecutor:
        """Worker processes forked from a clean server process (not from this threaded one), all started now."""
        method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
        context = multiprocessing.get_context(method)
        if method == "forkserver":
            # Python 3.11's fork server ignores the caller's sys.path (plugins/ may not be on its own):
            # the heavy third-party imports are preloaded by name so that each worker only adds ours.
            context.set_forkserver_preload(["newsdedup.process", *_PRELOAD])
        pool = ProcessPoolExecutor(self.workers, mp_context=context, initializer=_start_worker, initargs=(os.getpid(),))
        with _without_main_module():
            # A new worker imports the caller's __main__ script (an Airflow CLI, a user's script with
            # no main guard); started here, under a stand-in, each one only imports this module.
            warm = [pool.submit(os.getpid) for _ in range(self.workers)]
        for future in warm:
            future.result(timeout=120)
        log.info("extraction pool: %d worker processes started", self.workers)
        return pool

    def submit(self, pages: list[dict]) -> Callable[[], list[Extracted]]:
        """Start extracting pages; return a function that waits for the results (in page order)."""
        self._want(self.seen + len(pages))
        if self.pool is None:
            return lambda: extract_pages(pages)
        size = max(1, min(CHUNK_PAGES, -(-len(pages) // (self.workers * 2))))
        chunks = [pages[i : i + size] for i in range(0, len(pages), size)]
        jobs = [(chunk, self._submit(chunk), self.generation) for chunk in chunks]
        return lambda: [item for job in jobs for item in self._wait(*job)]

    def _submit(self, chunk: list[dict]) -> Future:
        """Queue a chunk; a pool broken meanwhile (a worker killed while idle) is replaced first."""
        try:
            return self.pool.submit(extract_pages, chunk)
        except BrokenProcessPool:
            log.warning("extraction worker died while idle; starting new workers")
            self._restart()
            return self.pool.submit(extract_pages, chunk)

    def _wait(self, chunk: list[dict], future: Future, generation: int) -> list[Extracted]:
        """Results of one chunk; a stuck or dead worker costs only its own pages, each tried alone."""
        while True:
            try:
                return future.result(timeout=self.page_timeout * len(chunk))
            except (FutureTimeout, BrokenProcessPool, CancelledError) as exc:
                if generation == self.generation and not isinstance(exc, CancelledError):
                    log.warning("extraction worker %s on %d page(s)", type(exc).__name__, len(chunk))
                    self._restart()
                    if len(chunk) == 1 and isinstance(exc, FutureTimeout):
                        return [self._given_up(chunk[0], exc)]  # it ran alone: the time was its own
                    return [self._alone(page) for page in chunk]
            # The pool was restarted for another chunk's sake: this one goes to the new pool whole.
            future, generation = self._submit(chunk), self.generation

    def _alone(self, page: dict) -> Extracted:
        """Extract one page in the pool under the time limit; a timeout or a crash becomes its failure."""
        try:
            return self.pool.submit(extract_page, page).result(timeout=self.page_timeout)
        except (FutureTimeout, BrokenProcessPool) as exc:
            self._restart()
            return self._given_up(page, exc)

    def _given_up(self, page: dict, exc: BaseException) -> Extracted:
        """The failure record of a page whose extraction hung or killed its worker."""
        if isinstance(exc, FutureTimeout):
            reason = ("ExtractionTimeout", f"extraction took longer than {self.page_timeout} s")
        else:
            reason = ("WorkerCrashed", "the extraction process died on this page")
        return Extracted(page["raw_page_id"], failure=_failure(page, *reason))

    def _restart(self) -> None:
        """Kill the pool's processes (a stuck one never returns) and start fresh ones."""
        if self.pool is None:
            return
        for process in list((self.pool._processes or {}).values()):  # no public way to stop a running task
            process.kill()
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.pool = self._new_pool()
        self.generation += 1

    def close(self, grace: float = 10) -> None:
        """Stop the worker processes: politely, then by force after `grace` seconds.

        A worker killed while it waited for work dies holding the lock of the pool's task queue, so the
        others never read their stop signal and a plain `shutdown(wait=True)` would wait for ever.
        """
        if self.pool is None:
            return
        processes = list((self.pool._processes or {}).values())
        self.pool.shutdown(wait=False, cancel_futures=True)
        deadline = time.monotonic() + grace
        for process in processes:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.exitcode is None:
                process.kill()
                process.join(5)
        self.pool = None


# --------------------------------------------------------------------------- loading (parent side)


def is_transient(exc: BaseException) -> bool:
    """True for database failures that a later attempt of the same work can get past."""
    if isinstance(exc, ConfigError):  # store.connect wraps a refused connection
        exc = exc.__cause__ if isinstance(exc.__cause__, psycopg2.OperationalError) else exc
        if isinstance(exc, ConfigError):
            return False
    if isinstance(exc, psycopg2.InterfaceError):
        return True  # the connection was closed under us
    if isinstance(exc, psycopg2.OperationalError):
        code = exc.pgcode
        return code is None or code.startswith("08") or code in _TRANSIENT_STATES
    return False


def retrying(seconds: float, what: str) -> Retrying:
    """A tenacity policy for transient database failures: back off from 0.5 s to 10 s, for `seconds`."""

    def note(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        log.warning("%s: transient database failure (%s: %s); attempt %d, retrying", what,
                    type(exc).__name__, str(exc).strip()[:200], state.attempt_number)

    return Retrying(
        retry=retry_if_exception(is_transient),
        wait=wait_exponential(multiplier=0.5, max=10),
        stop=stop_after_delay(seconds),
        before_sleep=note,
        reraise=True,
    )


def load_articles(conn: store.Connection, articles: list[store.ArticleRow]) -> Counter[str]:
    """Store articles, their removed segments, and the story clusters of the new ones (caller's transaction)."""
    # Rows in one order everywhere: two runs upserting overlapping batches cannot deadlock.
    done = store.upsert_articles(conn, sorted(articles, key=lambda a: a.canonical_url))
    counts: Counter[str] = Counter(done.counts)
    by_url = {a.canonical_url: a for a in articles}
    touched = done.new | done.changed
    counts["segments_removed"] = store.save_removed_segments(
        conn, {article_id: by_url[url].removed for url, article_id in touched.items()}
    )
    # Clustered in page order, so the same pages give the same stories whatever the row ids.
    order = {url: i for i, url in enumerate(by_url)}
    docs = [
        Doc(
            id=article_id,
            text=by_url[url].text,
            title=by_url[url].title,
            published_at=by_url[url].published_at,
            url=url,
            fingerprint=by_url[url].fingerprint,
        )
        for url, article_id in sorted(done.new.items(), key=lambda kv: order[kv[0]])
    ]
    for decision in assign_clusters(conn, docs):
        counts["stories_created" if decision.method == "new" else "duplicates_found"] += 1
    return counts


def _write(conn: store.Connection, run_id: int, results: Sequence[Extracted]) -> Counter[str]:
    """Store the results of some pages, log their failures, mark them processed, count them on the run."""
    counts = load_articles(conn, [r.article for r in results if r.article is not None])
    failures = [r.failure for r in results if r.failure is not None]
    counts["extract_failed"] += len(failures)
    store.log_crawl(conn, run_id, failures)
    store.mark_processed(conn, [r.raw_page_id for r in results])
    with conn.cursor() as cur:
        cur.execute(_ADD_COUNTS, {name: int(counts.get(name, 0)) for name in COUNTERS} | {"run_id": run_id})
    return counts


def _load_batch(db_url: str, run_id: int, pages: list[dict], results: list[Extracted]) -> tuple[Counter[str], int]:
    """Write a batch in one transaction; return its counts and how many of its pages were written.

    Pages processed or taken by another worker meanwhile, or staged again since they were read,
    are left for that worker or for a later pass.
    """
    with store.connect(db_url) as conn:
        with conn.cursor() as cur:
            cur.execute(_LOCK_PAGES, ([p["raw_page_id"] for p in pages],))
            current = dict(cur.fetchall())
        mine = [r for p, r in zip(pages, results, strict=True) if current.get(p["raw_page_id"]) == p["fetched_at"]]
        if not mine:
            return Counter(), 0
        try:
            with conn.cursor() as cur:
                cur.execute("SAVEPOINT batch")
            counts = _write(conn, run_id, mine)
        except psycopg2.Error as exc:
            if is_transient(exc):
                raise
            # A page the database refuses (a text too long for its search vector, say) must not
            # block the run: write the pages one by one and record the ones refused.
            log.warning("batch refused (%s: %s); writing its %d pages one by one", type(exc).__name__, exc, len(mine))
            with conn.cursor() as cur:
                cur.execute("ROLLBACK TO SAVEPOINT batch")
            counts = _write_one_by_one(conn, run_id, pages, mine)
    return counts, len(mine)


def _write_one_by_one(
    conn: store.Connection, run_id: int, pages: list[dict], results: list[Extracted]
) -> Counter[str]:
    """Write each page under its own savepoint; a refused page becomes an extraction failure."""
    by_id = {p["raw_page_id"]: p for p in pages}
    counts: Counter[str] = Counter()
    for result in results:
        with conn.cursor() as cur:
            cur.execute("SAVEPOINT page")
        try:
            counts.update(_write(conn, run_id, [result]))
        except psycopg2.Error as exc:
            if is_transient(exc):
                raise
            with conn.cursor() as cur:
                cur.execute("ROLLBACK TO SAVEPOINT page")
            refused = Extracted(result.raw_page_id, failure=_failure(
                by_id[result.raw_page_id], type(exc).__name__, f"the database refused the article: {exc}"))
            counts.update(_write(conn, run_id, [refused]))
    return counts


def _next_pages(db_url: str, run_id: int, after: int, limit: int) -> list[dict]:
    """The next unprocessed pages of a run after a page id, oldest first (no lock kept)."""
    with store.connect(db_url) as conn, conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
        cur.execute(_NEXT_PAGES, (run_id, after, limit))
        return [dict(row) for row in cur.fetchall()]


def run_counts(db_url: str, run_id: int) -> dict[str, int]:
    """The processing counters of a run as stored: every committed batch of every attempt, once."""
    with store.connect(db_url) as conn, conn.cursor() as cur:
        cur.execute(_RUN_COUNTS, (run_id,))
        row = cur.fetchone()
    return dict(zip(COUNTERS, row or (0,) * len(COUNTERS), strict=True))


def _pending(db_url: str, run_id: int) -> int:
    """How many pages of a run wait for processing."""
    with store.connect(db_url) as conn, conn.cursor() as cur:
        cur.execute(_PENDING, (run_id,))
        return cur.fetchone()[0]


@contextmanager
def _extractor(settings: ProcessSettings, pending: int, expected: int = 0) -> Iterator[_Extractor]:
    """An extractor whose worker processes are always stopped afterwards."""
    extractor = _Extractor(settings, pending, expected)
    try:
        yield extractor
    finally:
        extractor.close()


def process_pages(
    db_url: str,
    run_id: int,
    progress: Progress | None = None,
    *,
    settings: ProcessSettings | None = None,
    more: Callable[[], bool] | None = None,
) -> dict[str, int]:
    """Process every staged page of a run; return the run's processing counters (all attempts).

    `more`, when given, says whether pages may still arrive (crawling goes on): the step then
    waits for them instead of stopping at the first empty read.
    """
    settings = settings or ProcessSettings.from_env()
    retry = retrying(settings.db_retry_seconds, f"processing run {run_id}")
    pending = retry(_pending, db_url, run_id)
    # While pages are still being crawled they arrive a few at a time, and extracting them here would take
    # this process (and the crawl threads' interpreter lock) away from loading: the pool takes the first page.
    expected = settings.pool_min_pages if more is not None and more() else 0
    with _extractor(settings, pending, expected) as extractor:
        _drain(db_url, run_id, extractor, settings, retry, progress, more)
    retry(_settle_failures, db_url, run_id, settings)
    retry(_forget_validators, db_url, run_id)
    return retry(run_counts, db_url, run_id)


def _settle_failures(db_url: str, run_id: int, settings: ProcessSettings) -> None:
    """Count the run's pages without text against their URLs; give up the URLs that keep failing."""
    with store.connect(db_url) as conn:
        given_up = store.settle_page_failures(conn, run_id, settings.give_up_after, settings.give_up_retry_days)
    if given_up:
        log.info("run %s: %d page(s) without text given up (see page_failures)", run_id, given_up)


def _forget_validators(db_url: str, run_id: int) -> None:
    """Make sources with pages that yielded no article read their feed in full next time."""
    with store.connect(db_url) as conn, conn.cursor() as cur:
        cur.execute(_FORGET_VALIDATORS, (run_id,))


def _drain(
    db_url: str,
    run_id: int,
    extractor: _Extractor,
    settings: ProcessSettings,
    retry: Retrying,
    progress: Progress | None,
    more: Callable[[], bool] | None,
) -> None:
    """Read batches ahead into the extractor and load them in page order until nothing is left.

    Page ids are handed out at insert time but become visible at commit, so a crawl that commits
    late leaves lower ids behind the read position: when nothing is in flight, reading starts
    again from the first page, and only a pass from the start that finds nothing ends the step.
    """
    inflight: deque[tuple[list[dict], Callable[[], list[Extracted]]]] = deque()
    after = 0
    while True:
        coming = more is not None and more()  # asked before reading: pages staged after it are seen
        while len(inflight) < max(settings.prefetch, 1):
            pages = retry(_next_pages, db_url, run_id, after, settings.batch_size)
            if not pages:
                break
            after = pages[-1]["raw_page_id"]
            inflight.append((pages, extractor.submit(pages)))
        if inflight:
            pages, results = inflight.popleft()
            counts, written = retry(_load_batch, db_url, run_id, pages, results())
            log.debug("run %s: batch of %d pages: %s", run_id, written, dict(counts))
            if progress and written:
                progress(written)
        elif after:
            after = 0
        elif coming:
            time.sleep(0.2)
        else:
            return
