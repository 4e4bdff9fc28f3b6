"""Faults during a run: PostgreSQL restarted, a task killed, runs repeated or overlapping, a source
returning garbage, invalid configuration. Real PostgreSQL, real HTTP on 127.0.0.x, the library's own
code paths (run_once is `newsdedup ingest`; the DAG runs the same steps as tasks).

RELIABILITY.md lists each fault with the command that reproduces it.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.forkserver
import multiprocessing.queues
import os
import random
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

import billiard
import psycopg2
import pytest
from newsdedup import pipeline, process, store
from newsdedup.config import Settings
from newsdedup.sources import Source

from bench.load import Site
from demo import site as demo_site
from tests.conftest import REPO, _create_database, _drop_database, make_due, query
from tests.httpfixtures import LocalHTTPServer, RequestHandler

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def _local_crawl(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEWSDEDUP_ALLOW_NETWORKS", "127.0.0.0/8")
    monkeypatch.setenv("NEWSDEDUP_MIN_HOST_DELAY", "0")
    monkeypatch.setenv("NEWSDEDUP_WORKERS", "1")  # the pool is exercised where it matters, below


def scalar(db_url: str, sql: str, params: tuple = ()) -> object:
    return query(db_url, sql, params)[0][0]


def snapshot(db_url: str) -> dict[str, list[tuple]]:
    """Everything a run leaves behind, keyed by canonical URL instead of row ids, without timestamps."""
    tables = {
        "articles": "SELECT a.canonical_url, a.url, a.title, a.text, a.author, a.published_at, a.language, "
        "a.word_count, a.content_hash, s.name FROM articles a LEFT JOIN sources s USING (source_id) ORDER BY 1",
        "story_clusters": "SELECT f.canonical_url, c.size, k.canonical_url, c.canonical_published_at, "
        "c.canonical_length, fs.name FROM story_clusters c JOIN articles f ON f.article_id = c.cluster_id "
        "JOIN articles k ON k.article_id = c.canonical_article_id LEFT JOIN sources fs ON fs.source_id = "
        "c.first_source_id ORDER BY 1",
        "members": "SELECT a.canonical_url, f.canonical_url FROM articles a JOIN articles f "
        "ON f.article_id = a.cluster_id ORDER BY 1",
        "duplicate_decisions": "SELECT a.canonical_url, f.canonical_url, m.canonical_url, d.method, d.similarity, "
        "d.jaccard, d.containment, d.threshold, d.shared_shingles, d.candidates, d.params_version "
        "FROM duplicate_decisions d JOIN articles a USING (article_id) JOIN articles f ON f.article_id = d.cluster_id "
        "LEFT JOIN articles m ON m.article_id = d.matched_article_id ORDER BY 1",
        "removed_segments": "SELECT a.canonical_url, r.position, r.sentence, r.kind, r.reason, r.measure, "
        "r.similarity, r.segment, r.matched FROM removed_segments r JOIN articles a USING (article_id) "
        "ORDER BY 1, 2, 3 NULLS FIRST",
        "article_signatures": "SELECT a.canonical_url, s.params_version, md5(s.signature), md5(s.shingles), "
        "s.text_hash, s.length FROM article_signatures s JOIN articles a USING (article_id) ORDER BY 1",
        "lsh_bands": "SELECT a.canonical_url, count(*), sum(mod(b.band_hash, 1000003)) FROM lsh_bands b "
        "JOIN articles a USING (article_id) GROUP BY 1 ORDER BY 1",
        "common_shingles": "SELECT shingle_hash, marks FROM common_shingles ORDER BY 1",
    }
    return {name: query(db_url, sql) for name, sql in tables.items()}


def partition(db_url: str, story_of: Callable[[str], object]) -> tuple[set[frozenset[str]], set[frozenset[str]]]:
    """The stored clusters and the true stories, both as sets of article URLs."""
    clusters: dict[int, set[str]] = defaultdict(set)
    stories: dict[object, set[str]] = defaultdict(set)
    for url, cluster_id in query(db_url, "SELECT url, cluster_id FROM articles"):
        clusters[cluster_id].add(url)
        stories[story_of(url)].add(url)
    return {frozenset(c) for c in clusters.values()}, {frozenset(s) for s in stories.values()}


def assert_exactly_once(db_url: str, expected_urls: set[str]) -> None:
    """Every page stored once, clustered once, processed; nothing else."""
    assert {u for (u,) in query(db_url, "SELECT url FROM articles")} == expected_urls
    assert scalar(db_url, "SELECT count(*) FROM articles") == len(expected_urls)
    assert scalar(db_url, "SELECT count(*) FROM articles WHERE cluster_id IS NULL") == 0
    assert scalar(db_url, "SELECT count(*) FROM duplicate_decisions") == len(expected_urls)
    assert scalar(db_url, "SELECT count(*) FROM article_signatures") == len(expected_urls)
    assert scalar(db_url, "SELECT sum(size) FROM story_clusters") == len(expected_urls)
    assert scalar(db_url, "SELECT count(*) FROM raw_pages WHERE processed_at IS NULL") == 0


def wait_until(condition: Callable[[], bool], timeout: float = 60.0) -> None:
    """Poll a condition (database errors while PostgreSQL is down count as not yet)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except psycopg2.Error:
            pass
        time.sleep(0.05)
    raise AssertionError("condition not reached in time")


