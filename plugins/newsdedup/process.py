"""The processing step of a run: staged raw pages become extracted, cleaned, stored and clustered articles.

Exactly once per page: a batch's articles, removed segments, story decisions, extraction failures,
processed marks and run counters are written in one transaction. A batch that fails (PostgreSQL
restarted, task killed) leaves nothing behind and is done again by the retry, here or by Airflow.
Extraction and cleaning run in a process pool when there is enough work (`NEWSDEDUP_WORKERS`);
the database writes and story clustering stay in the calling process, one batch at a time, while
the pool extracts the next batches.

Several processes can process one run at once (the DAG's `process_shard` tasks): each batch is claimed
(`store.claim_pages`: row locks taken with SKIP LOCKED, held by an open transaction from the read to the
commit that writes the batch), so claimers get disjoint pages. A claimer that dies loses its connection
and with it its claims: its unprocessed pages go to whoever reads next (another claimer, the task's retry,
or the DAG's `finish_processing`, which processes whatever is left). Story clustering stays serialised
across processes by an advisory lock (`dedup_store.assign_clusters`).
"""

from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.forkserver
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
from dataclasses import dataclass

import psycopg2
import psycopg2.extras
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_delay, wait_exponential

from newsdedup import page_failures, run_counters, store
from newsdedup import settings as newsdedup_settings
from newsdedup.config import ConfigError
from newsdedup.dedup_records import Doc
from newsdedup.dedup_store import assign_clusters
from newsdedup.outcomes import Outcome
from newsdedup.page_extraction import Extracted, extract_page, extract_pages, failure_record

log = logging.getLogger(__name__)

Progress = Callable[[int], None]
CHUNK_PAGES = 16  # pages per unit of work sent to a worker (fewer when a batch is small)

