"""One slow source against the per-source time budget: issue 19's scenario, at its scale.

A slow outlet (127.0.0.2) announces 200 links whose pages each take 9 s to answer (inside the 30 s request
timeout, so the host back-off never triggers); a fast outlet (127.0.0.3) announces 10 pages. One
`pipeline.run_once` (`newsdedup ingest`) with NEWSDEDUP_SOURCE_BUDGET_SECONDS=20 and the other settings at
their defaults (request timeout 30 s, 1 s between requests to a host) is timed. The target: the run ends
within the budget plus one request timeout (50 s), and the fast outlet's pages are stored. Without a budget
the slow outlet alone takes 200 x 9 s = 1,800 s (computed, not run). A second run then shows that the links
not reached are read again (no 304) and fetched, as many as that run's budget allows.

It uses a private PostgreSQL under a new temporary folder (or NEWSDEDUP_BENCH_DB_URL); it reads nothing
from ../shared.

    .venv/bin/python -m bench.slow_source [--links 200] [--page-seconds 9] [--budget 20] [--fast 10]
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "plugins"), str(REPO)]

from newsdedup import pipeline, store  # noqa: E402
from newsdedup.config import Settings  # noqa: E402
from newsdedup.settings import load as load_settings  # noqa: E402

from bench import private_database  # noqa: E402
from tests.httpfixtures import LocalHTTPServer, RequestHandler, static  # noqa: E402

WORDS = """council harbour bridge minister budget school river election court hospital station market
weather storm festival museum library transport energy water farmers police report city province parliament
committee workers union prices housing airport railway teachers doctors ferry depot tram"""
VOCABULARY = WORDS.split()




def page(site: str, number: int) -> str:
    """A distinct article page."""
    rng = random.Random(f"{site}-{number}")
    title = " ".join(rng.choice(VOCABULARY) for _ in range(6)).capitalize()
    paragraphs = [" ".join(rng.choice(VOCABULARY) for _ in range(60)).capitalize() + "." for _ in range(4)]
    body = "".join(f"<p>{p}</p>" for p in paragraphs)
    return f"<!DOCTYPE html><html lang='en'><head><title>{title}</title></head><body><article><h1>{title}</h1>" \
        f"{body}</article></body></html>"


def outlet(host: str, links: int, seconds: float) -> LocalHTTPServer:
    """A site with an RSS feed of `links` pages, each answered after `seconds`."""
    server = LocalHTTPServer(host).start()
    items = "".join(f"<item><title>Story {n}</title><link>{server.url(f'/n/{n}')}</link></item>" for n in range(links))
    rss = f"<?xml version='1.0'?><rss version='2.0'><channel><title>{host}</title>{items}</channel></rss>"
    server.route("/feed.xml", static(rss, content_type="application/rss+xml"))

    def slow_page(h: RequestHandler, n: int) -> None:
        if not h.pause(seconds):
            h.reply(200, page(host, n))

    for n in range(links):
        server.route(f"/n/{n}", lambda h, n=n: slow_page(h, n))
    return server


def count(db_url: str, sql: str, *params: object) -> int:
    """A count from the article database."""
    with store.connect(db_url) as conn, conn.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchone()[0]


def main(argv: list[str] | None = None) -> int:
    """Run the scenario once (and a second run); print a Markdown table; exit 1 when the target is missed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--links", type=int, default=200)
    parser.add_argument("--page-seconds", type=float, default=9.0)
    parser.add_argument("--budget", type=int, default=20)
    parser.add_argument("--fast", type=int, default=10)
    args = parser.parse_args(argv)
    os.environ.update(
        NEWSDEDUP_ALLOW_NETWORKS="127.0.0.0/8", NEWSDEDUP_SOURCE_BUDGET_SECONDS=str(args.budget), NEWSDEDUP_WORKERS="1"
    )
    timeout = load_settings().fetch_timeout
    resources = ExitStack()
    db_url = resources.enter_context(private_database())
    slow, fast = outlet("127.0.0.2", args.links, args.page_seconds), outlet("127.0.0.3", args.fast, 0.0)
    try:
        with store.connect(db_url) as conn:
            store.migrate(conn)
        sources = Path(resources.enter_context(tempfile.TemporaryDirectory(prefix="newsdedup-bench-"))) / "sources.yaml"
        sources.write_text(
            f"sources:\n  - {{name: slow, url: '{slow.url('/feed.xml')}', kind: rss}}\n"
            f"  - {{name: fast, url: '{fast.url('/feed.xml')}', kind: rss}}\n"
        )
        settings = Settings(db_url=db_url, sources_path=sources)
        per_source = "SELECT count(*) FROM articles JOIN sources USING (source_id) WHERE name = %s"
        rows = []
        for run in (1, 2):
            started = time.perf_counter()
            row = pipeline.run_once(settings, run_key=f"slow-source-{run}")
            seconds = time.perf_counter() - started
            rows.append((run, seconds, count(db_url, per_source, "slow"), count(db_url, per_source, "fast"), row))
        bound = args.budget + timeout
        print(
            f"\n{args.links} slow links at {args.page_seconds:g} s, budget {args.budget} s, request timeout "
            f"{timeout:g} s (bound {bound:g} s; unbudgeted: {args.links * args.page_seconds:,.0f} s), "
            f"{args.fast} fast pages\n"
        )
        print("| run | wall s | slow articles stored (total) | fast articles stored | run status |")
        print("|--:|--:|--:|--:|---|")
        for run, seconds, slow_n, fast_n, row in rows:
            print(f"| {run} | {seconds:.1f} | {slow_n} | {fast_n} | {row['status']} |")
        first = rows[0]
        met = first[1] <= bound and first[3] == args.fast and rows[1][2] > first[2]
        verdict = "met" if met else "MISSED"
        print(f"\ntarget (run 1 within {bound:g} s, fast outlet stored, run 2 fetches more): {verdict}")
        return 0 if met else 1
    finally:
        slow.stop()
        fast.stop()
        resources.close()


if __name__ == "__main__":
    raise SystemExit(main())