# --------------------------------------------------------------------------- a private PostgreSQL


@dataclass
class PrivateServer:
    """A PostgreSQL cluster of this module only, so it can be stopped without disturbing other tests."""

    env: dict[str, str]
    data: Path
    admin_url: str

    def pg_ctl(self, *args: str) -> None:
        """Run pg_ctl of the server's binaries on its data directory (as the postgres user under root)."""
        opts = shlex.split((self.data / "postmaster.opts").read_text())
        as_pg = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        binary = str(Path(opts[0]).with_name("pg_ctl"))
        subprocess.run([*as_pg, binary, "-D", str(self.data), *args], check=True, capture_output=True, timeout=60)

    def bounce(self, down: float) -> None:
        """Stop the server (fast: open connections are cut), keep it down for `down` s, start it again."""
        opts = shlex.split((self.data / "postmaster.opts").read_text())[1:]
        i = opts.index("-D")
        del opts[i : i + 2]  # same port and options as before
        self.pg_ctl("-m", "fast", "-w", "stop")
        time.sleep(down)
        self.pg_ctl("-w", "-t", "30", "-l", str(self.data / "server.log"), "-o", shlex.join(opts), "start")


@pytest.fixture(scope="module")
def private_pg() -> Iterator[PrivateServer]:
    home = Path(tempfile.gettempdir()) / f"newsdedup-reliability-{uuid.uuid4().hex[:8]}"
    env = os.environ | {
        "NEWSDEDUP_PGHOME": str(home),
        "NEWSDEDUP_PGOPTS": "-c fsync=off -c synchronous_commit=off -c full_page_writes=off",
    }
    pg = [str(REPO / "scripts" / "pg.sh")]
    subprocess.run([*pg, "start"], check=True, env=env, capture_output=True)
    try:
        url = subprocess.run([*pg, "url", "postgres"], check=True, env=env, capture_output=True, text=True)
        yield PrivateServer(env, home / "data", url.stdout.strip())
    finally:
        subprocess.run([*pg, "destroy"], check=False, env=env, capture_output=True)


@pytest.fixture
def gen_site(request: pytest.FixtureRequest) -> Iterator[Site]:
    """The load benchmark's generated site: 2 hosts x 100 articles with syndicated copies; param: ms a page."""
    site = Site(articles=200, hosts=2, feed_size=120, delay_ms=getattr(request, "param", 0))
    site.publish(100)
    yield site
    site.stop()


def site_settings(site: Site, db_url: str, tmp_path: Path) -> Settings:
    sources = tmp_path / "sources.yaml"
    site.write_sources(sources)
    return Settings(db_url=db_url, sources_path=sources)


def site_urls(site: Site) -> set[str]:
    return {f"{site.base(h)}/news/{n}.html" for h in range(site.hosts) for n in range(100)}


