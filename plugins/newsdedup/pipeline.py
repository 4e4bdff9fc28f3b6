"""One ingestion run, step by step: begin, crawl each source, process pages, finish.

The Airflow DAG calls these steps as tasks; `newsdedup ingest` calls them in one process.
Steps hand over through PostgreSQL (raw_pages), so each can be retried on its own.
"""

from __future__ import annotations

import logging
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import psycopg2

from newsdedup import process, store
from newsdedup.config import ConfigError, Settings, redact
from newsdedup.fetch import HTML_TYPES, Fetcher, FetchPolicy, FetchResult
from newsdedup.sources import FeedEntry, discover, load_sources

log = logging.getLogger(__name__)

CRAWL_THREADS = 32
BATCH_SIZE = 50
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
        return store.sync_sources(conn, sources)


def begin_run(db_url: str, run_key: str, trigger: str) -> dict:
    """Start (or resume) a run; return its id and the names of the sources to crawl."""
    with store.connect(db_url) as conn:
        names = [s.source.name for s in store.enabled_sources(conn)]
        run_id = store.start_run(conn, run_key, trigger, len(names))
    return {"run_id": run_id, "sources": names}


def crawl_source(db_url: str, run_id: int, source_name: str, fetcher: Fetcher | None = None) -> dict:
    """Discover one source's new article URLs, fetch them and stage the pages in raw_pages.

    A problem of the source (unreachable or hostile feed, bad pages, even a bug tripped by odd input)
    never raises: the report says `failed` and why, and every request is in crawl_log. Only a lost
    database connection raises, so that Airflow retries the task.
    """
    own_fetcher = fetcher is None
    fetcher = fetcher or Fetcher(FetchPolicy.from_env())
    if fetcher.robots.store is None:
        # Every crawl process of the deployment shares one robots.txt copy per origin.
        fetcher.robots.store = store.RobotsTable(db_url)
    counts: Counter[str] = Counter()
    report: dict = {"source": source_name, "failed": False, "error": None}
    try:
        _crawl(db_url, run_id, source_name, fetcher, counts, report)
    except Exception as exc:
        if _is_infrastructure(exc):
            raise
        log.exception("source %s: crawl failed", source_name)
        report.update(failed=True, error=redact(f"{type(exc).__name__}: {exc}")[:1000])
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
    if found.error:
        report.update(failed=True, error=found.error)
        return
    if found.not_modified:
        counts["feeds_not_modified"] += 1
        return
    counts["urls_discovered"] = len(found.entries)
    urls = [e.url for e in found.entries]
    with store.connect(db_url) as conn:
        known, given_up = store.known_urls(conn, urls), store.given_up_urls(conn, urls)
    todo = [e for e in found.entries if _needs_fetch(e, known)]
    counts["urls_skipped_known"] = len(found.entries) - len(todo)
    if given_up:
        # Pages that never yielded text are not fetched again, unless the feed says they changed since.
        fresh = [e for e in todo if _needs_fetch(e, given_up)]
        counts["urls_given_up"] = len(todo) - len(fresh)
        todo = fresh
    over = max(len(todo) - source.article_limit, 0)
    if over:
        # Newest first; the rest waits for the next run (the validators are not kept, see below).
        todo = _newest_first(todo)[: source.article_limit]
        counts["urls_over_limit"] = over
    complete = not found.incomplete and not over
    for start in range(0, len(todo), BATCH_SIZE):
        batch = todo[start : start + BATCH_SIZE]
        complete &= _fetch_batch(db_url, run_id, stored.source_id, batch, fetcher, counts, source.rate_limit)
    feed = found.fetches[0]
    with store.connect(db_url) as conn:
        if complete:
            store.save_source_state(conn, stored.source_id, feed.etag, feed.last_modified, found.children)
        else:
            # Something is left to fetch: without validators the next run reads the feed again
            # instead of getting a 304 that would hide the pages still missing.
            store.save_source_state(conn, stored.source_id, None, None, {})


