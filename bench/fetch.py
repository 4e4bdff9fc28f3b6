"""Crawl speed against the politeness lower bound, and the cost of a second run against unchanged feeds.

20 local news sites on distinct loopback addresses (127.0.0.2 .. 127.0.0.21: the per-host delay is
keyed by host name, so ports of one address would be one site), each answering every request after
30 ms, each with robots.txt, an RSS feed and 50 articles. NEWSDEDUP_MIN_HOST_DELAY is 0.5 s.

Run 1 crawls every source in parallel the way the Airflow DAG does (one crawl_source per source,
all at once, one process-wide connection limit), then processes the pages. Per site that is
robots.txt + feed + 50 articles = 52 requests, so no polite crawler can finish a site faster than
51 gaps of 0.5 s: the lower bound is 25.5 s (the issue's round figure: 50 x 0.5 s = 25 s).

Run 2 crawls the same unchanged sites again: it must send only conditional requests for the feeds
(answered 304) and fetch no article. Requests are counted at the servers.

    .venv/bin/python -m bench.fetch [--hosts 20] [--articles 50] [--delay 0.5] [--latency 0.03] [--via run_once]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "plugins"), str(REPO)]

from newsdedup import pipeline, store  # noqa: E402
from newsdedup.config import Settings  # noqa: E402
from newsdedup.fetch import Fetcher, FetchPolicy  # noqa: E402

from bench import private_database  # noqa: E402
from tests.httpfixtures import LocalHTTPServer, RequestHandler  # noqa: E402

WORDS = """council harbour bridge minister budget school river election court hospital station market
weather storm festival museum library transport energy water farmers police report city province
parliament committee workers union prices housing airport railway teachers doctors"""
VOCABULARY = WORDS.split()




def article(host: int, number: int) -> str:
    """A distinct article page."""
    rng = random.Random(host * 1000 + number)
    title = " ".join(rng.choice(VOCABULARY) for _ in range(6)).capitalize()
    paragraphs = [
        " ".join(rng.choice(VOCABULARY) for _ in range(60)).capitalize() + f". Site {host}, story {number}."
        for _ in range(4)
    ]
    body = "".join(f"<p>{p}</p>" for p in paragraphs)
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
        f'<meta property="article:published_time" content="2026-03-14T{number % 24:02d}:00:00Z"></head>'
        f"<body><article><h1>{title}</h1>{body}</article></body></html>"
    )


class Site:
    """One news site on its own loopback address, with a request log by kind."""

    def __init__(self, index: int, articles: int, latency: float) -> None:
        self.index = index
        self.latency = latency
        self.server = LocalHTTPServer(host=f"127.0.0.{index + 2}").start()
        self.pages = {f"/a/{n}.html": article(index, n) for n in range(articles)}
        items = "".join(
            f"<item><title>Story {n}</title><link>{self.server.url(path)}</link></item>"
            for n, path in enumerate(self.pages)
        )
        channel = f"<channel><title>Site {index}</title>{items}</channel>"
        self.feed = f'<?xml version="1.0"?><rss version="2.0">{channel}</rss>'
        self.etag = '"' + hashlib.sha256(self.feed.encode()).hexdigest()[:16] + '"'
        self.counts: Counter[str] = Counter()
        self.lock = threading.Lock()
        self.server.route("/robots.txt", self.handle)
        self.server.route("/feed.xml", self.handle)
        for path in self.pages:
            self.server.route(path, self.handle)

    def count(self, kind: str) -> None:
        with self.lock:
            self.counts[kind] += 1

    def handle(self, h: RequestHandler) -> None:
        """Answer after the added latency; count robots, conditional and unconditional feed, article requests."""
        time.sleep(self.latency)
        path = h.path.split("?")[0]
        if path == "/robots.txt":
            self.count("robots.txt")
            h.reply(200, "User-agent: *\nAllow: /\n", content_type="text/plain")
        elif path == "/feed.xml":
            conditional = "If-None-Match" in h.headers or "If-Modified-Since" in h.headers
            if h.headers.get("If-None-Match") == self.etag:
                self.count("feed 304")
                h.reply(304, headers={"ETag": self.etag}, content_type=None)
            else:
                self.count("feed conditional 200" if conditional else "feed unconditional")
                h.reply(200, self.feed, headers={"ETag": self.etag}, content_type="application/rss+xml")
        else:
            self.count("article")
            h.reply(200, self.pages[path])


def crawl(settings: Settings, via: str) -> tuple[dict, float, float]:
    """One run; return its summary, the crawl seconds and the processing seconds."""
    if via == "run_once":
        started = time.perf_counter()
        row = pipeline.run_once(settings)
        return row, time.perf_counter() - started, 0.0
    pipeline.sync_sources(settings)
    run = pipeline.begin_run(settings.db_url, f"bench__{uuid.uuid4().hex[:12]}", "cli")
    started = time.perf_counter()
    # Like the DAG's mapped crawl_source tasks: every source at once, one Fetcher (one process-wide limit).
    with Fetcher(FetchPolicy.from_env()) as fetcher, ThreadPoolExecutor(max_workers=len(run["sources"])) as pool:
        reports = list(
            pool.map(lambda name: pipeline.crawl_source(settings.db_url, run["run_id"], name, fetcher), run["sources"])
        )
    crawled = time.perf_counter() - started
    processed = pipeline.process_pages(settings.db_url, run["run_id"])
    row = pipeline.finish_run(settings.db_url, run["run_id"], reports, processed)
    return row, crawled, time.perf_counter() - started - crawled


def main() -> int:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hosts", type=int, default=20)
    parser.add_argument("--articles", type=int, default=50)
    parser.add_argument("--delay", type=float, default=0.5, help="NEWSDEDUP_MIN_HOST_DELAY, seconds")
    parser.add_argument("--latency", type=float, default=0.03, help="added to every response, seconds")
    parser.add_argument(
        "--via",
        choices=("tasks", "run_once"),
        default="tasks",
        help="tasks: one crawl_source per source in parallel, like the DAG (default); run_once: `newsdedup ingest`",
    )
    args = parser.parse_args()
    os.environ.update(
        {
            "NEWSDEDUP_ALLOW_NETWORKS": "127.0.0.0/8",
            "NEWSDEDUP_MIN_HOST_DELAY": str(args.delay),
        }
    )
    resources = ExitStack()
    db_url = resources.enter_context(private_database())
    sites = [Site(i, args.articles, args.latency) for i in range(args.hosts)]
    try:
        with store.connect(db_url) as conn:
            store.migrate(conn)
        folder = resources.enter_context(tempfile.TemporaryDirectory(prefix="newsdedup-bench-"))
        sources_path = Path(folder) / "sources.yaml"
        sources = [{"name": f"site{s.index:02d}", "url": s.server.url("/feed.xml"), "kind": "rss"} for s in sites]
        sources_path.write_text(yaml.safe_dump({"sources": sources}), encoding="utf-8")
        settings = Settings(db_url=db_url, sources_path=sources_path)
        requests = 2 + args.articles  # robots.txt, feed, articles
        bound = (requests - 1) * args.delay + args.latency
        print(
            f"{args.hosts} hosts x {args.articles} articles, {1000 * args.latency:.0f} ms latency, "
            f"{args.delay} s per-host delay, crawl via {args.via}"
        )

        row, crawled, processed = crawl(settings, args.via)
        counts = sum((s.counts for s in sites), Counter())
        print(f"\nrun 1: {row['status']}, {row['pages_fetched']} pages fetched, {row['articles_new']} articles stored")
        print(f"  requests at the servers: {dict(sorted(counts.items()))}")
        print(f"  crawl {crawled:.1f} s; lower bound {bound:.2f} s ({requests - 1} gaps of {args.delay} s per host)")
        print(f"  ratio to the lower bound: {crawled / bound:.3f} (to 50 x 0.5 s = 25 s: {crawled / 25:.3f})")
        if processed:
            print(f"  then processing {processed:.1f} s (extract, clean, deduplicate {row['articles_new']} articles)")

        for site in sites:
            site.counts.clear()
        row2, crawled2, _ = crawl(settings, args.via)
        counts2 = sum((s.counts for s in sites), Counter())
        print(f"\nrun 2 (unchanged feeds): {row2['status']}, {row2['feeds_not_modified']} feeds not modified")
        print(f"  requests at the servers: {dict(sorted(counts2.items()))}")
        print(f"  crawl {crawled2:.1f} s, article requests {counts2['article']}, pages fetched {row2['pages_fetched']}")
        ok = (
            row["articles_new"] == args.hosts * args.articles
            and counts2["article"] == 0
            and counts2["feed 304"] == args.hosts
            and counts2["feed unconditional"] == 0
        )
        print(f"\nsecond run made only conditional feed requests and fetched no article: {ok}")
        return 0 if ok else 1
    finally:
        for site in sites:
            site.server.stop()
        resources.close()


if __name__ == "__main__":
    raise SystemExit(main())