# --------------------------------------------------------------------------- PostgreSQL restarted mid-run


@pytest.mark.parametrize("gen_site", [20], indirect=True, ids=["20ms-pages"])
def test_postgres_restart_mid_run(
    private_pg: PrivateServer, gen_site: Site, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The server goes down twice (during the crawl, during processing): the steps retry, the run completes."""
    db_url = _create_database(private_pg.admin_url)
    with store.connect(db_url) as conn:
        store.migrate(conn)
    settings = site_settings(gen_site, db_url, tmp_path)
    outcome: dict = {}

    def run() -> None:
        try:
            outcome["row"] = pipeline.run_once(settings, run_key="restart-test")
        except BaseException as exc:  # noqa: BLE001 - reported below
            outcome["error"] = exc

    caplog.set_level("WARNING", logger="newsdedup")
    worker = threading.Thread(target=run)
    worker.start()
    wait_until(lambda: scalar(db_url, "SELECT count(*) FROM raw_pages") >= 50)
    crawling = scalar(db_url, "SELECT count(*) FROM raw_pages") < 200
    private_pg.bounce(1.5)
    wait_until(lambda: not worker.is_alive() or scalar(db_url, "SELECT count(*) FROM articles") >= 80)
    processing = worker.is_alive()
    if processing:
        private_pg.bounce(1.5)
    worker.join(180)
    assert not worker.is_alive() and "error" not in outcome, outcome.get("error")
    row = outcome["row"]
    assert crawling and processing, "the restarts missed the steps they were meant to hit"
    assert "transient database failure" in caplog.text
    assert row["status"] == "success", row
    assert row["articles_new"] == 200  # counters too: every batch counted once
    assert_exactly_once(db_url, site_urls(gen_site))
    clusters, stories = partition(db_url, gen_site.story_of_url)
    assert clusters == stories
    _drop_database(private_pg.admin_url, db_url)


# --------------------------------------------------------------------------- a task killed mid-load

DRIVER = """
import os, sys, time
sys.path[:0] = [{plugins!r}, {marker_dir!r}]
from newsdedup import process
marker = {marker!r}
write, calls = process._write, []

def stalled_write(conn, run_id, results):
    out = write(conn, run_id, results)  # this batch's rows are written, its transaction still open
    calls.append(len(results))
    if len(calls) == 4:
        open(marker, "w").write(str(os.getpid()))
        time.sleep(600)
    return out

process._write = stalled_write
process.process_pages({db_url!r}, {run_id}, settings=process.ProcessSettings(batch_size=20, workers=2,
                      pool_min_pages=1))
"""


def stage(db_url: str, site: Site, tmp_path: Path) -> int:
    """Crawl the site's sources one after another (page ids in the same order in every database)."""
    settings = site_settings(site, db_url, tmp_path)
    pipeline.sync_sources(settings)
    run = pipeline.begin_run(db_url, "kill-test", "airflow")
    for name in run["sources"]:
        report = pipeline.crawl_source(db_url, run["run_id"], name)
        assert report["pages_fetched"] == 100, report
    return run["run_id"]


def processes_with(marker: str) -> list[int]:
    """Live processes whose command line mentions marker (the driver's pool: forkserver and workers)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def test_task_killed_mid_load_then_retried_equals_an_undisturbed_run(
    pg_admin_url: str, gen_site: Site, tmp_path: Path
) -> None:
    """SIGKILL while a batch is half written (with the extraction pool running): the retry's result is
    the undisturbed run's, table by table, counters included."""
    calm, killed = _create_database(pg_admin_url), _create_database(pg_admin_url)
    for url in (calm, killed):
        with store.connect(url) as conn:
            store.migrate(conn)
    settings = process.ProcessSettings(batch_size=20, workers=1)
    run_calm = stage(calm, gen_site, tmp_path)
    process.process_pages(calm, run_calm, settings=settings)

    run_killed = stage(killed, gen_site, tmp_path)
    marker_dir = str(tmp_path / f"pool-{uuid.uuid4().hex}")
    marker = str(tmp_path / "stalled")
    code = DRIVER.format(plugins=str(REPO / "plugins"), marker_dir=marker_dir, marker=marker, db_url=killed,
                         run_id=run_killed)
    driver = subprocess.Popen([sys.executable, "-c", code])
    try:
        wait_until(lambda: Path(marker).exists() or driver.poll() is not None, timeout=120)
        assert driver.poll() is None, "the driver ended before it stalled"
        assert len(processes_with(marker_dir)) >= 2, "the extraction pool was not running"
        assert scalar(killed, "SELECT count(*) FROM raw_pages WHERE processed_at IS NOT NULL") == 60
        driver.send_signal(signal.SIGKILL)
        driver.wait(10)
    finally:
        if driver.poll() is None:
            driver.kill()
    wait_until(lambda: not processes_with(marker_dir), timeout=20)  # the pool does not outlive its task
    assert scalar(killed, "SELECT count(*) FROM articles") == scalar(
        killed, "SELECT count(DISTINCT url) FROM raw_pages WHERE processed_at IS NOT NULL"
    )  # the half-written batch left nothing behind

    process.process_pages(killed, run_killed, settings=settings)  # the task's retry
    assert snapshot(killed) == snapshot(calm)
    assert process.run_counts(killed, run_killed) == process.run_counts(calm, run_calm)
    assert_exactly_once(killed, site_urls(gen_site))
    _drop_database(pg_admin_url, calm)
    _drop_database(pg_admin_url, killed)


# --------------------------------------------------------------------------- repeated and overlapping runs


@pytest.fixture(scope="module")
def demo() -> Iterator[demo_site.DemoSite]:
    running = demo_site.start()
    yield running
    running.stop()


def demo_settings(demo: demo_site.DemoSite, db_url: str, tmp_path: Path) -> Settings:
    sources = tmp_path / "sources.yaml"
    demo_site.write_sources(demo, sources)
    return Settings(db_url=db_url, sources_path=sources)


def demo_story(demo: demo_site.DemoSite) -> Callable[[str], str]:
    truth = demo.ground_truth()
    return lambda url: truth[url.removeprefix(demo.base_url)]


def test_same_interval_run_twice_changes_nothing(db_url: str, demo, tmp_path: Path) -> None:
    settings = demo_settings(demo, db_url, tmp_path)
    first = pipeline.run_once(settings, run_key="scheduled__2026-03-14T08:00:00+00:00")
    before = snapshot(db_url)
    second = pipeline.run_once(settings, run_key="scheduled__2026-03-14T08:00:00+00:00")
    assert first["articles_new"] == len(demo.article_urls()) and second["status"] == "success"
    assert snapshot(db_url) == before
    assert scalar(db_url, "SELECT count(*) FROM pipeline_runs") == 1
    clusters, stories = partition(db_url, demo_story(demo))
    assert clusters == stories


def test_two_runs_at_once_end_like_one_run(pg_admin_url: str, demo, tmp_path: Path) -> None:
    """Two runs crawl and process the same pages at the same time: one row per article, one cluster per story."""
    alone, together = _create_database(pg_admin_url), _create_database(pg_admin_url)
    for url in (alone, together):
        with store.connect(url) as conn:
            store.migrate(conn)
    pipeline.run_once(demo_settings(demo, alone, tmp_path), run_key="alone")
    settings = demo_settings(demo, together, tmp_path)
    barrier, rows, errors = threading.Barrier(2), [], []

    def run(key: str) -> None:
        try:
            barrier.wait()
            rows.append(pipeline.run_once(settings, run_key=key))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(key,)) for key in ("first", "second")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == [] and len(rows) == 2
    expected = {u for u in demo.article_urls()}
    assert sum(r["articles_new"] for r in rows) == len(expected)
    assert_exactly_once(together, expected)
    clusters, stories = partition(together, demo_story(demo))
    assert clusters == stories
    a, b = snapshot(alone), snapshot(together)
    for table in ("articles", "removed_segments", "article_signatures"):
        assert [r[:-1] if table == "articles" else r for r in a[table]] == [
            r[:-1] if table == "articles" else r for r in b[table]
        ], table  # the announcing source may differ: both runs' crawls saw the page
    _drop_database(pg_admin_url, alone)
    _drop_database(pg_admin_url, together)