def _is_infrastructure(exc: BaseException) -> bool:
    """True for errors of the article database itself (worth a task retry), not of a source."""
    if isinstance(exc, psycopg2.OperationalError | psycopg2.InterfaceError):
        return True
    return isinstance(exc, ConfigError) and isinstance(exc.__cause__, psycopg2.OperationalError)


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
) -> bool:
    """Fetch a batch of article pages, write them and their crawl records in one transaction.

    Return False when a page failed for a reason that may go away (timeout, 5xx, 429, back-off).
    """
    pages: list[store.RawPage] = []
    records: list[store.CrawlRecord] = []
    complete = True
    for entry in entries:
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
        else:
            counts["pages_failed"] += 1
            complete &= not _may_recover(result)
    with store.connect(db_url) as conn:
        store.log_crawl(conn, run_id, records)
        store.save_raw_pages(conn, run_id, pages)
    return complete


def _may_recover(result: FetchResult) -> bool:
    """True for failures worth another try in a later run."""
    if result.outcome == "http_error":
        return result.status == 429 or (result.status or 0) >= 500
    return result.outcome in ("timeout", "connection_error", "deferred")


def process_pages(db_url: str, run_id: int, progress: Progress | None = None) -> dict:
    """Extract, clean, store and cluster every staged page of a run (see `newsdedup.process`)."""
    return process.process_pages(db_url, run_id, progress)


def _load(conn: store.Connection, articles: list[store.ArticleRow]) -> Counter[str]:
    """Store a batch of articles, their removed segments, and the story clusters of the new ones."""
    return process.load_articles(conn, articles)


def _process_batch(batch: list[dict]) -> tuple[list[store.ArticleRow], list[store.CrawlRecord]]:
    """Turn raw pages into article rows; pages without an article become crawl_log records."""
    results = process.extract_pages(batch)
    return [r.article for r in results if r.article], [r.failure for r in results if r.failure]


def finish_run(db_url: str, run_id: int, reports: list[dict], processed: dict) -> dict:
    """Add up the per-source reports and the processing counts and close the run."""
    totals: Counter[str] = Counter(processed)
    for report in reports:
        totals.update({k: v for k, v in report.items() if isinstance(v, int) and not isinstance(v, bool)})
        totals["sources_failed"] += int(bool(report.get("failed")))
    if reports and totals["sources_failed"] == len(reports):
        status = "failed"
    elif totals["sources_failed"] or totals["pages_failed"] or totals["extract_failed"]:
        status = "partial"
    else:
        status = "success"
    with store.connect(db_url) as conn:
        row = store.finish_run(conn, run_id, dict(totals), status)
    # XCom-safe: Airflow passes this dict between tasks as JSON.
    row = {k: v.isoformat() if isinstance(v, datetime) else v for k, v in row.items()}
    row["failed_sources"] = [r["source"] for r in reports if r.get("failed")]
    return row


def run_once(settings: Settings, *, run_key: str | None = None, progress: bool = False) -> dict:
    """A whole run without Airflow: sync sources, crawl them (in parallel), process, finish.

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
    # One thread per source (mostly waiting on the network and politeness delays), as the DAG's mapped tasks;
    # the Fetcher's global connection limit still caps requests in flight.
    crawlers = max(1, min(CRAWL_THREADS, len(run["sources"])))
    with Fetcher(policy) as fetcher, ThreadPoolExecutor(max_workers=crawlers) as pool:
        futures = [
            pool.submit(process.retrying(retry_seconds, f"crawl {name}"), crawl_source, db_url, run_id, name, fetcher)
            for name in run["sources"]
        ]
        for future in futures:
            future.add_done_callback(lambda _: bar(1))
        processed = process.process_pages(
            db_url,
            run_id,
            _progress_bar(progress, None, "pages"),
            settings=process_settings,
            more=lambda: not all(f.done() for f in futures),
        )
        reports = [future.result() for future in futures]
    return process.retrying(retry_seconds, f"run {run_id}")(finish_run, db_url, run_id, reports, processed)


def _progress_bar(enabled: bool, total: int | None, unit: str) -> Progress:
    """Return a callback that advances a tqdm bar on a terminal, or does nothing."""
    if not enabled:
        return lambda n: None
    from tqdm import tqdm

    bar = tqdm(total=total, unit=f" {unit}", leave=True)
    return bar.update
