"""Hostile feeds: a depth bomb and a 200,000-item feed, read through the real fetch and discovery path.

Two feeds on a local HTTP server (127.0.0.1), each read by `sources.discover` as the crawl does:

- `deep.xml`: an RSS feed holding 1,000,000 nested elements (about 7 MB). Target: refused with a named
  outcome (`parse_error` / `TooDeep`) in under 2 s. Baseline in the same process: feedparser, which read
  it before the bounded pass existed, on the same document (`--baseline-depth` nested elements, default
  the full 1,000,000).
- `many.xml`: an RSS feed of 200,000 dated items (relative links, about 12 MB; NEWSDEDUP_MAX_PAGE_BYTES is
  raised to 32 MiB so the body is read). Target: at most NEWSDEDUP_MAX_FEED_ENTRIES (10,000) entries
  queued, the fetch recorded as `truncated`.

The peak resident memory of a crawl of both feeds is measured in a fresh child process (VmHWM: ru_maxrss
would include the parent's peak, which exec carries over), and so is, for comparison, feedparser alone
on the 200,000-item feed (what the crawl did before). Target: the crawl peaks under 400 MB.

    .venv/bin/python -m bench.hostile_feeds [--depth 1000000] [--items 200000] [--baseline-depth N]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "plugins"), str(REPO)]

import feedparser  # noqa: E402
from newsdedup.feedscan import ParseLimits  # noqa: E402
from newsdedup.fetch import Fetcher, FetchPolicy  # noqa: E402
from newsdedup.sources import Source, discover  # noqa: E402

from tests.httpfixtures import LocalHTTPServer, static  # noqa: E402

MAX_BODY = 32 * 1024 * 1024


def deep_feed(depth: int) -> bytes:
    """An RSS feed whose channel holds `depth` nested elements (7 bytes each)."""
    return b'<rss version="2.0"><channel><title>t</title>' + b"<x>" * depth + b"</x>" * depth + b"</channel></rss>"


def many_feed(items: int) -> bytes:
    """An RSS feed of `items` items with relative links, item i published i seconds after a start."""
    start = datetime(2026, 3, 14, tzinfo=UTC)
    parts = [
        f"<item><link>/a/{i}</link><pubDate>{(start + timedelta(seconds=i)).isoformat()}</pubDate></item>"
        for i in range(items)
    ]
    return f'<rss version="2.0"><channel><title>t</title>{"".join(parts)}</channel></rss>'.encode()


def crawl(server: LocalHTTPServer, path: str) -> tuple[float, dict]:
    """Discover one feed through the real fetcher; (seconds, what was recorded)."""
    policy = FetchPolicy(allow_networks=("127.0.0.0/8",), min_host_delay=0.0, max_bytes=MAX_BODY,
                         max_decompressed_bytes=2 * MAX_BODY, respect_robots=False)
    started = time.perf_counter()
    with Fetcher(policy) as fetcher:
        found = discover(Source(path, server.url(path), "rss"), fetcher, limits=ParseLimits.from_env({}))
    seconds = time.perf_counter() - started
    feed = found.fetches[0]
    return seconds, {"outcome": feed.outcome, "error_class": feed.error_class, "entries": len(found.entries),
                     "bytes": feed.nbytes, "message": feed.error_message}


def peak_mb() -> float:
    """This process's peak resident memory so far (VmHWM), in MB."""
    status = Path("/proc/self/status").read_text(encoding="ascii")
    return int(next(line for line in status.splitlines() if line.startswith("VmHWM:")).split()[1]) / 1024


def child(mode: str, depth: int, items: int) -> None:
    """In a fresh process: crawl both feeds (`crawl`) or feedparse the big one (`feedparser`); print JSON."""
    with LocalHTTPServer("127.0.0.1") as server:
        server.route("/deep.xml", static(deep_feed(depth), content_type="application/rss+xml"))
        server.route("/many.xml", static(many_feed(items), content_type="application/rss+xml"))
        base = peak_mb()
        if mode == "crawl":
            result = {name: crawl(server, f"/{name}.xml")[1] for name in ("deep", "many")}
        else:
            parsed = feedparser.parse(io.BytesIO(many_feed(items)))
            result = {"entries": len(parsed.entries)}
        result["peak_mb"] = peak_mb()
        result["start_mb"] = base
    print(json.dumps(result))


def in_child(mode: str, depth: int, items: int) -> dict:
    """Run `child` in a new interpreter and return its JSON."""
    done = subprocess.run(
        [sys.executable, "-m", "bench.hostile_feeds", "--child", mode, "--depth", str(depth), "--items", str(items)],
        cwd=REPO, capture_output=True, text=True, check=True, env=os.environ | {"PYTHONPATH": "plugins"},
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depth", type=int, default=1_000_000)
    parser.add_argument("--items", type=int, default=200_000)
    parser.add_argument("--baseline-depth", type=int, default=None, help="nesting of the feedparser baseline")
    parser.add_argument("--child", choices=("crawl", "feedparser"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.depth, args.items)
        return
    deep = deep_feed(args.depth)
    with LocalHTTPServer("127.0.0.1") as server:
        server.route("/deep.xml", static(deep, content_type="application/rss+xml"))
        server.route("/many.xml", static(many_feed(args.items), content_type="application/rss+xml"))
        deep_s, deep_rec = crawl(server, "/deep.xml")
        many_s, many_rec = crawl(server, "/many.xml")
    baseline_depth = args.baseline_depth or args.depth
    started = time.perf_counter()
    feedparser.parse(io.BytesIO(deep_feed(baseline_depth)))
    baseline_s = time.perf_counter() - started
    print(f"depth bomb: {len(deep) / 1e6:.1f} MB, {args.depth:,} nested elements: {deep_rec['outcome']}/"
          f"{deep_rec['error_class']} in {deep_s:.2f} s (fetch included); target < 2 s")
    print(f"  baseline, feedparser on {baseline_depth:,} nested elements: {baseline_s:.2f} s "
          f"(ratio {baseline_s / deep_s:.0f}x)")
    print(f"{args.items:,}-item feed, {many_rec['bytes'] / 1e6:.1f} MB: {many_rec['outcome']}/"
          f"{many_rec['error_class']}, {many_rec['entries']:,} entries queued in {many_s:.2f} s; target <= 10,000")
    crawl_mem = in_child("crawl", args.depth, args.items)
    parse_mem = in_child("feedparser", args.depth, args.items)
    print(f"peak RSS, fresh process crawling both feeds: {crawl_mem['peak_mb']:.0f} MB "
          f"(interpreter, server and both bodies before the crawl: {crawl_mem['start_mb']:.0f} MB); "
          f"{crawl_mem['many']['entries']:,} entries queued; target < 400 MB")
    print(f"  baseline, fresh process feedparsing the {args.items:,}-item feed: {parse_mem['peak_mb']:.0f} MB "
          f"({parse_mem['entries']:,} entries)")


if __name__ == "__main__":
    main()