# --------------------------------------------------------------------------- garbage, then recovery

ARTICLES = {
    f"/news/{i}.html": (
        f"Ferry timetable change number {i} announced for the harbour line",
        [
            f"The harbour ferry will run a new timetable from next month, change number {i} of the year, "
            "the operator said on Tuesday after months of complaints from commuters.",
            "Morning sailings move fifteen minutes earlier so that passengers can reach the rail station in "
            "time for the first trains into the city, the operator explained in its statement.",
            f"Evening services on weekdays will be extended by one hour, and the weekend timetable {i} stays "
            "as it is until the summer season begins in June.",
        ],
    )
    for i in range(1, 4)
}


PUBLISHED = "Sat, 14 Mar 2026 08:00:00 GMT"


def page(title: str, paragraphs: list[str]) -> str:
    body = "".join(f"<p>{p}</p>" for p in paragraphs)
    head = f"<!DOCTYPE html><html lang='en'><head><title>{title}</title></head>"
    return f"{head}<body><article><h1>{title}</h1>{body}</article></body></html>"


def garbage(seed: int, size: int = 12_000) -> bytes:
    rng = random.Random(seed)  # noqa: S311 - test data, not secrets
    return bytes(rng.randrange(256) for _ in range(size))


def test_garbage_source_recovers_without_manual_steps(db_url: str, tmp_path: Path) -> None:
    """Feed 500, then binary feed, then good feed with binary article pages, then the repaired site."""
    phase = {"n": 1}
    server = LocalHTTPServer().start()
    feed = (
        "<?xml version='1.0'?><rss version='2.0'><channel><title>Harbour</title>"
        + "".join(
            f"<item><title>{t}</title><link>{server.url(p)}</link><pubDate>{PUBLISHED}</pubDate></item>"
            for p, (t, _) in ARTICLES.items()
        )
        + "</channel></rss>"
    )

    def feed_handler(h: RequestHandler) -> None:
        if phase["n"] == 1:
            h.reply(500, "Internal Server Error", content_type="text/plain")
        elif phase["n"] == 2:
            h.reply(200, garbage(2), content_type="application/rss+xml")
        elif h.headers.get("If-None-Match") == '"v1"':
            h.reply(304, headers={"ETag": '"v1"'}, content_type=None)
        else:
            h.reply(200, feed, headers={"ETag": '"v1"'}, content_type="application/rss+xml; charset=utf-8")

    def article_handler(path: str) -> Callable[[RequestHandler], None]:
        def handler(h: RequestHandler) -> None:
            if phase["n"] <= 3:
                h.reply(200, b"<html><body><p>" + garbage(len(path)) + b"</p></body></html>",
                        content_type="text/html")
            else:
                h.reply(200, page(*ARTICLES[path]))

        return handler

    server.route("/robots.txt", lambda h: h.reply(200, "User-agent: *\nAllow: /\n", content_type="text/plain"))
    server.route("/feed.xml", feed_handler)
    for path in ARTICLES:
        server.route(path, article_handler(path))
    sources = tmp_path / "sources.yaml"
    sources.write_text(f"sources:\n  - {{name: harbour, url: '{server.url('/feed.xml')}', kind: rss}}\n")
    settings = Settings(db_url=db_url, sources_path=sources)
    try:
        rows = []
        for n in range(1, 5):
            phase["n"] = n
            make_due(db_url)  # each phase an hour after the last: the source is due again
            rows.append(pipeline.run_once(settings, run_key=f"phase-{n}"))
    finally:
        server.stop()
    assert [r["status"] for r in rows] == ["failed", "failed", "partial", "success"]
    logged = query(
        db_url,
        "SELECT r.run_key, c.request_kind, c.outcome, c.http_status, c.error_class, c.error_message FROM crawl_log c "
        "JOIN pipeline_runs r USING (run_id) WHERE c.request_kind <> 'robots' ORDER BY c.crawl_id",
    )
    by_phase = defaultdict(list)
    for key, *rest in logged:
        by_phase[key].append(rest)
    assert by_phase["phase-1"][-1][:3] == ["feed", "http_error", 500]
    assert by_phase["phase-2"][-1][:2] == ["feed", "parse_error"] and rows[1]["failed_sources"] == ["harbour"]
    extract = [r for r in by_phase["phase-3"] if r[0] == "extract"]
    assert len(extract) == 3 and all(r[1] == "extract_failed" and "not an article" in r[4] for r in extract)
    assert rows[2]["articles_new"] == 0 and rows[2]["extract_failed"] == 3
    assert rows[3]["articles_new"] == 3  # the unchanged feed was read again in full: no 304 hid the pages
    texts = [t for (t,) in query(db_url, "SELECT text FROM articles")]
    assert len(texts) == 3 and not any("\ufffd" in t for t in texts)
    assert all("harbour ferry" in t for t in texts)


