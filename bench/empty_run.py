"""A run with nothing to extract: what not starting the extraction pool saves.

The demo site is ingested once; every later run finds its feeds unchanged (304) and has no page to
extract, the common case of an hourly run. Such runs are timed (wall clock) two ways in turn, in the
same process against the same database and site:

- now: `pipeline.run_once` as shipped, which starts worker processes only for pages in hand;
- before: the same run under the previous rule, which started the pool at once whenever crawls were
  still going on when processing began (`_Extractor(settings, max(pending, pool_min_pages))`),
  put in place of `process._extractor` for those rounds only.

Pools started are counted from the "extraction pool: ... started" log lines. It uses a private
PostgreSQL under a new temporary folder (or NEWSDEDUP_BENCH_DB_URL) and reads the demo site's seed
from ../shared when present (its own Turkish seed otherwise).

    .venv/bin/python -m bench.empty_run [--rounds 5] [--workers 2]
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "plugins"), str(REPO)]

from newsdedup import pipeline, polling, process, store  # noqa: E402
from newsdedup.config import Settings  # noqa: E402

from bench import private_database  # noqa: E402
from demo import site as demo_site  # noqa: E402


@contextmanager
def eager_extractor(settings: process.ProcessSettings, pending: int, expected: int = 0) -> Iterator:
    """The previous rule: the pool started at once for the pages a running crawl might still bring."""
    extractor = process._Extractor(settings, max(pending, expected))
    try:
        yield extractor
    finally:
        extractor.close()


class PoolCounter(logging.Handler):
    """Counts the extraction pools started (newsdedup.process logs each start)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.started = 0

    def emit(self, record: logging.LogRecord) -> None:
        """Count a pool start."""
        self.started += record.getMessage().startswith("extraction pool:")


def timed_run(settings: Settings, counter: PoolCounter, eager: bool) -> tuple[float, int, dict]:
    """One run with nothing to extract: seconds, pools started, the run's row."""
    shipped = process._extractor
    if eager:
        process._extractor = eager_extractor
    before = counter.started
    with store.connect(settings.db_url) as conn:
        polling.due_now(conn)  # every feed read again (answering 304), as if its next poll had come
    try:
        started = time.perf_counter()
        row = pipeline.run_once(settings)
        seconds = time.perf_counter() - started
    finally:
        process._extractor = shipped
    return seconds, counter.started - before, row


def main(argv: list[str] | None = None) -> int:
    """Time runs with nothing to extract, now and under the previous rule; print a Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2, help="NEWSDEDUP_WORKERS")
    args = parser.parse_args(argv)
    os.environ.update(
        NEWSDEDUP_ALLOW_NETWORKS="127.0.0.0/8", NEWSDEDUP_MIN_HOST_DELAY="0", NEWSDEDUP_WORKERS=str(args.workers)
    )
    counter = PoolCounter()
    logging.getLogger("newsdedup.process").addHandler(counter)
    logging.getLogger("newsdedup.process").setLevel(logging.INFO)
    resources = ExitStack()
    db_url = resources.enter_context(private_database())
    site = demo_site.start()
    folder = tempfile.TemporaryDirectory(prefix="newsdedup-bench-")
    try:
        with store.connect(db_url) as conn:
            store.migrate(conn)
        sources = Path(folder.name) / "sources.yaml"
        demo_site.write_sources(site, sources)
        settings = Settings(db_url=db_url, sources_path=sources)
        first = pipeline.run_once(settings)
        print(f"first run: {first['articles_new']} articles stored, {counter.started} pool started")
        times: dict[str, list[float]] = {"now": [], "before": []}
        pools = {"now": 0, "before": 0}
        for _ in range(args.rounds):
            for name in ("before", "now"):
                seconds, started, row = timed_run(settings, counter, eager=name == "before")
                assert row["pages_fetched"] == 0 and row["articles_new"] == 0, row
                times[name].append(seconds)
                pools[name] += started
        now, before = statistics.median(times["now"]), statistics.median(times["before"])
        print(f"\n{args.rounds} rounds, {args.workers} workers, runs with 0 pages to extract (feeds answered 304)\n")
        print("| rule | median s per run | pools started | runs |")
        print("|---|--:|--:|--:|")
        print(f"| before: pool at once while crawls run | {before:.2f} | {pools['before']} | {args.rounds} |")
        print(f"| now: pool only for pages in hand | {now:.2f} | {pools['now']} | {args.rounds} |")
        print(f"\nsaved per run: {before - now:.2f} s; a run now takes {now / before:.2f} of the time")
        return 0 if pools["now"] == 0 and pools["before"] == args.rounds else 1
    finally:
        site.stop()
        folder.cleanup()
        resources.close()


if __name__ == "__main__":
    raise SystemExit(main())
