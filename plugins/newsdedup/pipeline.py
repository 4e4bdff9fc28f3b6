"""One ingestion run, step by step: begin (plan), crawl the due sources, process pages, finish.

The Airflow DAG calls these steps as tasks (one crawl task per shard of sources, several processing
tasks); `newsdedup ingest` calls them in one process, over the same plan. Steps hand over through
PostgreSQL (raw_pages), so each can be retried on its own.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import Counter
from collections.abc import Callable, Collection
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime

import psycopg2

from newsdedup import page_failures, polling, process, run_counters, run_report, shards, store
from newsdedup.airflow_helpers import SHARD_START_WINDOW
from newsdedup.config import ConfigError, Settings, redact
from newsdedup.content import HTML_TYPES
from newsdedup.feeds import FeedEntry
from newsdedup.fetch import Fetcher, FetchPolicy
from newsdedup.outcomes import FetchResult, Outcome, worth_retry
from newsdedup.settings import load as load_settings
from newsdedup.sources import discover, load_sources
from newsdedup.textsafe import one_line

log = logging.getLogger(__name__)

CRAWL_THREADS = 32
BATCH_SIZE = 50
GONE_STATUSES = frozenset({404, 410})  # a stored article's page answering these was removed by its publisher
Progress = Callable[[int], None]


def _record(result: FetchResult, source_id: int, kind: str) -> store.CrawlRecord:
    """Turn a fetch result into a crawl_log record."""
    return store.CrawlRecord(
        url=result.url,
        request_kind=kind,
        outcome=result.outcome,
        source_id=source_id,
        final_url=result.final_url,
        http_status=result.status,
        nbytes=result.nbytes,
        elapsed_ms=result.elapsed_ms,
        error_class=result.error_class,
        error_message=result.error_message,
    )


def _records(result: FetchResult, source_id: int, kind: str) -> list[store.CrawlRecord]:
    """crawl_log records of one fetch: the robots.txt requests it caused, then the request itself."""
    return [_record(r, source_id, "robots") for r in result.robots] + [_record(result, source_id, kind)]


def sync_sources(settings: Settings) -> dict[str, int]:
    """Load the sources file and write it to the sources table."""
    sources = load_sources(settings.sources_path)
    with store.connect(settings.db_url) as conn:
        counts = store.sync_sources(conn, sources)
        polling.save_overrides(conn, sources)
        return counts


def begin_run(db_url: str, run_key: str, trigger: str, crawl_shards: int | None = None) -> dict:
    """Plan and start (or resume) a run: its id, when it was planned, its due sources by shard, all their names.

    `shards` holds per shard its index, the shard count and how many sources it crawls: a crawl task
    plans its own shard again with `planned_at` (see `shard_sources`), so the plan stays small in XCom.
    """
    count = crawl_shards or load_settings().crawl_shards
    planned_at = datetime.now(UTC)
    with store.connect(db_url) as conn:
        plans = shards.plan(conn, count, planned_at)
        names = sorted(name for plan in plans for name in plan.sources)
        run_id = store.start_run(conn, run_key, trigger, len(names))
    return {
        "run_id": run_id,
        "planned_at": planned_at.isoformat(),
        "shards": [plan.to_dict() | {"sources": len(plan.sources)} for plan in plans],
        "sources": names,
    }


def shard_sources(db_url: str, shard: int, crawl_shards: int, planned_at: str | None = None) -> list[str]:
    """The due sources of one shard at the time the run was planned (now if not given)."""
    when = datetime.fromisoformat(planned_at) if planned_at else None
    with store.connect(db_url) as conn:
        return shards.plan(conn, crawl_shards, when)[shard].sources


def crawl_source(db_url: str, run_id: int, source_name: str, fetcher: Fetcher | None = None) -> dict:
    """Discover one source's new article URLs, fetch them and stage the pages in raw_pages.

    A problem of the source (unreachable or hostile feed, bad pages, even a bug tripped by odd input)
    never raises: the report says `failed` and why, and every request is in crawl_log. Only a lost
    database connection raises, so that Airflow retries the task. No request starts after the source's
    time budget (NEWSDEDUP_SOURCE_BUDGET_SECONDS): links not reached are left for the next run.
    """
    deadline = time.monotonic() + load_settings().source_budget_seconds
    own_fetcher = fetcher is None
    fetcher = fetcher or Fetcher(FetchPolicy.from_env())
    if fetcher.robots.store is None:
        # Every crawl process of the deployment shares one robots.txt copy per origin.
        fetcher.robots.store = store.RobotsTable(db_url)
    counts: Counter[str] = Counter()
    report: dict = {"source": source_name, "failed": False, "error": None}
    try:
        _crawl(db_url, run_id, source_name, fetcher.until(deadline), counts, report)
    except Exception as exc:
        if _is_infrastructure(exc):
            raise
        log.exception("source %s: crawl failed", source_name)
        report.update(failed=True, error=one_line(redact(f"{type(exc).__name__}: {exc}"), 1000))
    finally:
        if own_fetcher:
            fetcher.close()
    log.info("source %s: %s%s", source_name, dict(counts), f" FAILED: {report['error']}" if report["failed"] else "")
    return report | dict(counts)


def _crawl(db_url: str, run_id: int, source_name: str, fetcher: Fetcher, counts: Counter, report: dict) -> None:
    """The body of crawl_source: discovery, known-URL filter, the per-run limit, fetching, validators."""
    with store.connect(db_url) as conn:
        stored = store.get_source(conn, source_name)
    source = stored.source
    found = discover(
        source,
        fetcher,
        etag=stored.etag,
        last_modified=stored.last_modified,
        children=stored.child_validators,
    )
    with store.connect(db_url) as conn:
        store.log_crawl(conn, run_id, [rec for r in found.fetches for rec in _records(r, stored.source_id, "feed")])
        if found.error or found.not_modified:  # nothing new to count: the schedule learns from it now
            polling.record_poll(conn, stored.source_id, polling.observe(found, 0), datetime.now(UTC))
    if found.error:
        report.update(failed=True, error=found.error)
        return
    if found.not_modified:
        counts["feeds_not_modified"] += 1
        return
    counts["urls_discovered"] = len(found.entries)
    urls = [e.url for e in found.entries]
    with store.connect(db_url) as conn:
        known, given_up = store.known_urls(conn, urls), page_failures.given_up_urls(conn, urls)
        gone = store.gone_urls(conn, urls)
        new = sum(url not in known and url not in given_up for url in urls)
        polling.record_poll(conn, stored.source_id, polling.observe(found, new), datetime.now(UTC))
    todo = [e for e in found.entries if _needs_fetch(e, known)]
    counts["urls_skipped_known"] = len(found.entries) - len(todo)
    # Pages that never yielded text, and stored articles whose page answered 404/410, are not fetched
    # again, unless the feed says they changed since.
    todo = _skip(todo, given_up, counts, "urls_given_up")
    todo = _skip(todo, gone, counts, "urls_gone")
    over = max(len(todo) - source.article_limit, 0)
    if over:
        # Newest first; the rest waits for the next run (the validators are not kept, see below).
        todo = _newest_first(todo)[: source.article_limit]
        counts["urls_over_limit"] = over
    complete = not found.incomplete and not over
    for start in range(0, len(todo), BATCH_SIZE):
        batch = todo[start : start + BATCH_SIZE]
        complete &= _fetch_batch(db_url, run_id, stored.source_id, batch, fetcher, counts, source.rate_limit, known)
    if counts["urls_over_budget"]:
        log.warning(
            "source %s: time budget used up, %d links left for the next run", source_name, counts["urls_over_budget"]
        )
    feed = found.fetches[0]
    with store.connect(db_url) as conn:
        if complete:
            store.save_source_state(conn, stored.source_id, feed.etag, feed.last_modified, found.children)
        else:
            # Something is left to fetch: without validators the next run reads the feed again
            # instead of getting a 304 that would hide the pages still missing.
            store.save_source_state(conn, stored.source_id, None, None, {})
            polling.due_again(conn, stored.source_id)


def _is_infrastructure(exc: BaseException) -> bool:
    """True for errors of the article database itself (worth a task retry), not of a source."""
    if isinstance(exc, psycopg2.OperationalError | psycopg2.InterfaceError):
        return True
    return isinstance(exc, ConfigError) and isinstance(exc.__cause__, psycopg2.OperationalError)


def _skip(todo: list[FeedEntry], since: dict[str, datetime], counts: Counter, key: str) -> list[FeedEntry]:
    """The entries of todo not in `since`, or announced as changed after the time it gives; count the rest."""
    if not since:
        return todo
    fresh = [e for e in todo if _needs_fetch(e, since)]
    counts[key] = len(todo) - len(fresh)
    return fresh


def _newest_first(entries: list[FeedEntry]) -> list[FeedEntry]:
    """Entries by announced date, newest first; undated ones last, in feed order."""
    floor = datetime.min.replace(tzinfo=UTC)
    return sorted(entries, key=lambda e: e.published_at or e.updated_at or floor, reverse=True)


def _needs_fetch(entry: FeedEntry, known: dict[str, datetime]) -> bool:
    """Fetch URLs not in `known`, and those the source says changed after the time `known` gives."""
    fetched_at = known.get(entry.url)
    if fetched_at is None:
        return True
    return entry.updated_at is not None and entry.updated_at > fetched_at


def _fetch_batch(
    db_url: str,
    run_id: int,
    source_id: int,
    entries: list[FeedEntry],
    fetcher: Fetcher,
    counts: Counter,
    rate_limit: float | None = None,
    stored: Collection[str] = (),
) -> bool:
    """Fetch a batch of article pages, write them and their crawl records in one transaction.

    Return False when a page failed for a reason that may go away (timeout, 5xx, 429, back-off), or was
    not reached within the source's time budget. A stored article (URL in `stored`) whose page answers
    404 or 410 is marked gone instead of failed.
    """
    pages: list[store.RawPage] = []
    records: list[store.CrawlRecord] = []
    gone: dict[str, int] = {}
    complete = True
    for entry in entries:
        if fetcher.out_of_time():
            counts["urls_over_budget"] += 1  # not fetched, not failed: the next run reads the feed in full
            complete = False
            continue
        result = fetcher.get(entry.url, accept_types=HTML_TYPES, host_delay=rate_limit)
        records.extend(_records(result, source_id, "article"))
        if result.ok and result.text is not None:
            # An empty page is staged too: processing records it as extract_failed.
            counts["pages_fetched"] += 1
            pages.append(
                store.RawPage(
                    source_id,
                    entry.url,
                    result.final_url,
                    result.status,
                    result.content_type,
                    result.encoding,
                    result.text,
                    entry.title,
                    entry.published_at,
                )
            )
        elif entry.url in stored and result.outcome == Outcome.HTTP_ERROR and result.status in GONE_STATUSES:
            counts["pages_gone"] += 1
            gone[entry.url] = result.status
        else:
            counts["pages_failed"] += 1
            complete &= not worth_retry(result, later=True)
    back = [p.url for p in pages if p.url in stored]
    with store.connect(db_url) as conn:
        store.log_crawl(conn, run_id, records)
        store.save_raw_pages(conn, run_id, pages)
        store.mark_gone(conn, gone, back)
    return complete


def process_pages(db_url: str, run_id: int, progress: Progress | None = None) -> dict:
    """Extract, clean, store and cluster every staged page of a run (see `newsdedup.process`)."""
    return process.process_pages(db_url, run_id, progress)


def finish_run(db_url: str, run_id: int, reports: list[dict], processed: dict) -> dict:
    """Add up the per-source reports and the processing counts and close the run."""
    totals: Counter[str] = Counter(processed)
    for report in reports:
        totals.update({k: v for k, v in report.items() if isinstance(v, int) and not isinstance(v, bool)})
        totals["sources_failed"] += int(bool(report.get("failed")))
    if reports and totals["sources_failed"] == len(reports):
        status = "failed"
    elif run_counters.errors(totals):
        status = "partial"
    else:
        status = "success"
    with store.connect(db_url) as conn:
        row = store.finish_run(conn, run_id, dict(totals), status)
    # XCom-safe: Airflow passes this dict between tasks as JSON.
    row = {k: v.isoformat() if isinstance(v, datetime) else v for k, v in row.items()}
    row["failed_sources"] = [r["source"] for r in reports if r.get("failed")]
    return row


def _crawl_and_record(db_url: str, run_id: int, source_name: str, fetcher: Fetcher, start_by: float) -> dict | None:
    """crawl_source, then its row in source_runs with its failure streak; None when started too late."""
    if time.monotonic() > start_by:
        return None  # not crawled, not recorded: still due next run
    row = run_report.record_crawl(db_url, run_id, crawl_source(db_url, run_id, source_name, fetcher))
    if message := run_report.streak_message(row, run_report.fail_after_runs()):
        log.warning("%s", message)
    return row


def _start_crawls(
    pool: ThreadPoolExecutor, db_url: str, run_id: int, names: list[str], fetcher: Fetcher, retry_seconds: float
) -> list[Future]:
    """Crawl and record each source in the pool; none starts after SHARD_START_WINDOW."""
    start_by = time.monotonic() + SHARD_START_WINDOW.total_seconds()  # the rest stay due for the next run
    return [
        pool.submit(
            process.retrying(retry_seconds, f"crawl {name}"), _crawl_and_record, db_url, run_id, name, fetcher, start_by
        )
        for name in names
    ]


def crawl_shard(db_url: str, run_id: int, names: list[str]) -> dict:
    """Crawl a shard's sources concurrently (one Fetcher: per-host politeness holds) and record each.

    Return the shard's rows (source_runs, with failure streaks) and how many sources were left for the
    next run. A source's failure is in its row; only a database failure raises.
    """
    retry_seconds = process.ProcessSettings.from_env().db_retry_seconds
    with Fetcher(FetchPolicy.from_env()) as fetcher, ThreadPoolExecutor(max_workers=_threads(names)) as pool:
        rows = [future.result() for future in _start_crawls(pool, db_url, run_id, names, fetcher, retry_seconds)]
    return {"rows": [row for row in rows if row is not None], "deferred": sum(row is None for row in rows)}


def _threads(names: list[str]) -> int:
    """Crawl threads for some sources: one per source up to CRAWL_THREADS (they mostly wait on the network)."""
    return max(1, min(CRAWL_THREADS, len(names)))


def run_once(settings: Settings, *, run_key: str | None = None, progress: bool = False) -> dict:
    """A whole run without Airflow: sync sources, plan, crawl the due ones (in parallel), process, finish.

    It writes what a news_ingest DAG run writes: pipeline_runs, and source_runs per source, summarised.

    Pages are processed while the sources are still being crawled; steps that hit a transient
    database failure (a restart, say) are retried, as Airflow retries the DAG's tasks.
    """
    process_settings = process.ProcessSettings.from_env()  # settings first: a bad one writes nothing
    policy = FetchPolicy.from_env()
    sync_sources(settings)
    run = begin_run(settings.db_url, run_key or f"cli__{uuid.uuid4().hex[:12]}", "cli")
    db_url, run_id = settings.db_url, run["run_id"]
    retry_seconds = process_settings.db_retry_seconds
    bar = _progress_bar(progress, len(run["sources"]), "sources")
    # The due sources of every shard, in threads as the DAG's crawl_shard tasks crawl theirs; the Fetcher's
    # global connection limit still caps requests in flight.
    with Fetcher(policy) as fetcher, ThreadPoolExecutor(max_workers=_threads(run["sources"])) as pool:
        futures = _start_crawls(pool, db_url, run_id, run["sources"], fetcher, retry_seconds)
        for future in futures:
            future.add_done_callback(lambda _: bar(1))
        processed = process.process_pages(
            db_url,
            run_id,
            _progress_bar(progress, None, "pages"),
            settings=process_settings,
            more=lambda: not all(f.done() for f in futures),
        )
        for future in futures:
            future.result()  # a crawl that failed for good (the database, not the source) fails the run
    retry = process.retrying(retry_seconds, f"run {run_id}")
    retry(run_report.summarise_sources, db_url, run_id)
    # As the DAG's report task: the run's totals are added up from the rows recorded in source_runs.
    return retry(finish_run, db_url, run_id, retry(run_report.crawl_reports, db_url, run_id), processed)


def _progress_bar(enabled: bool, total: int | None, unit: str) -> Progress:
    """Return a callback that advances a tqdm bar on a terminal, or does nothing."""
    if not enabled:
        return lambda n: None
    from tqdm import tqdm

    bar = tqdm(total=total, unit=f" {unit}", leave=True)
    return bar.update
