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

Then a whole run: `pipeline.run_once` (`newsdedup ingest`) in a fresh child process, on a private
PostgreSQL, with both feeds as sources and every linked page answering with an article of its own, a
source budget of `--run-budget` seconds and no host delay, so that thousands of pages are fetched,
extracted, cleaned, signed, compared and stored. Reported: the run process's peak (VmHWM), the largest
resident size of one of its extraction workers, and the whole process tree's proportional set size (PSS:
the pages workers share with the forkserver that preloaded the libraries counted once), sampled every
0.2 s from /proc (the workers are the forkserver's children, not the run's). Target: under 400 MB.

    .venv/bin/python -m bench.hostile_feeds [--depth 1000000] [--items 200000] [--baseline-depth N]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import threading
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


def article_page(number: int) -> bytes:
    """An English article page of its own for the many-item feed's link /a/<number>."""
    words = " ".join(f"w{number}x{k}" for k in range(12))
    paragraphs = "".join(
        f"<p>Report {number}, part {k}: the council of district {number % 97} met on {words} and agreed "
        f"that the plan numbered {number * 7 + k} goes ahead after {k + 3} weeks of public hearings.</p>"
        for k in range(6)
    )
    return (f"<!DOCTYPE html><html lang='en'><head><title>Council report {number}</title></head><body><article>"
            f"<h1>Council report {number}</h1>{paragraphs}</article></body></html>").encode()


class _Routes(dict):
    """The server's route table, answering every /a/<number> path with its article page."""

    def get(self, path: str, default: object = None) -> object:  # type: ignore[override]
        """The handler of a path: an article for /a/<number>, else the fixed routes."""
        tail = path.removeprefix("/a/")
        if tail != path and tail.isdigit():
            return static(article_page(int(tail)))
        return super().get(path, default)


def _memory_mb(pid: int, field: str = "VmRSS:", name: str = "status") -> float:
    """A memory field of /proc/<pid>/<name> in MB (0 when the process has gone)."""
    try:
        lines = Path(f"/proc/{pid}/{name}").read_text(encoding="ascii").splitlines()
    except OSError:
        return 0.0
    return next((int(line.split()[1]) / 1024 for line in lines if line.startswith(field)), 0.0)


def _pss_mb(pid: int) -> float:
    """Proportional set size in MB: pages shared with the forkserver and the other workers counted once."""
    return _memory_mb(pid, "Pss:", "smaps_rollup")


def _descendants(root: int) -> list[int]:
    """Every process below `root`, from the parent pids in /proc."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text(encoding="ascii").rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


class TreeSampler:
    """Samples, in a thread, the largest child process and the whole process tree's resident size."""

    def __init__(self, every: float = 0.2) -> None:
        self.every, self.child_mb, self.tree_mb = every, 0.0, 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            pids = _descendants(os.getpid())
            self.child_mb = max(self.child_mb, *map(_memory_mb, pids), 0.0)
            self.tree_mb = max(self.tree_mb, sum(map(_pss_mb, [os.getpid(), *pids])))

    def __enter__(self) -> TreeSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()


def ingest_child(urls: dict[str, str]) -> None:
    """In a fresh process: one whole run over both feeds' sources; print its counts and peaks as JSON."""
    import tempfile

    from newsdedup import pipeline, store
    from newsdedup.config import Settings

    db_url = os.environ["HOSTILE_RUN_DB_URL"]
    with store.connect(db_url) as conn:
        store.migrate(conn)
    with tempfile.TemporaryDirectory() as folder:
        sources = Path(folder) / "sources.yaml"
        sources.write_text("sources:\n" + "".join(
            f"  - {{name: {name}, url: '{url}', kind: rss}}\n" for name, url in urls.items()))
        with TreeSampler() as sampler:
            result = pipeline.run_once(Settings(db_url=db_url, sources_path=sources), run_key="hostile-feeds")
    with store.connect(db_url) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM articles")
        articles = cur.fetchone()[0]
    print(json.dumps({"status": result.get("status"), "articles": articles, "run_peak_mb": peak_mb(),
                      "worker_peak_mb": sampler.child_mb, "tree_peak_mb": sampler.tree_mb}))


def whole_run(depth: int, items: int, budget: int) -> dict:
    """Serve both feeds and their pages here; run `ingest_child` in a new interpreter on a private database."""
    from bench import private_database

    with LocalHTTPServer("127.0.0.1") as server, private_database("hostile") as db_url:
        server.routes = _Routes(server.routes)
        server.route("/deep.xml", static(deep_feed(depth), content_type="application/rss+xml"))
        server.route("/many.xml", static(many_feed(items), content_type="application/rss+xml"))
        env = os.environ | {
            "PYTHONPATH": "plugins", "HOSTILE_RUN_DB_URL": db_url, "NEWSDEDUP_ALLOW_NETWORKS": "127.0.0.0/8",
            "NEWSDEDUP_MIN_HOST_DELAY": "0", "NEWSDEDUP_SOURCE_BUDGET_SECONDS": str(budget),
            "NEWSDEDUP_MAX_PAGE_BYTES": str(MAX_BODY), "NEWSDEDUP_RETRIES": "0",
        }
        urls = json.dumps({"deep-feed": server.url("/deep.xml"), "many-feed": server.url("/many.xml")})
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "bench.hostile_feeds", "--child", "ingest", "--urls", urls],
            cwd=REPO, capture_output=True, text=True, env=env, check=False,
        )
        if done.returncode:
            raise SystemExit(f"the ingest child failed:\n{done.stderr[-3000:]}")
        found = json.loads(done.stdout.strip().splitlines()[-1])
        found["seconds"] = time.perf_counter() - started
        found["pages_served"] = sum(1 for r in server.requests if r.route.startswith("/a/"))
    return found


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
    parser.add_argument("--run-budget", type=int, default=60, help="source budget (s) of the whole run")
    parser.add_argument("--child", choices=("crawl", "feedparser", "ingest"), help=argparse.SUPPRESS)
    parser.add_argument("--urls", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child == "ingest":
        ingest_child(json.loads(args.urls))
        return
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
    run = whole_run(args.depth, args.items, args.run_budget)
    print(f"whole ingest run over both feeds (source budget {args.run_budget} s, every link an article): "
          f"{run['pages_served']:,} pages served, {run['articles']:,} articles stored, status {run['status']}, "
          f"{run['seconds']:.0f} s; peak RSS of the run process {run['run_peak_mb']:.0f} MB, of the largest "
          f"extraction worker {run['worker_peak_mb']:.0f} MB (sampled); the whole process tree "
          f"{run['tree_peak_mb']:.0f} MB PSS; target < 400 MB")


if __name__ == "__main__":
    main()