_LOCK_PAGES = (
    "SELECT raw_page_id, fetched_at FROM raw_pages "
    "WHERE raw_page_id = ANY(%s) AND processed_at IS NULL FOR UPDATE SKIP LOCKED"
)
_PENDING = "SELECT count(*) FROM raw_pages WHERE run_id = %s AND processed_at IS NULL"
# A source whose pages yielded no article this run reads its feed in full next run (no 304), so
# the pages are fetched again once the site is repaired: the known-URL filter skips stored ones.
# Pages given up (outcome given_up, see page_failures.settle) are not waited for.
_FORGET_VALIDATORS = (
    "UPDATE sources SET etag = NULL, last_modified = NULL, child_validators = '{}'::jsonb "
    "WHERE source_id IN (SELECT source_id FROM crawl_log WHERE run_id = %s AND request_kind = 'extract' "
    "AND outcome = %s) "
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
class ProcessSettings(newsdedup_settings.FromSettings):
    """How processing uses the machine: batch size, extraction workers, retries (see newsdedup.settings)."""

    batch_size: int = newsdedup_settings.setting("batch_size")
    workers: int = newsdedup_settings.setting("workers", default_factory=_cpus)
    pool_min_pages: int = newsdedup_settings.setting("pool_min_pages")
    prefetch: int = 4  # batches extracted ahead while one is loaded
    db_retry_seconds: int = newsdedup_settings.setting("db_retry_seconds")
    page_timeout: float = newsdedup_settings.setting("page_timeout")
    give_up_after: int = newsdedup_settings.setting("give_up_after")
    give_up_retry_days: int = newsdedup_settings.setting("give_up_retry_days")


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


def _allow_children() -> None:
    """Let this process start worker processes when it descends from a Celery pool child."""
    # Celery's prefork pool (billiard) marks its children daemonic and makes its own process object
    # multiprocessing's current process; an Airflow task process forked from one (CeleryExecutor) inherits
    # both. multiprocessing then refuses to start a child (daemonic) or to pickle the authkey a new child
    # copies (billiard's type). The daemon flag guards against orphans; ours exit with the process that
    # started them (_watch_parent). So the flag is cleared and the same key given multiprocessing's type.
    config = multiprocessing.current_process()._config
    config["daemon"] = False
    config["authkey"] = multiprocessing.process.AuthenticationString(config["authkey"])


def _forget_inherited_fork_server() -> None:
    """In a forked child: drop the parent's fork server, so that the child's first pool starts its own."""
    # multiprocessing keeps one fork server per process and checks it with waitpid, which fails in a
    # forked child (ChildProcessError: the server is its parent's child). Its alive pipe is closed
    # here so that the parent's server still stops with the parent.
    server = multiprocessing.forkserver._forkserver
    if server._forkserver_pid is None:
        return
    os.close(server._forkserver_alive_fd)
    server._forkserver_pid = server._forkserver_address = server._forkserver_alive_fd = None


os.register_at_fork(after_in_child=_forget_inherited_fork_server)


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
        _allow_children()
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
                return self._result(future, self.page_timeout * len(chunk))
            except (FutureTimeout, BrokenProcessPool, CancelledError) as exc:
                if generation == self.generation and not isinstance(exc, CancelledError):
                    log.warning("extraction worker %s on %d page(s)", type(exc).__name__, len(chunk))
                    self._restart()
                    if len(chunk) == 1 and isinstance(exc, FutureTimeout):
                        return [self._given_up(chunk[0], exc)]  # it ran alone: the time was its own
                    return [self._alone(page) for page in chunk]
            # The pool was restarted for another chunk's sake: this one goes to the new pool whole.
            future, generation = self._submit(chunk), self.generation

    def _result(self, future: Future, seconds: float) -> object:
        """A future's result within `seconds`; a worker found dead while it is awaited breaks the pool at once."""
        # A worker killed while it writes a result leaves half a message in the pool's result pipe: the
        # pool's manager thread waits for the rest, never sees the death, and no future would end before
        # its time limit (60 s a page). So the workers are looked at once a second while waiting.
        deadline = time.monotonic() + seconds
        while True:
            try:
                return future.result(timeout=max(0.0, min(1.0, deadline - time.monotonic())))
            except FutureTimeout:
                if time.monotonic() >= deadline:
                    raise
                if any(p.exitcode is not None for p in list((self.pool._processes or {}).values())):
                    raise BrokenProcessPool("an extraction worker died while its result was being sent") from None

    def _alone(self, page: dict) -> Extracted:
        """Extract one page in the pool under the time limit; a timeout or a crash becomes its failure."""
        try:
            return self._result(self.pool.submit(extract_page, page), self.page_timeout)
        except (FutureTimeout, BrokenProcessPool) as exc:
            self._restart()
            return self._given_up(page, exc)

    def _given_up(self, page: dict, exc: BaseException) -> Extracted:
        """The failure record of a page whose extraction hung or killed its worker."""
        if isinstance(exc, FutureTimeout):
            reason = ("ExtractionTimeout", f"extraction took longer than {self.page_timeout} s")
        else:
            reason = ("WorkerCrashed", "the extraction process died on this page")
        return Extracted(page["raw_page_id"], failure=failure_record(page, *reason))

    def _restart(self) -> None:
        """Kill the pool's processes (a stuck one never returns) and start fresh ones."""
        if self.pool is None:
            return
        _discard(self.pool, grace=0)
        self.pool = self._new_pool()
        self.generation += 1

    def close(self, grace: float = 10) -> None:
        """Stop the worker processes: politely, then by force after `grace` seconds."""
        if self.pool is not None:
            _discard(self.pool, grace)
            self.pool = None


def _discard(pool: ProcessPoolExecutor, grace: float) -> None:
    """Stop a pool: its workers (given `grace` seconds to exit, then killed) and the threads that serve it.

    A worker killed while it waited for work dies holding the lock of the pool's task queue, so the others
    never read their stop signal: a plain `shutdown(wait=True)` would wait for ever. One killed while it
    wrote a result leaves the pool's manager thread reading half a message for ever, and the interpreter
    waits for that thread when it exits.
    """
    processes = list((pool._processes or {}).values())  # no public way to stop a running task
    results, manager = pool._result_queue, pool._executor_manager_thread
    pool.shutdown(wait=False, cancel_futures=True)
    deadline = time.monotonic() + grace
    for process in processes:
        process.join(max(0.0, deadline - time.monotonic()))
        if process.exitcode is None:
            process.kill()
            process.join(5)
    if results is not None:
        # The workers are gone; with this process's write end closed too, a read of a half-written
        # result ends (end of file) and the manager thread stops, failing whatever it still waited for.
        results._writer.close()
    if manager is not None:
        manager.join(10)
        if manager.is_alive():
            log.warning("extraction pool: its manager thread did not stop")


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
        # The processing counters, added to the run's row in each batch's transaction.
        values = {name: int(counts.get(name, 0)) for name in run_counters.PROCESS}
        cur.execute(run_counters.ADD_PROCESS_COUNTS, values | {"run_id": run_id})
    return counts


@dataclass
class _Claim:
    """A batch of claimed pages and the open transaction that holds their row locks."""

    conn: store.Connection | None
    pages: list[dict]

    def release(self) -> None:
        """End the transaction (rolled back if not committed) and with it the claim."""
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def _claim(db_url: str, run_id: int, after: int, limit: int) -> _Claim:
    """Claim the next unprocessed pages of a run after a page id; the claim holds a connection until loaded."""
    conn = store.open_connection(db_url)
    try:
        pages = store.claim_pages(conn, run_id, after, limit)
    except BaseException:
        conn.close()
        raise
    if not pages:
        conn.close()
        return _Claim(None, [])
    return _Claim(conn, pages)


def _load_claimed(
    db_url: str, run_id: int, claim: _Claim, results: list[Extracted], retry: Retrying
) -> tuple[Counter[str], int]:
    """Write a claimed batch in the claim's transaction; after a transient failure, retry on new connections."""
    try:
        with claim.conn:
            return _load_batch(claim.conn, run_id, claim.pages, results)
    except psycopg2.Error as exc:
        if not is_transient(exc):
            raise
        log.warning("run %s: claimed batch lost (%s); loading it again", run_id, type(exc).__name__)
    finally:
        claim.release()
    return retry(_load_fresh, db_url, run_id, claim.pages, results)


def _load_fresh(db_url: str, run_id: int, pages: list[dict], results: list[Extracted]) -> tuple[Counter[str], int]:
    """Write a batch in a transaction of its own (its claim was lost)."""
    with store.connect(db_url) as conn:
        return _load_batch(conn, run_id, pages, results)


def _load_batch(
    conn: store.Connection, run_id: int, pages: list[dict], results: list[Extracted]
) -> tuple[Counter[str], int]:
    """Write a batch in the caller's transaction; return its counts and how many of its pages were written.

    Pages processed or taken by another worker meanwhile, or staged again since they were read,
    are left for that worker or for a later pass (pages this transaction claimed are its own).
    """
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
            refused = Extracted(result.raw_page_id, failure=failure_record(
                by_id[result.raw_page_id], type(exc).__name__, f"the database refused the article: {exc}"))
            counts.update(_write(conn, run_id, [refused]))
    return counts


def run_counts(db_url: str, run_id: int) -> dict[str, int]:
    """The processing counters of a run as stored: every committed batch of every attempt, once."""
    with store.connect(db_url) as conn, conn.cursor() as cur:
        cur.execute(run_counters.SELECT_PROCESS_COUNTS, (run_id,))
        row = cur.fetchone()
    return dict(zip(run_counters.PROCESS, row or (0,) * len(run_counters.PROCESS), strict=True))


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
    return finish(db_url, run_id, settings)


def drain_pages(db_url: str, run_id: int, settings: ProcessSettings | None = None) -> int:
    """Process the run's staged pages that nobody else has claimed, until none is left; return how many.

    One of several processing tasks of a run: `finish` follows once they all ended.
    """
    settings = settings or ProcessSettings.from_env()
    retry = retrying(settings.db_retry_seconds, f"processing run {run_id}")
    with _extractor(settings, retry(_pending, db_url, run_id)) as extractor:
        return _drain(db_url, run_id, extractor, settings, retry, None, None)


def finish(db_url: str, run_id: int, settings: ProcessSettings | None = None) -> dict[str, int]:
    """After a run's pages are processed: settle the page failures, forget validators; return the run's counters."""
    settings = settings or ProcessSettings.from_env()
    retry = retrying(settings.db_retry_seconds, f"processing run {run_id}")
    retry(_settle_failures, db_url, run_id, settings)
    retry(_forget_validators, db_url, run_id)
    return retry(run_counts, db_url, run_id)


def _settle_failures(db_url: str, run_id: int, settings: ProcessSettings) -> None:
    """Count the run's pages without text against their URLs; give up the URLs that keep failing."""
    with store.connect(db_url) as conn:
        given_up = page_failures.settle(conn, run_id, settings.give_up_after, settings.give_up_retry_days)
    if given_up:
        log.info("run %s: %d page(s) without text given up (see page_failures)", run_id, given_up)


def _forget_validators(db_url: str, run_id: int) -> None:
    """Make sources with pages that yielded no article read their feed in full next time."""
    with store.connect(db_url) as conn, conn.cursor() as cur:
        cur.execute(_FORGET_VALIDATORS, (run_id, Outcome.EXTRACT_FAILED))


def _drain(
    db_url: str,
    run_id: int,
    extractor: _Extractor,
    settings: ProcessSettings,
    retry: Retrying,
    progress: Progress | None,
    more: Callable[[], bool] | None,
) -> int:
    """Claim batches ahead into the extractor and load them in page order until nothing is left; count pages.

    Page ids are handed out at insert time but become visible at commit, so a crawl that commits
    late leaves lower ids behind the read position: when nothing is in flight, reading starts
    again from the first page, and only a pass from the start that finds nothing ends the step.
    """
    inflight: deque[tuple[_Claim, Callable[[], list[Extracted]]]] = deque()
    after = total = 0
    try:
        while True:
            coming = more is not None and more()  # asked before reading: pages staged after it are seen
            while len(inflight) < max(settings.prefetch, 1):
                claim = retry(_claim, db_url, run_id, after, settings.batch_size)
                if not claim.pages:
                    break
                after = claim.pages[-1]["raw_page_id"]
                inflight.append((claim, extractor.submit(claim.pages)))
            if inflight:
                claim, results = inflight.popleft()
                counts, written = _load_claimed(db_url, run_id, claim, results(), retry)
                log.debug("run %s: batch of %d pages: %s", run_id, written, dict(counts))
                total += written
                if progress and written:
                    progress(written)
            elif after:
                after = 0
            elif coming:
                time.sleep(0.2)
            else:
                return total
    finally:
        for claim, _ in inflight:  # an error: the claims not loaded go back to the run
            claim.release()