# --------------------------------------------------------------------------- invalid configuration


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    base = {"PYTHONPATH": str(REPO / "plugins"), "PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/")}
    return subprocess.run([sys.executable, "-m", "newsdedup", *args], env=base | env, capture_output=True, text=True,
                          timeout=120)


def counts(db_url: str) -> tuple:
    return query(
        db_url,
        "SELECT (SELECT count(*) FROM sources), (SELECT count(*) FROM pipeline_runs), "
        "(SELECT count(*) FROM crawl_log), (SELECT count(*) FROM raw_pages), (SELECT count(*) FROM articles)",
    )[0]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("sources:\n  - {name: a, url: 'http://127.0.0.1:9/rss'\n", "is not valid YAML"),
        ("sources:\n  - {name: a, url: 'http://127.0.0.1:9/rss', colour: red}\n", "unknown field(s) ['colour']"),
        ("sources:\n  - {name: a, url: 'http://127.0.0.1:9/rss', kind: podcast}\n", "field 'kind' is 'podcast'"),
        ("feeds: []\n", "expected a single top-level key 'sources:'"),
    ],
)
def test_invalid_sources_file_fails_before_writing(db_url: str, tmp_path: Path, text: str, message: str) -> None:
    good = tmp_path / "good.yaml"
    good.write_text("sources:\n  - {name: a, url: 'http://127.0.0.1:9/rss', kind: rss}\n")
    pipeline.sync_sources(Settings(db_url=db_url, sources_path=good))
    before = counts(db_url)
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    done = cli("ingest", "--no-progress", env={"NEWSDEDUP_DB_URL": db_url, "NEWSDEDUP_SOURCES": str(bad)})
    assert done.returncode == 2, done.stderr
    assert message in done.stderr and str(bad) in done.stderr
    assert "Traceback" not in done.stderr
    assert counts(db_url) == before  # nothing half-written: no run row, no source changed


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"NEWSDEDUP_DB_URL": "postgresql://postgres@127.0.0.1:9/newsdedup"}, "cannot connect to the article database"),
        ({"NEWSDEDUP_DB_URL": "postgresql://postgres:s3cret@127.0.0.1:9/newsdedup"}, "postgres:***@127.0.0.1:9"),
        ({"NEWSDEDUP_DB_URL": "mysql://x@y/z"}, "is not a libpq URL"),
        ({"NEWSDEDUP_WORKERS": "many"}, "NEWSDEDUP_WORKERS: expected a whole number"),
        ({"NEWSDEDUP_BATCH_SIZE": "0"}, "NEWSDEDUP_BATCH_SIZE: must be >= 1"),
    ],
)
def test_unreachable_or_invalid_settings_fail_clearly(db_url: str, tmp_path: Path, env: dict, message: str) -> None:
    sources = tmp_path / "sources.yaml"
    sources.write_text("sources:\n  - {name: a, url: 'http://127.0.0.1:9/rss', kind: rss}\n")
    before = counts(db_url)
    started = time.monotonic()
    done = cli("ingest", "--no-progress", env={"NEWSDEDUP_DB_URL": db_url, "NEWSDEDUP_SOURCES": str(sources)} | env)
    assert done.returncode == 2, done.stdout + done.stderr
    assert message in done.stderr and "Traceback" not in done.stderr
    assert "s3cret" not in done.stderr
    assert time.monotonic() - started < 30  # an unreachable database fails fast: no retries before the run
    assert counts(db_url) == before


