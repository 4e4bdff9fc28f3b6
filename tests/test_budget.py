"""Time budgets: one slow source cannot hold a run. Its crawl starts no request after
NEWSDEDUP_SOURCE_BUDGET_SECONDS, the links it did not reach are fetched by the next run (not failed, not lost,
not hidden by a 304), another source's pages are stored; a host timing out NEWSDEDUP_HOST_MAX_FAILURES times in a
row is left alone for the rest of the run; the DAG's crawl task has an execution_timeout from the budget.
Real PostgreSQL, real HTTP servers on 127.0.0.1 and 127.0.0.2, `pipeline.run_once` (`newsdedup ingest`).
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from newsdedup import pipeline, settings
from newsdedup.config import ConfigError, Settings
from newsdedup.fetch import Fetcher, FetchPolicy

from tests.conftest import query
from tests.httpfixtures import LocalHTTPServer, RequestHandler, hang, http_server_fixture, static  # noqa: F401

BUDGET, TIMEOUT, PAGE_SECONDS, LINKS = 5, 4, 3.0, 20
TOWNS = ["Kestrel Bay", "Ashford Mill", "Lowmoor", "Pennick", "Sutterby", "Harlow Cross", "Wyndham", "Elmstead"]
TOPICS = [
    ("library", "opens a reading room in the old fire station", "volunteers restored the shelves over the summer"),
    ("bus depot", "adds four electric buses to its night routes", "the chargers were installed in September"),
    ("market", "moves its Saturday stalls to the harbour square", "traders asked for more shelter from the wind"),
    ("school", "gets a new science wing after a two-year wait", "pupils will use the laboratories from January"),
    ("bridge", "reopens to cyclists after the railings were replaced", "the footpath stays closed until spring"),
]


def article(n: int) -> tuple[str, str]:
    """Title and HTML of the n-th article of the slow outlet: each a different town and topic."""
    town = TOWNS[n % len(TOWNS)]
    thing, news, detail = TOPICS[n % len(TOPICS)]
    title = f"{town} {thing} {news} (report {n})"
    paragraphs = [
        f"The {thing} in {town} {news}, the district council confirmed on Tuesday in its report number {n}, "
        f"after a consultation that drew {40 + 7 * n} written responses from residents and local businesses.",
        f"Council officers said {detail}, and that the cost of {1200 + 35 * n} thousand pounds would be shared "
        f"with the county, which had promised the money for {town} in the spring budget.",
        f"A councillor for the {town} ward welcomed the decision but asked for a public meeting before the work "
        f"starts, so that neighbours can see the plans for the {thing} and ask about noise and parking.",
    ]
    body = "".join(f"<p>{p}</p>" for p in paragraphs)
    return title, f"<!DOCTYPE html><html lang='en'><head><title>{title}</title></head><body><article><h1>{title}" \
        f"</h1>{body}</article></body></html>"


FAST_ARTICLES = {
    "/haber/belediye-butcesi.html": (
        "Belediye meclisi yeni yıl bütçesini onayladı",
        "Belediye meclisi, yeni yıl bütçesini dün akşamki oturumda oy çokluğuyla kabul etti; bütçenin en büyük "
        "kalemini toplu taşıma yatırımları ve okul onarımları oluşturuyor. Muhalefet grubu, su şebekesinin "
        "yenilenmesine ayrılan payın yetersiz olduğunu savunarak ret oyu verdi. Başkan, ilk ihalelerin şubat "
        "ayında yapılacağını ve çalışmaların yaz başında başlayacağını açıkladı.",
    ),
    "/haber/sahil-yolu.html": (
        "Sahil yolunda bisiklet şeridi çalışması başladı",
        "Sahil yolu boyunca uzanacak bisiklet şeridinin yapımına pazartesi sabahı başlandı. Çalışma süresince "
        "yolun deniz tarafındaki şerit trafiğe kapalı olacak, otobüs durakları geçici olarak yüz metre ileriye "
        "taşınacak. Belediye, şeridin dört kilometrelik ilk bölümünün nisan ayında kullanıma açılmasını "
        "hedeflediklerini bildirdi.",
    ),
    "/haber/kutuphane-saatleri.html": (
        "Merkez kütüphane sınav döneminde gece yarısına kadar açık",
        "Merkez kütüphane, üniversite sınav dönemi boyunca hafta içi her gün gece yarısına kadar hizmet verecek. "
        "Kütüphane müdürlüğü, öğrencilerin yoğun talebi üzerine okuma salonlarına ek masa konulduğunu ve "
        "kafeteryanın da aynı saatlere kadar açık kalacağını duyurdu. Uygulama ocak ayının sonuna kadar sürecek.",
    ),
}


def feed(server: LocalHTTPServer, items: list[tuple[str, str]]) -> str:
    """An RSS feed announcing (path, title) items of server."""
    entries = "".join(f"<item><title>{t}</title><link>{server.url(p)}</link></item>" for p, t in items)
    return f"<?xml version='1.0'?><rss version='2.0'><channel><title>Outlet</title>{entries}</channel></rss>"


@dataclass
class Outlets:
    """A slow outlet (127.0.0.1: every page takes PAGE_SECONDS) and a fast one (127.0.0.2)."""

    slow: LocalHTTPServer
    fast: LocalHTTPServer
    page_seconds: float = PAGE_SECONDS

    def slow_paths(self) -> list[str]:
        return [f"/news/{n}.html" for n in range(LINKS)]

    def slow_feed(self, h: RequestHandler) -> None:
        body = feed(self.slow, [(f"/news/{n}.html", article(n)[0]) for n in range(LINKS)])
        etag = f'"{hashlib.sha256(body.encode()).hexdigest()[:16]}"'
        if h.headers.get("If-None-Match") == etag:
            h.reply(304, headers={"ETag": etag}, content_type=None)
        else:
            h.reply(200, body, headers={"ETag": etag}, content_type="application/rss+xml")

    def slow_page(self, h: RequestHandler, n: int) -> None:
        if not h.pause(self.page_seconds):
            h.reply(200, article(n)[1])


@pytest.fixture
def outlets() -> Iterator[Outlets]:
    slow, fast = LocalHTTPServer().start(), LocalHTTPServer("127.0.0.2").start()
    found = Outlets(slow, fast)
    slow.route("/feed.xml", found.slow_feed)
    for n in range(LINKS):
        slow.route(f"/news/{n}.html", lambda h, n=n: found.slow_page(h, n))
    items = [(path, title) for path, (title, _) in FAST_ARTICLES.items()]
    fast.route("/feed.xml", static(feed(fast, items), content_type="application/rss+xml"))
    for path, (title, text) in FAST_ARTICLES.items():
        html = f"<!DOCTYPE html><html lang='tr'><head><title>{title}</title></head><body><article><h1>{title}</h1>"
        fast.route(path, static(html + "".join(f"<p>{s}.</p>" for s in text.split(". ")) + "</article></body></html>"))
    yield found
    slow.stop()
    fast.stop()


@pytest.fixture
def run_settings(db_url: str, outlets: Outlets, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    for name, value in {
        "ALLOW_NETWORKS": "127.0.0.0/8",
        "MIN_HOST_DELAY": "0",
        "WORKERS": "1",
        "RETRIES": "0",
        "SOURCE_BUDGET_SECONDS": str(BUDGET),
        "FETCH_TIMEOUT": str(TIMEOUT),
    }.items():
        monkeypatch.setenv(f"NEWSDEDUP_{name}", value)
    sources = tmp_path / "sources.yaml"
    sources.write_text(
        "sources:\n"
        f"  - {{name: slow-outlet, url: '{outlets.slow.url('/feed.xml')}', kind: rss}}\n"
        f"  - {{name: hizli-haber, url: '{outlets.fast.url('/feed.xml')}', kind: rss, language: tr}}\n"
    )
    return Settings(db_url=db_url, sources_path=sources)


def stored(db_url: str, source: str) -> int:
    sql = "SELECT count(*) FROM articles JOIN sources USING (source_id) WHERE name = %s"
    return query(db_url, sql, (source,))[0][0]


@pytest.mark.integration
def test_slow_source_stops_at_its_budget_and_the_rest_waits_for_the_next_run(
    run_settings: Settings, outlets: Outlets, caplog: pytest.LogCaptureFixture
) -> None:
    """20 links at 3 s each with a 5 s budget: a couple are fetched, the other source is stored whole, the run
    is not partial; the next run reads the feed in full (no 304) and fetches the rest; the one after gets 304."""
    db, slow = run_settings.db_url, outlets.slow
    caplog.set_level(logging.WARNING, logger="newsdedup.pipeline")
    first = pipeline.run_once(run_settings, run_key="hour-1")

    reached = sum(slow.hits(p) for p in outlets.slow_paths())
    # Requests start only within the budget: 0-3 s, 3-6 s, and none at 6 s (an unbudgeted crawl takes 60 s).
    assert 1 <= reached <= 3
    starts = [r.at for r in slow.requests]
    assert max(starts) - min(starts) <= BUDGET + 1
    assert stored(db, "hizli-haber") == len(FAST_ARTICLES)
    assert stored(db, "slow-outlet") == reached
    assert (first["status"], first["pages_failed"]) == ("success", 0)
    # Links not reached are neither failures nor logged as requests; they are counted in the crawl's log line.
    assert query(db, "SELECT count(*) FROM crawl_log WHERE request_kind = 'article' AND url LIKE %s",
                 (slow.url("/news/%"),)) == [(reached,)]
    assert f"slow-outlet: time budget used up, {LINKS - reached} links left for the next run" in caplog.text
    assert query(db, "SELECT etag FROM sources WHERE name = 'slow-outlet'") == [(None,)]

    outlets.page_seconds = 0
    due_now = "UPDATE sources SET next_due_at = now() RETURNING 1"  # an hour later: every source due again
    query(db, due_now)
    second = pipeline.run_once(run_settings, run_key="hour-2")
    feed_requests = slow.requests_for("/feed.xml")
    assert feed_requests[-1].headers.get("if-none-match") is None  # read in full, so nothing stays hidden
    assert stored(db, "slow-outlet") == LINKS and second["articles_new"] == LINKS - reached
    assert all(slow.hits(p) == 1 for p in outlets.slow_paths())  # each link fetched once over both runs

    query(db, due_now)
    third = pipeline.run_once(run_settings, run_key="hour-3")
    assert third["feeds_not_modified"] >= 1 and slow.requests_for("/feed.xml")[-1].headers.get("if-none-match")


def test_no_retry_starts_after_the_deadline_and_nothing_is_sent_after_it(
    http_server: LocalHTTPServer,  # noqa: F811
) -> None:
    http_server.route("/err", static("busy", status=503))
    http_server.route("/ok", static("<html><body><p>fine</p></body></html>"))
    policy = FetchPolicy(allow_networks=("127.0.0.0/8",), min_host_delay=0, respect_robots=False, retries=2)
    with Fetcher(policy) as fetcher:
        bounded = fetcher.until(time.monotonic() + 0.3)
        first = bounded.get(http_server.url("/err"))  # the first back-off (0.5 s) would end past the deadline
        assert (first.status, first.attempts) == (503, 1) and http_server.hits("/err") == 1
        time.sleep(0.4)
        late = bounded.get(http_server.url("/ok"))
        assert (late.outcome, late.error_class) == ("deferred", "OutOfTime") and http_server.hits("/ok") == 0
        assert fetcher.get(http_server.url("/ok")).ok  # the shared fetcher itself has no deadline


def test_a_host_timing_out_n_times_in_a_row_is_left_alone_for_the_rest_of_the_run(
    http_server: LocalHTTPServer,  # noqa: F811
) -> None:
    http_server.route("/slow", hang(5))
    env = {
        "NEWSDEDUP_HOST_MAX_FAILURES": "2",
        "NEWSDEDUP_FETCH_TIMEOUT": "0.5",
        "NEWSDEDUP_RETRIES": "0",
        "NEWSDEDUP_ALLOW_NETWORKS": "127.0.0.0/8",
        "NEWSDEDUP_MIN_HOST_DELAY": "0",
    }
    with Fetcher(FetchPolicy.from_env(env)) as fetcher:
        results = [fetcher.get(http_server.url("/slow")) for _ in range(3)]
    assert [r.outcome for r in results] == ["timeout", "timeout", "deferred"]
    assert "not contacted again in this run" in (results[2].error_message or "")
    assert http_server.hits("/slow") == 2


@pytest.mark.parametrize("value", ["0", "3601", "ten"])
def test_the_budget_is_bounded(value: str) -> None:
    with pytest.raises(ConfigError, match="NEWSDEDUP_SOURCE_BUDGET_SECONDS"):
        settings.load({"NEWSDEDUP_SOURCE_BUDGET_SECONDS": value})


def test_crawl_task_execution_timeout_comes_from_the_budget() -> None:
    from airflow.dag_processing.dagbag import DagBag
    from newsdedup.airflow_helpers import crawl_shard_time_limit

    window = 30 * 60  # no source of a shard starts later
    assert crawl_shard_time_limit({}) == timedelta(seconds=window + 300 + 2 * 30 + 60)
    assert crawl_shard_time_limit({"NEWSDEDUP_SOURCE_BUDGET_SECONDS": "20"}) == timedelta(seconds=window + 140)
    bag = DagBag(dag_folder=str(Path(__file__).resolve().parents[1] / "dags" / "news_ingest.py"))
    assert bag.import_errors == {}
    assert bag.dags["news_ingest"].get_task("crawl_shard").execution_timeout == crawl_shard_time_limit()
