"""Load benchmark: a generated news site of N articles on H hosts (127.0.0.x), ingested run after run.

The site publishes its articles in R rounds; after each round one `pipeline.run_once` (the code path
of `newsdedup ingest`, the same steps as the DAG) crawls every host's RSS feed (all made due first:
this measures runs that read every feed, not the polling schedule), fetches the new pages
and processes them. About 30 % of the articles are syndicated copies of an article on another host
(verbatim, shortened, with a dateline or a credit line, lightly edited, re-headlined), 10 % repeat their
headline in the first paragraph. Pages are about 60 KB (menus, scripts, lists of other articles), made on
request from the article number: the site holds no corpus in memory.

Reported: articles per minute end to end, resident memory of the pipeline process (and its extraction
workers) after every round, PostgreSQL bytes per article, and the time of the dedup step per 1,000 articles
in the first and the last round; the stories found against the site's ground truth.

    .venv/bin/python bench/load.py --articles 100000            # the full load (about 35 min here)
    .venv/bin/python bench/load.py --articles 3000 --runs 3     # a quick look

It starts its own PostgreSQL (bench.private_database: a new private folder under /tmp, fsync off) and removes
it afterwards unless --keep (or uses NEWSDEDUP_BENCH_DB_URL).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from functools import lru_cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit
from xml.sax.saxutils import escape

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "plugins"), str(REPO)]

log = logging.getLogger("bench.load")

T0 = datetime(2026, 3, 1, 6, 0, tzinfo=UTC)
COPY_SHARE = 0.3
HEADLINE_REPEAT_SHARE = 0.1
FEED_EXTRA = 20  # a feed lists the round's new articles and this many older ones


# --------------------------------------------------------------------------- the corpus, by article number


class Corpus:
    """Article g lives on host g % hosts as that host's article number g // hosts; copies point back."""

    def __init__(self, articles: int, hosts: int, seed: int = 7) -> None:
        """A corpus of `articles` over `hosts` hosts."""
        self.articles, self.hosts, self.seed = articles, hosts, seed
        rng = random.Random(seed)
        self.vocab = [_word(rng) for _ in range(6000)]
        self.names = [_word(rng).capitalize() for _ in range(800)]
        weights = [1 / (i + 1) ** 1.05 for i in range(len(self.vocab))]
        total = 0.0
        self.cum = []
        for w in weights:
            total += w
            self.cum.append(total)

    def host_of(self, g: int) -> int:
        """Host number of article g."""
        return g % self.hosts

    def number_of(self, g: int) -> int:
        """Article number of g on its host."""
        return g // self.hosts

    def article(self, host: int, number: int) -> int:
        """Global number of a host's article."""
        return number * self.hosts + host

    def source_of(self, g: int) -> int | None:
        """The article g copies (on another host, published before it), or None for an original."""
        rng = random.Random(self.seed * 1_000_003 + g)
        if g < 3 * self.hosts or rng.random() >= COPY_SHARE:
            return None
        for _ in range(8):
            back = rng.randrange(1, 3 * self.hosts)
            if back % self.hosts:
                return g - back
        return None

    def story_of(self, g: int) -> int:
        """The original at the root of g's copies (its story id)."""
        while (source := self.source_of(g)) is not None:
            g = source
        return g

    def published(self, g: int) -> datetime:
        """Publication time: a host publishes one article a minute."""
        return T0 + timedelta(minutes=self.number_of(g), seconds=self.host_of(g))

    @lru_cache(maxsize=4096)  # noqa: B019 - one corpus per process; the cache is the point
    def body(self, story: int) -> tuple[str, tuple[str, ...]]:
        """Headline and paragraphs of an original story."""
        rng = random.Random(self.seed * 7_919 + story)
        words = lambda n: rng.choices(self.vocab, cum_weights=self.cum, k=n)  # noqa: E731
        cast = rng.sample(self.names, 6)
        title = " ".join([rng.choice(cast), *words(rng.randint(5, 9))]).capitalize()
        paragraphs = []
        for _ in range(rng.randint(6, 14)):
            sentences = []
            for _ in range(rng.randint(2, 5)):
                body = words(rng.randint(8, 24))
                body.insert(rng.randrange(len(body)), rng.choice(cast))
                if rng.random() < 0.3:
                    body.insert(rng.randrange(len(body)), str(rng.randint(2, 9_999)))
                sentence = " ".join(body)
                sentences.append(sentence[0].upper() + sentence[1:] + rng.choice(".....?!"))
            paragraphs.append(" ".join(sentences))
        return title, tuple(paragraphs)

    def page(self, g: int) -> tuple[str, list[str], str]:
        """Headline, paragraphs and author of article g as its host prints it."""
        story = self.story_of(g)
        title, paragraphs = self.body(story)
        paras = list(paragraphs)
        rng = random.Random(self.seed * 104_729 + g)
        author = f"{rng.choice(self.names)} {rng.choice(self.names)}"
        if g != story:
            kind = rng.choice(("whole", "shortened", "dateline", "credit", "copyedit", "reheadline"))
            if kind == "shortened":
                paras = paras[: max(2, round(len(paras) * rng.uniform(0.6, 0.85)))]
            elif kind == "dateline":
                paras[0] = f"{rng.choice(self.names).upper()} (Wire) - {paras[0]}"
            elif kind == "credit":
                paras.append(f"Reporting by {author}; editing by {rng.choice(self.names)} {rng.choice(self.names)}.")
            elif kind == "copyedit":
                i = rng.randrange(len(paras))
                words = paras[i].split()
                for _ in range(max(1, len(words) // 25)):
                    words[rng.randrange(len(words))] = rng.choice(self.vocab)
                paras[i] = " ".join(words)
            elif kind == "reheadline":
                title = " ".join(rng.choices(self.vocab, k=7)).capitalize()
        if rng.random() < HEADLINE_REPEAT_SHARE:
            paras.insert(0, title)
        return title, paras, author


def _word(rng: random.Random) -> str:
    """A pronounceable made-up word."""
    return "".join(rng.choice("bcdfghklmnprstvyz") + rng.choice("aeiou") for _ in range(rng.randint(1, 4)))


# --------------------------------------------------------------------------- pages


@lru_cache(maxsize=64)
def _chrome(host: int) -> tuple[str, str, str, str]:
    """A host's page furniture: head assets, navigation and footer (the bulk of a real news page)."""
    rng = random.Random(host)
    site = f"The {_word(rng).capitalize()} {rng.choice(['Herald', 'Post', 'Times', 'Courier', 'Gazette'])}"
    script = "".join(
        f"function f{i}(a,b){{var c=a*{rng.randint(2, 99)}+b;return c.toString(36)+'{_word(rng)}';}}"
        for i in range(600)
    )
    style = "".join(f".c{i}{{margin:{i % 7}px;color:#{rng.randrange(1 << 24):06x}}}" for i in range(300))
    head = f"<style>{style}</style><script>{script}</script>"
    sections = [_word(rng).capitalize() for _ in range(12)]
    nav = "<nav class='menu'><ul>" + "".join(
        f"<li><a href='/section/{s.lower()}'>{s}</a><ul>"
        + "".join(f"<li><a href='/{s.lower()}/{_word(rng)}'>{_word(rng).capitalize()}</a></li>" for _ in range(8))
        + "</ul></li>"
        for s in sections
    ) + "</ul></nav>"
    footer = "<footer class='site-footer'>" + "".join(
        f"<div class='col'><h4>{_word(rng).capitalize()}</h4><ul>"
        + "".join(f"<li><a href='/p/{_word(rng)}'>{_word(rng).capitalize()} {_word(rng)}</a></li>" for _ in range(10))
        + "</ul></div>"
        for _ in range(5)
    ) + f"<p>&copy; 2026 {site}. All rights reserved.</p></footer>"
    return site, head, nav, footer


def article_html(corpus: Corpus, g: int, base: str) -> str:
    """The page of article g; `base` is its host's URL."""
    host = corpus.host_of(g)
    title, paras, author = corpus.page(g)
    site, head, nav, footer = _chrome(host)
    when = corpus.published(g).isoformat()
    number = corpus.number_of(g)
    others = [corpus.body(corpus.story_of(corpus.article(host, n)))[0] for n in range(max(0, number - 12), number)]
    related = "".join(
        f"<li><a href='{base}/news/{number - len(others) + i}.html'>{escape(t)}</a></li>" for i, t in enumerate(others)
    )
    body = "".join(f"<p>{escape(p)}</p>" for p in paras)
    layout = host % 3
    if layout == 0:
        byline = f"<p class='byline'>By {author}</p><time datetime='{when}'></time>"
        main = f"<article><h1>{escape(title)}</h1>{byline}{body}</article>"
    elif layout == 1:
        main = f"<div class='story'><h1 class='headline'>{escape(title)}</h1><div class='story-body'>{body}</div></div>"
    else:
        main = f"<main><div id='content'><h1>{escape(title)}</h1><section class='text'>{body}</section></div></main>"
    ld = json.dumps({"@context": "https://schema.org", "@type": "NewsArticle", "headline": title,
                     "datePublished": when, "author": {"@type": "Person", "name": author}})
    return (
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{escape(title)} - {site}</title>"
        f"<meta property='og:title' content='{escape(title, {chr(39): '&#39;'})}'>"
        f"<meta property='article:published_time' content='{when}'><meta name='author' content='{author}'>"
        f"<link rel='canonical' href='{base}/news/{number}.html'>"
        f"<script type='application/ld+json'>{ld}</script>{head}</head><body>"
        f"<header><a class='logo' href='/'>{site}</a>{nav}</header>{main}"
        f"<aside class='most-read'><h3>Most read</h3><ol>{related}</ol></aside>"
        f"<div class='comments'><h3>Comments</h3><p>Comments are closed.</p></div>{footer}</body></html>"
    )


def feed_xml(corpus: Corpus, host: int, upto: int, base: str, size: int) -> str:
    """RSS of a host's latest `size` articles among its first `upto`."""
    items = []
    for number in range(upto - 1, max(0, upto - size) - 1, -1):
        g = corpus.article(host, number)
        if g >= corpus.articles:
            continue
        title = corpus.page(g)[0]
        items.append(
            f"<item><title>{escape(title)}</title><link>{base}/news/{number}.html</link>"
            f"<pubDate>{format_datetime(corpus.published(g))}</pubDate></item>"
        )
    return (
        "<?xml version='1.0' encoding='utf-8'?><rss version='2.0'><channel>"
        f"<title>{escape(_chrome(host)[0])}</title><link>{base}/</link>{''.join(items)}</channel></rss>"
    )


# --------------------------------------------------------------------------- the site server (a subprocess)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    host_no: int


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as news sites do
    disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms delayed-ACK stall
    server: _Server
    state: dict = {}

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        """Feed, article pages, robots.txt, and /_publish?upto=N on any host to release articles."""
        corpus: Corpus = self.state["corpus"]
        host = self.server.host_no
        base = f"http://127.0.0.{host + 1}:{self.server.server_address[1]}"
        parts = urlsplit(self.path)
        path = parts.path
        upto = self.state["upto"]
        if path == "/_publish":
            self.state["upto"] = int(parse_qs(parts.query)["upto"][0])
            return self._send(200, "text/plain", b"ok")
        if path == "/robots.txt":
            return self._send(200, "text/plain", b"User-agent: *\nAllow: /\n")
        if path == "/feed.xml":
            body = feed_xml(corpus, host, upto, base, self.state["feed_size"])
            return self._send(200, "application/rss+xml; charset=utf-8", body.encode())
        if path.startswith("/news/") and path.endswith(".html"):
            try:
                number = int(path[6:-5])
            except ValueError:
                number = -1
            g = corpus.article(host, number)
            if 0 <= number < upto and g < corpus.articles:
                if self.state["delay"]:
                    time.sleep(self.state["delay"])
                return self._send(200, "text/html; charset=utf-8", article_html(corpus, g, base).encode())
        self._send(404, "text/plain", b"not found")

    def _send(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


def serve(articles: int, hosts: int, port: int, feed_size: int, delay_ms: int = 0) -> None:
    """Serve every host on 127.0.0.<h+1>:port until SIGTERM; article pages take at least `delay_ms`."""
    _Handler.state = {"corpus": Corpus(articles, hosts), "upto": 0, "feed_size": feed_size, "delay": delay_ms / 1000}
    servers = []
    for h in range(hosts):
        server = _Server((f"127.0.0.{h + 1}", port), _Handler)
        server.host_no = h
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print("ready", flush=True)
    stop.wait()


def free_port_on_hosts(hosts: int) -> int:
    """A port free on every 127.0.0.x address the site binds."""
    for _ in range(50):
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        probe.close()
        try:
            for h in range(1, hosts):
                with socket.socket() as s:
                    s.bind((f"127.0.0.{h + 1}", port))
            return port
        except OSError:
            continue
    raise RuntimeError("no port free on all 127.0.0.x addresses")


class Site:
    """The generated site in a subprocess (so its CPU use is not the pipeline's GIL's)."""

    def __init__(self, articles: int, hosts: int, feed_size: int, delay_ms: int = 0) -> None:
        """Start the server and wait until it listens."""
        self.corpus = Corpus(articles, hosts)
        self.hosts, self.port = hosts, free_port_on_hosts(hosts)
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "serve", "--articles", str(articles), "--hosts", str(hosts),
             "--port", str(self.port), "--feed-size", str(feed_size), "--delay-ms", str(delay_ms)],
            stdout=subprocess.PIPE, text=True,
        )
        assert self.proc.stdout is not None and self.proc.stdout.readline().strip() == "ready"

    def base(self, host: int) -> str:
        """URL of a host."""
        return f"http://127.0.0.{host + 1}:{self.port}"

    def publish(self, upto: int) -> None:
        """Release every host's first `upto` articles."""
        import requests

        requests.get(f"{self.base(0)}/_publish", params={"upto": upto}, timeout=10).raise_for_status()

    def write_sources(self, path: Path) -> None:
        """One RSS source per host."""
        lines = ["sources:"]
        for h in range(self.hosts):
            lines += [f"  - name: host{h:02d}", f"    url: {self.base(h)}/feed.xml", "    kind: rss"]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")

    def story_of_url(self, url: str) -> int:
        """Ground truth: the story id of an article URL of this site."""
        parts = urlsplit(url)
        host = int((parts.hostname or "").rsplit(".", 1)[1]) - 1
        return self.corpus.story_of(self.corpus.article(host, int(parts.path[6:-5])))

    def stop(self) -> None:
        """Stop the server."""
        self.proc.terminate()
        self.proc.wait(10)


# --------------------------------------------------------------------------- measuring


TICK = os.sysconf("SC_CLK_TCK")


def _processes() -> dict[int, tuple[int, float, str]]:
    """Every process: parent id, CPU seconds used so far, command name (from /proc/<pid>/stat)."""
    table = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            head, rest = stat.rsplit(")", 1)
            fields = rest.split()
            table[int(entry)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / TICK, head.split("(", 1)[1])
    return table


def _tree(table: dict[int, tuple[int, float, str]], root: int, exclude: set[int]) -> list[int]:
    """A process and its descendants, leaving out `exclude` and theirs."""
    tree, frontier = [], [root]
    while frontier:
        pid = frontier.pop()
        tree.append(pid)
        frontier += [p for p, (pp, _, _) in table.items() if pp == pid and p not in exclude]
    return tree


def _rss_mb(pid: int) -> float:
    """VmRSS of a process in MB (0 when it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _peak_mb() -> float:
    """VmHWM (peak resident size) of this process in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _machine_busy() -> float:
    """CPU seconds the whole machine has spent busy (all cores; idle, iowait and steal left out)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    return (sum(values) - values[3] - values[4] - values[7]) / TICK


class Sampler:
    """Every half second: resident memory of this process and its extraction workers, and CPU time by part.

    CPU seconds are kept per process (the last value seen), so the extraction workers, which exit at the end
    of each run, are counted up to their last half second. Parts: the pipeline (this process and its
    descendants), the site server, PostgreSQL; and the machine as a whole from /proc/stat.
    """

    def __init__(self, site_pid: int) -> None:
        """Start sampling in a daemon thread."""
        self.site_pid = site_pid
        self.parent = self.worker = 0.0
        self.cpu: dict[int, tuple[str, float]] = {}
        self.mark: dict[int, float] = {}
        self.busy_mark, self.wall_mark = _machine_busy(), time.perf_counter()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            self.sample()

    def sample(self) -> None:
        """Take one sample."""
        table = _processes()
        pipeline = _tree(table, os.getpid(), {self.site_pid})
        sizes = {pid: _rss_mb(pid) for pid in pipeline}
        with self._lock:
            self.parent = max(self.parent, sizes.get(os.getpid(), 0.0))
            self.worker = max([self.worker, *(mb for pid, mb in sizes.items() if pid != os.getpid())])
            for pid in pipeline:
                self.cpu[pid] = ("pipeline", table[pid][1])
            for pid in _tree(table, self.site_pid, set()) if self.site_pid in table else []:
                self.cpu[pid] = ("site", table[pid][1])
            for pid, (_, seconds, name) in table.items():
                if name == "postgres":
                    self.cpu[pid] = ("postgres", seconds)

    def take(self) -> dict[str, float]:
        """Peak parent and worker MB, and cores busy by part, since the last take."""
        self.sample()
        with self._lock:
            wall = time.perf_counter() - self.wall_mark
            busy = _machine_busy()
            used: Counter[str] = Counter()
            for pid, (part, seconds) in self.cpu.items():
                used[part] += seconds - self.mark.get(pid, 0.0)
            out = {
                "peak_rss_parent_mb": round(self.parent),
                "peak_rss_worker_mb": round(self.worker),
                "cores_busy_machine": round((busy - self.busy_mark) / wall, 2),
                **{f"cores_{part}": round(used[part] / wall, 2) for part in ("pipeline", "site", "postgres")},
            }
            self.mark = {pid: seconds for pid, (_, seconds) in self.cpu.items()}
            self.busy_mark, self.wall_mark = busy, time.perf_counter()
            self.parent = self.worker = 0.0
        return out

    def stop(self) -> None:
        """Stop sampling."""
        self._stop.set()


class DedupClock:
    """Times the dedup step (assign_clusters) by wrapping it where the processing step calls it."""

    def __init__(self) -> None:
        """Wrap newsdedup.process.assign_clusters."""
        from newsdedup import process

        self.seconds, self.docs = 0.0, 0
        original = process.assign_clusters

        def timed(conn, docs, params=None):
            started = time.perf_counter()
            try:
                return original(conn, docs, params)
            finally:
                self.seconds += time.perf_counter() - started
                self.docs += len(docs)

        process.assign_clusters = timed

    def take(self) -> tuple[float, int]:
        """Seconds and articles since the last take."""
        out = (self.seconds, self.docs)
        self.seconds, self.docs = 0.0, 0
        return out


def _bare_extract(page: tuple[str, str]) -> bool:
    """The baseline's unit of work: trafilatura.extract with its defaults."""
    import trafilatura

    return trafilatura.extract(page[1], url=page[0]) is not None


def bare_extract_per_min(corpus: Corpus, site: Site, sample: int = 600) -> float:
    """The ceiling: pages per minute of bare trafilatura.extract on every core, on pages of this site."""
    from concurrent.futures import ProcessPoolExecutor

    from newsdedup.process import _cpus

    step = max(1, corpus.articles // sample)
    pages = [
        (f"{site.base(corpus.host_of(g))}/news/{corpus.number_of(g)}.html",
         article_html(corpus, g, site.base(corpus.host_of(g))))
        for g in range(0, corpus.articles, step)
    ][:sample]
    logging.getLogger("trafilatura").setLevel(logging.ERROR)
    with ProcessPoolExecutor(_cpus()) as pool:
        list(pool.map(_bare_extract, pages[: 8 * _cpus()], chunksize=4))  # imports and lazy models, every worker
        started = time.perf_counter()
        extracted = sum(pool.map(_bare_extract, pages, chunksize=8))
        seconds = time.perf_counter() - started
    assert extracted > 0.9 * len(pages), f"trafilatura extracted only {extracted} of {len(pages)} pages"
    return len(pages) / seconds * 60


def _quality(db_url: str, corpus: Corpus, port: int) -> dict:
    """Stories found against the ground truth, streaming the articles (pairs counted per cluster/story)."""
    import psycopg2

    by_cluster: Counter[int] = Counter()
    by_story: Counter[int] = Counter()
    by_both: Counter[tuple[int, int]] = Counter()
    with psycopg2.connect(db_url) as conn, conn.cursor(name="quality") as cur:
        cur.itersize = 10_000
        cur.execute("SELECT url, cluster_id FROM articles")
        for url, cluster in cur:
            parts = urlsplit(url)
            host = int(parts.hostname.rsplit(".", 1)[1]) - 1
            story = corpus.story_of(corpus.article(host, int(parts.path[6:-5])))
            by_cluster[cluster] += 1
            by_story[story] += 1
            by_both[(cluster, story)] += 1
    pairs = lambda counts: sum(n * (n - 1) // 2 for n in counts.values())  # noqa: E731
    true_pairs, found_pairs, good = pairs(by_story), pairs(by_cluster), pairs(by_both)
    return {
        "stories": len(by_story),
        "clusters": len(by_cluster),
        "pair_precision": round(good / found_pairs, 4) if found_pairs else 1.0,
        "pair_recall": round(good / true_pairs, 4) if true_pairs else 1.0,
    }


def run_load(articles: int, hosts: int, runs: int, keep: bool) -> dict:
    """Publish, ingest and measure round after round in a private database; return the figures."""
    from bench import private_database

    with private_database("loadbench", keep=keep) as db_url:
        return _load(db_url, articles, hosts, runs)


def _load(db_url: str, articles: int, hosts: int, runs: int) -> dict:
    """Publish, ingest and measure round after round against `db_url`."""
    import psycopg2
    from newsdedup import pipeline, polling, store
    from newsdedup.config import Settings

    per_host = -(-articles // hosts)
    per_run = -(-per_host // runs)
    work = Path(tempfile.mkdtemp(prefix="newsdedup-load-"))
    site = Site(articles, hosts, per_run + FEED_EXTRA)
    results: dict = {"articles": articles, "hosts": hosts, "runs": runs, "rounds": []}
    try:
        with store.connect(db_url) as conn:
            store.migrate(conn)
        sources = work / "sources.yaml"
        site.write_sources(sources)
        os.environ.update(NEWSDEDUP_ALLOW_NETWORKS="127.0.0.0/8", NEWSDEDUP_MIN_HOST_DELAY="0")
        settings = Settings(db_url=db_url, sources_path=sources)
        ceiling = bare_extract_per_min(Corpus(articles, hosts), site)
        results["bare_extract_ceiling_per_min"] = round(ceiling)
        print(json.dumps({"bare_extract_ceiling_per_min": round(ceiling)}), flush=True)
        clock = DedupClock()
        sampler = Sampler(site.proc.pid)
        total_seconds, stored = 0.0, 0
        for round_no in range(runs):
            site.publish(min(per_host, (round_no + 1) * per_run))
            with store.connect(db_url) as conn:
                polling.due_now(conn)  # every feed has new items: the run reads them all, as an hour later
            sampler.take()
            started = time.perf_counter()
            row = pipeline.run_once(settings, run_key=f"load-{round_no}")
            seconds = time.perf_counter() - started
            dedup_s, dedup_n = clock.take()
            total_seconds += seconds
            stored += row["articles_new"]
            figures = {
                "round": round_no + 1,
                "articles_new": row["articles_new"],
                "stored_total": stored,
                "seconds": round(seconds, 1),
                "articles_per_min": round(row["articles_new"] / seconds * 60),
                "vs_bare_extract_ceiling": round(row["articles_new"] / seconds * 60 / ceiling, 2),
                "dedup_ms_per_1000": round(dedup_s / dedup_n * 1e6) if dedup_n else None,
                **sampler.take(),
                "status": row["status"],
                "failed": row["pages_failed"] + row["extract_failed"],
            }
            results["rounds"].append(figures)
            print(json.dumps(figures), flush=True)
        with psycopg2.connect(db_url) as conn, conn.cursor() as cur:
            cur.execute("SELECT pg_database_size(current_database()), count(*) FROM articles")
            size, count = cur.fetchone()
            cur.execute(
                "SELECT c.relname, pg_total_relation_size(c.oid) FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = 'public' AND c.relkind = 'r' ORDER BY 2 DESC LIMIT 8"
            )
            tables = cur.fetchall()
        raw = dict(tables).get("raw_pages", 0)
        sampler.stop()
        results.update(
            stored=count,
            seconds=round(total_seconds, 1),
            articles_per_min=round(count / total_seconds * 60),
            vs_bare_extract_ceiling=round(count / total_seconds * 60 / ceiling, 2),
            db_bytes_per_article=round(size / count),
            db_bytes_per_article_without_raw_pages=round((size - raw) / count),
            tables_bytes_per_article={name: round(b / count) for name, b in tables},
            peak_rss_parent_mb=round(_peak_mb()),
        )
        results["quality"] = _quality(db_url, Corpus(articles, hosts), site.port)
        return results
    finally:
        site.stop()
        shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    """Run the load (or, internally, serve the site)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", nargs="?", default="load", choices=["load", "serve"])
    parser.add_argument("--articles", type=int, default=100_000)
    parser.add_argument("--hosts", type=int, default=50)
    parser.add_argument("--runs", type=int, default=10, help="publishing rounds, one pipeline run each")
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--feed-size", type=int, default=100, help=argparse.SUPPRESS)
    parser.add_argument("--delay-ms", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--keep", action="store_true", help="keep the PostgreSQL cluster afterwards")
    args = parser.parse_args(argv)
    if not 1 <= args.hosts <= 250:
        parser.error("--hosts must be between 1 and 250 (addresses 127.0.0.1-250)")
    if args.mode == "serve":
        serve(args.articles, args.hosts, args.port, args.feed_size, args.delay_ms)
        return 0
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s %(message)s")
    results = run_load(args.articles, args.hosts, args.runs, args.keep)
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