# --------------------------------------------------------------------------- a row the database refuses


def test_article_the_database_refuses_is_recorded_and_the_rest_stored(db_url: str) -> None:
    """A trigger refuses one article (as PostgreSQL refuses a too-long search vector): the batch is written
    page by page, the refused page is an extraction failure in crawl_log, the others are stored."""
    with psycopg2.connect(db_url) as conn, conn.cursor() as cur:
        cur.execute(
            "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "IF NEW.title LIKE '%poison%' THEN RAISE EXCEPTION 'refused: %', NEW.title USING ERRCODE = '22023'; "
            "END IF; RETURN NEW; END $$"
        )
        cur.execute("CREATE TRIGGER refuse BEFORE INSERT ON articles FOR EACH ROW EXECUTE FUNCTION refuse()")
    titles = ["Ferry timetable changes", "A poison headline for the database", "Library opens late"]
    with store.connect(db_url) as conn:
        store.sync_sources(conn, [Source("local", "http://127.0.0.1:9/rss", "rss", "en")])
        source_id = store.get_source(conn, "local").source_id
        run_id = store.start_run(conn, "refusal", "cli", 1)
        store.save_raw_pages(conn, run_id, [
            store.RawPage(source_id, f"http://127.0.0.1:9/{i}.html", f"http://127.0.0.1:9/{i}.html", 200,
                          "text/html", "utf-8", page(title, ARTICLES[f"/news/{i + 1}.html"][1]))
            for i, title in enumerate(titles)
        ])
    counts = process.process_pages(db_url, run_id, settings=process.ProcessSettings(workers=1))
    assert counts["articles_new"] == 2 and counts["extract_failed"] == 1
    assert sorted(t for (t,) in query(db_url, "SELECT title FROM articles")) == sorted(titles[::2])
    ((error_class, message),) = query(
        db_url, "SELECT error_class, error_message FROM crawl_log WHERE request_kind = 'extract'"
    )
    assert error_class == "InvalidParameterValue" and "refused: A poison headline" in message
    assert scalar(db_url, "SELECT count(*) FROM raw_pages WHERE processed_at IS NULL") == 0


# --------------------------------------------------------------------------- an extraction worker killed


def _pages(count: int) -> list[dict]:
    """Raw pages of a 150-paragraph article each (a few tens of milliseconds of extraction)."""
    paragraphs = "".join(
        f"<p>Paragraph {i} tells of harbour {i * 7} ferries and {i * 3} boats. Another sentence {i} about "
        f"the boats of {i % 13} towns.</p>"
        for i in range(150)
    )
    return [
        {"raw_page_id": i, "source_id": 1, "url": f"http://127.0.0.1:9/{i}", "final_url": f"http://127.0.0.1:9/{i}",
         "html": f"<html><head><title>Page {i}</title></head><body><article>{paragraphs}</article></body></html>",
         "feed_title": None, "feed_published": None, "source_language": "en"}
        for i in range(count)
    ]


def _extract_in_a_pool(pages: list[dict], done: multiprocessing.queues.Queue) -> None:
    """In a daemonic process: extract pages with the worker pool; report the pages extracted, or the error."""
    try:
        extractor = process._Extractor(process.ProcessSettings(workers=2, pool_min_pages=1), pending=len(pages))
        try:
            pooled = extractor.pool is not None
            results = extractor.submit(pages)()
        finally:
            extractor.close()
        done.put((pooled, [r.raw_page_id for r in results if r.article is not None]))
    except Exception as exc:  # noqa: BLE001 - the test shows it
        done.put((False, repr(exc)))


def test_a_task_forked_from_a_daemonic_process_still_gets_its_extraction_pool() -> None:
    """Celery's prefork children are daemonic, and so is an Airflow task forked from one: the pool still starts.

    The parent runs a fork server of its own first (as pytest does once another test has used a pool):
    the child must start its own instead of asking after its parent's.
    """
    multiprocessing.forkserver.ensure_running()
    done = multiprocessing.get_context("fork").Queue()
    # billiard is Celery's multiprocessing: its child also swaps in its own process object and authkey.
    child = billiard.get_context("fork").Process(target=_extract_in_a_pool, args=(_pages(4), done), daemon=True)
    child.start()
    try:
        pooled, extracted = done.get(timeout=120)
    finally:
        child.join(30)
    assert (pooled, extracted) == (True, [0, 1, 2, 3])


def test_extraction_worker_killed_mid_batch_loses_nothing() -> None:
    """The OOM killer takes a worker: the pool is replaced, every page is still extracted, in order."""
    pages = _pages(40)
    extractor = process._Extractor(process.ProcessSettings(workers=2, pool_min_pages=1), pending=len(pages))
    try:
        results = extractor.submit(pages)
        time.sleep(0.3)
        victim = next(iter(extractor.pool._processes))
        os.kill(victim, signal.SIGKILL)
        done = results()
    finally:
        extractor.close()
    assert [r.raw_page_id for r in done] == list(range(40))
    assert all(r.article is not None for r in done), [r.failure for r in done if r.failure]


def _writing_to_a_pipe(pid: int) -> bool:
    """True while the process waits in the kernel to write more into a full pipe."""
    try:
        with open(f"/proc/{pid}/wchan") as wchan:
            return "pipe_write" in wchan.read()
    except (FileNotFoundError, ProcessLookupError):
        return False


def test_extraction_worker_killed_while_sending_its_result_neither_hangs_the_batch_nor_the_exit() -> None:
    """A worker killed halfway through writing a result leaves half a message: the batch and the pool still end.

    The pool's manager thread then waits for the rest of that message, sees no death, fails no future;
    the interpreter waits for that thread when it exits (a test process that never ends).
    """
    extractor = process._Extractor(process.ProcessSettings(workers=2, pool_min_pages=1), pending=4)
    old = extractor.pool
    manager = old._executor_manager_thread
    try:
        large = old.submit(bytes, 256 * 2**20)  # far more than a pipe holds: written in many parts
        deadline = time.monotonic() + 60
        victim = None
        while victim is None and time.monotonic() < deadline and not large.done():
            victim = next((pid for pid in list(old._processes) if _writing_to_a_pipe(pid)), None)
        assert victim is not None, "no worker was seen writing its result"
        os.kill(victim, signal.SIGKILL)
        time.sleep(2)
        assert not large.done(), "the pool noticed the death by itself: half a message was not left behind"
        done = extractor.submit(_pages(4))()
    finally:
        extractor.close()
    assert [r.raw_page_id for r in done] == [0, 1, 2, 3]
    assert all(r.article is not None for r in done)
    assert isinstance(large.exception(timeout=10), BrokenProcessPool)
    manager.join(10)
    assert not manager.is_alive(), "the discarded pool's manager thread still waits for the rest of the message"


def test_extraction_worker_killed_while_idle_neither_blocks_nor_breaks_the_next_batch() -> None:
    """A worker killed while it waits for work (holding the task queue's lock): the next batch and close() go on."""
    pages = _pages(6)
    extractor = process._Extractor(process.ProcessSettings(workers=2, pool_min_pages=1), pending=len(pages))
    closed = threading.Event()
    try:
        first = extractor.submit(pages[:3])()
        victim = next(iter(extractor.pool._processes))
        os.kill(victim, signal.SIGKILL)
        time.sleep(0.5)  # the pool notices the dead worker and marks itself broken
        second = extractor.submit(pages[3:])()
    finally:
        closer = threading.Thread(target=lambda: (extractor.close(grace=5), closed.set()), daemon=True)
        closer.start()
        closer.join(60)
    assert closed.is_set(), "close() hung on a pool with a dead worker"
    assert [r.raw_page_id for r in first + second] == list(range(6))
    assert all(r.article is not None for r in first + second)
