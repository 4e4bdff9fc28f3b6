"""The hostile web: one bad behaviour per test, through the real crawl path, against real PostgreSQL.

Every test runs a whole ingestion (sync_sources, begin_run, crawl_source for every source with one
shared Fetcher, process_pages, finish_run) with two sources: `bad`, on a hostile server on
127.0.0.1, and `good`, on another server. Before that, the good source's first article was stored
by an earlier run. Each test asserts

- what `crawl_log` recorded for the bad source (outcome, HTTP status, error class, message),
- that nothing already stored changed (the `articles` rows from before are identical afterwards),
- that the rest of the run completed (the good source stored its new article in the same run).

Timeouts are 1 s and responses are capped at 2 MiB (NEWSDEDUP_FETCH_TIMEOUT, NEWSDEDUP_MAX_PAGE_BYTES),
so the file runs in well under a minute and a half.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import psycopg2
import pytest
import yaml
from newsdedup import pipeline, run_report
from newsdedup.config import ConfigError, Settings
from newsdedup.fetch import Fetcher, FetchPolicy
from newsdedup.sources import Source

from tests.conftest import make_due
from tests.httpfixtures import (
    LocalHTTPServer,
    RequestHandler,
    drip,
    drip_headers,
    free_port,
    gzip_bomb,
    hang,
    redirect,
    reset_connection,
    static,
    stream,
)

pytestmark = pytest.mark.integration

TIMEOUT = 1.0
MAX_PAGE_BYTES = 2 * 1024 * 1024  # the 10,000-item feed is 1.2 MB


def article_html(title: str, paragraphs: list[str], head: str = "", lang: str = "en") -> str:
    """A plain news page that the extractor reads reliably."""
    body = "\n".join(f"<p>{p}</p>" for p in paragraphs)
    return (
        f'<!DOCTYPE html><html lang="{lang}"><head><meta charset="utf-8"><title>{title}</title>{head}</head>'
        f"<body><nav><a href='/'>Home</a></nav><article><h1>{title}</h1>{body}</article>"
        "<footer>Copyright</footer></body></html>"
    )


GOOD_A = article_html(
    "Harbour bridge reopens after two years of repairs",
    [
        "The harbour bridge reopened to traffic on Saturday morning after two years of structural repairs, "
        "the city's transport department said in a statement.",
        "Engineers replaced more than four hundred steel cables and resurfaced the entire deck, a project "
        "that cost the city considerably more than the original estimate.",
        "Commuters who had faced long detours through the industrial district welcomed the news, while "
        "local shop owners said they hoped customers would return quickly.",
    ],
)
GOOD_B = article_html(
    "Library extends opening hours for exam season",
    [
        "The central library will stay open until midnight for the next six weeks so that students can "
        "prepare for their final examinations, the library board announced.",
        "Extra staff have been hired for the evening shifts, and the reading rooms on the third floor "
        "will be reserved for quiet study during the extended hours.",
        "The board said it would review attendance figures at the end of the period before deciding "
        "whether to make the longer hours permanent.",
    ],
)
TURKISH_TITLE = "İstanbul'da yoğun kar yağışı ulaşımı aksattı"
TURKISH_PARAGRAPHS = [
    "Şehir genelinde etkili olan kar yağışı nedeniyle ulaşımda ciddi aksamalar yaşanıyor; sürücüler "
    "köprü bağlantı yollarında uzun kuyruklar oluştuğunu söylüyor.",
    "Öğrenciler için okullar bugün tatil edildi. Meteoroloji Genel Müdürlüğü, soğuk havanın hafta "
    "sonuna kadar süreceğini açıkladı ve vatandaşları dikkatli olmaya çağırdı.",
    "Çarşamba günü ılık bir hava bekleniyor; belediye ekipleri ağaçları, güzel çiçekleri ve ışıklı "
    "sokakları korumak için gece boyunca çalıştı.",
]
TURKISH_HTML = article_html(TURKISH_TITLE, TURKISH_PARAGRAPHS, lang="tr")


def rss(items: list[tuple[str, str] | str], extra: str = "") -> str:
    """An RSS 2.0 feed; items are links or (link, pubDate) pairs."""
    parts = []
    for item in items:
        link, date = (item, "Sat, 14 Mar 2026 08:00:00 GMT") if isinstance(item, str) else item
        parts.append(f"<item><title>Item</title><link>{link}</link><pubDate>{date}</pubDate></item>")
    return (
        f'<?xml version="1.0" encoding="utf-8"?>{extra}<rss version="2.0"><channel><title>Feed</title>'
        f"{''.join(parts)}</channel></rss>"
    )


def feed_handler(text: str) -> object:
    """Serve a feed with an ETag, answering 304 to a matching If-None-Match."""
    etag = f'"{uuid.uuid5(uuid.NAMESPACE_URL, text).hex[:16]}"'

    def handler(h: RequestHandler) -> None:
        if h.headers.get("If-None-Match") == etag:
            h.reply(304, headers={"ETag": etag}, content_type=None)
        else:
            h.reply(200, text, headers={"ETag": etag}, content_type="application/rss+xml; charset=utf-8")

    return handler


@dataclass
class LogRow:
    """One crawl_log row of the bad source."""

    request_kind: str
    outcome: str
    http_status: int | None
    error_class: str | None
    error_message: str | None
    url: str
    bytes: int


class World:
    """A good site with one stored article, a hostile site, a database, and a way to run them."""

    def __init__(self, db_url: str, tmp_path: Path, good: LocalHTTPServer, bad: LocalHTTPServer) -> None:
        self.db_url = db_url
        self.good = good
        self.bad = bad
        self.sources_path = tmp_path / "sources.yaml"
        self.settings = Settings(db_url=db_url, sources_path=self.sources_path)
        self.good_items = [good.url("/a.html")]
        good.route("/robots.txt", static("User-agent: *\nAllow: /\n", content_type="text/plain"))
        good.route("/a.html", static(GOOD_A))
        good.route("/b.html", static(GOOD_B))
        good.route("/feed.xml", lambda h: feed_handler(rss(self.good_items))(h))
        self.run_id = 0
        self.reports: dict[str, dict] = {}
        self.row: dict = {}

    def start(self) -> None:
        """First run: the good source alone stores article A; then the good feed also lists B."""
        row = self.run_pipeline([])
        assert (row["status"], row["articles_new"]) == ("success", 1), row
        self.snapshot = self.articles()
        self.good_items.append(self.good.url("/b.html"))

    def articles(self) -> list[tuple]:
        """Every stored article row, all columns."""
        return self.query("SELECT * FROM articles ORDER BY article_id")

    def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        with psycopg2.connect(self.db_url) as conn, conn.cursor() as cur:
            cur.execute(sql, params or None)
            return cur.fetchall()

    def run_pipeline(self, bad_sources: list[dict]) -> dict:
        """One whole run through the pipeline steps, every source on one shared Fetcher."""
        good = {"name": "good", "url": self.good.url("/feed.xml"), "kind": "rss", "language": "en"}
        self.sources_path.write_text(yaml.safe_dump({"sources": [good, *bad_sources]}), encoding="utf-8")
        pipeline.sync_sources(self.settings)
        make_due(self.db_url)  # each run an hour after the last: every source is due again
        run = pipeline.begin_run(self.db_url, f"hostile__{uuid.uuid4().hex[:12]}", "cli")
        self.run_id = run["run_id"]
        with Fetcher(FetchPolicy.from_env()) as fetcher:
            # "bad..." sorts before "good": the good source is crawled after the hostile one.
            reports = [pipeline.crawl_source(self.db_url, self.run_id, name, fetcher) for name in run["sources"]]
        processed = pipeline.process_pages(self.db_url, self.run_id)
        self.row = pipeline.finish_run(self.db_url, self.run_id, reports, processed)
        self.reports = {r["source"]: r for r in reports}
        return self.row

    def crawl(self, **bad: object) -> dict:
        """Run with a bad source (fields as in the sources file) and check the invariants; return its report."""
        source = {"name": "bad", "kind": "rss"} | bad
        if "url" not in source:
            source["url"] = self.bad.url("/feed.xml")
        self.run_pipeline([source])
        assert "good" not in self.row["failed_sources"], self.row
        # The rest of the run completed: the good source stored its new article in this run.
        stored_b = self.query("SELECT count(*) FROM articles WHERE url = %s", (self.good.url("/b.html"),))
        assert stored_b == [(1,)], self.reports
        # Nothing stored before changed.
        before_ids = {row[0] for row in self.snapshot}
        assert [row for row in self.articles() if row[0] in before_ids] == self.snapshot
        return self.reports[source["name"]]

    def log(self, source: str = "bad") -> list[LogRow]:
        """crawl_log rows of a source in the last run, in order."""
        rows = self.query(
            "SELECT c.request_kind, c.outcome, c.http_status, c.error_class, c.error_message, c.url, c.bytes "
            "FROM crawl_log c JOIN sources s USING (source_id) WHERE c.run_id = %s AND s.name = %s ORDER BY c.crawl_id",
            (self.run_id, source),
        )
        return [LogRow(*row) for row in rows]

    def row_for(self, path: str, kind: str = "article") -> LogRow:
        """The single crawl_log row of the bad server's path with this request kind."""
        matches = [r for r in self.log() if r.url == self.bad.url(path) and r.request_kind == kind]
        assert len(matches) == 1, self.log()
        return matches[0]

    def serve_feed(self, *paths: str) -> None:
        """The bad server's /feed.xml lists these paths of the bad server."""
        self.bad.route("/feed.xml", feed_handler(rss([self.bad.url(p) for p in paths])))

    def article_for(self, path: str) -> tuple | None:
        """(title, text, canonical_url) of the article stored for a bad-server path, if any."""
        rows = self.query("SELECT title, text, canonical_url FROM articles WHERE url = %s", (self.bad.url(path),))
        return rows[0] if rows else None


@pytest.fixture
def world(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    """A world with the good article stored; servers stopped afterwards."""
    monkeypatch.setenv("NEWSDEDUP_ALLOW_NETWORKS", "127.0.0.0/8")
    monkeypatch.setenv("NEWSDEDUP_MIN_HOST_DELAY", "0")
    monkeypatch.setenv("NEWSDEDUP_FETCH_TIMEOUT", str(TIMEOUT))
    monkeypatch.setenv("NEWSDEDUP_MAX_PAGE_BYTES", str(MAX_PAGE_BYTES))
    monkeypatch.setenv("NEWSDEDUP_RETRIES", "1")
    monkeypatch.delenv("NEWSDEDUP_USER_AGENT", raising=False)
    # Two hosts, not two ports of one host: per-host politeness and "same host" checks see two sites.
    with LocalHTTPServer("127.0.0.1") as good, LocalHTTPServer("127.0.0.2") as bad:
        w = World(db_url, tmp_path, good, bad)
        w.start()
        yield w


def assert_page_failed(world: World, report: dict, path: str, outcome: str, error_class: str) -> LogRow:
    """The bad source's feed was read, its page failed as expected, and nothing of it was stored."""
    row = world.row_for(path)
    assert (row.outcome, row.error_class) == (outcome, error_class), row
    assert report["failed"] is False and report["pages_failed"] == 1
    assert world.article_for(path) is None
    return row


# ------------------------------------------------------------------ pages


def test_malformed_html_is_recovered(world: World) -> None:
    broken = (
        "<html><head><title>Broken</title><body><div><p>"
        + TURKISH_PARAGRAPHS[0]
        + "<p><b><i>"
        + TURKISH_PARAGRAPHS[1]
        + "</div></span></table><p>"
        + TURKISH_PARAGRAPHS[2]
        + "<<<>>>&&&;"
    )
    world.serve_feed("/page")
    world.bad.route("/page", static(broken))
    report = world.crawl()
    assert world.row_for("/page").outcome == "ok"
    assert report["pages_fetched"] == 1
    (_title, text, _canonical) = world.article_for("/page")
    assert "Meteoroloji Genel Müdürlüğü" in text


def test_truncated_body_is_not_stored_as_complete(world: World) -> None:
    # Content-Length promises 100 000 bytes; the server sends 13 and closes.
    world.serve_feed("/page")
    world.bad.route("/page", reset_connection(after_headers=True))
    report = world.crawl()
    row = assert_page_failed(world, report, "/page", "connection_error", "ProtocolError")
    assert "IncompleteRead" in (row.error_message or "") or "Connection" in (row.error_message or "")


def test_truncated_html_markup_keeps_what_arrived(world: World) -> None:
    cut = TURKISH_HTML[: TURKISH_HTML.index("Çarşamba")]  # stops mid-article, no closing tags
    world.serve_feed("/page")
    world.bad.route("/page", static(cut))
    world.crawl()
    assert world.row_for("/page").outcome == "ok"
    (_title, text, _canonical) = world.article_for("/page")
    assert "Öğrenciler için okullar bugün tatil edildi" in text and "Çarşamba" not in text


def test_empty_200_is_an_extraction_failure(world: World) -> None:
    world.serve_feed("/page")
    world.bad.route("/page", static(b""))
    report = world.crawl()
    fetched, extracted = world.row_for("/page"), world.row_for("/page", "extract")
    assert (fetched.outcome, fetched.http_status, fetched.bytes) == ("ok", 200, 0)
    assert (extracted.outcome, extracted.error_class, extracted.error_message) == (
        "extract_failed",
        "ExtractionError",
        "empty page",
    )
    assert report["pages_fetched"] == 1 and world.row["extract_failed"] == 1
    assert world.article_for("/page") is None


def test_huge_streamed_page_is_cut_off(world: World) -> None:
    world.serve_feed("/page")
    world.bad.route("/page", stream(50 * 1024 * 1024))
    report = world.crawl()
    row = assert_page_failed(world, report, "/page", "too_large", "BodyTooLarge")
    assert MAX_PAGE_BYTES < row.bytes <= MAX_PAGE_BYTES + 128 * 1024


def test_huge_declared_length_is_refused_unread(world: World) -> None:
    world.serve_feed("/page")
    world.bad.route("/page", stream(50 * 1024 * 1024, declare_length=True))
    report = world.crawl()
    row = assert_page_failed(world, report, "/page", "too_large", "BodyTooLarge")
    assert "Content-Length 52428800 exceeds" in (row.error_message or "") and row.bytes == 0


def test_slow_drip_hits_the_deadline(world: World) -> None:
    world.serve_feed("/page")
    world.bad.route("/page", drip(TURKISH_HTML.encode(), interval=0.05, step=10))
    started = time.monotonic()
    report = world.crawl()
    assert_page_failed(world, report, "/page", "timeout", "TotalTimeout")
    assert time.monotonic() - started < 10


def test_dripping_headers_hit_the_deadline(world: World) -> None:
    world.serve_feed("/page")
    world.bad.route("/page", drip_headers(interval=0.05))
    report = world.crawl()
    assert world.row_for("/page").outcome == "timeout"
    assert report["pages_failed"] == 1 and world.article_for("/page") is None


def test_hanging_connection_times_out(world: World) -> None:
    world.serve_feed("/page")
    world.bad.route("/page", hang(30))
    report = world.crawl()
    row = world.row_for("/page")
    assert row.outcome == "timeout" and row.error_class in ("TotalTimeout", "ReadTimeout"), row
    assert report["pages_failed"] == 1
    # A timeout may go away: the feed's validators are dropped so the next run reads it again.
    assert world.query("SELECT etag FROM sources WHERE name = 'bad'") == [(None,)]


def test_connection_reset_is_retried_then_recorded(world: World) -> None:
    world.serve_feed("/page")
    world.bad.route("/page", reset_connection())
    report = world.crawl()
    row = assert_page_failed(world, report, "/page", "connection_error", "ConnectionError")
    assert (row.error_message or "").endswith("(after 2 attempts)")
    assert world.bad.hits("/page") == 2


def test_redirect_loop(world: World) -> None:
    world.serve_feed("/page")
    world.bad.route("/page", redirect("/page2"))
    world.bad.route("/page2", redirect("/page"))
    report = world.crawl()
    row = assert_page_failed(world, report, "/page", "redirect_error", "RedirectLoop")
    assert "redirect loop at" in (row.error_message or "")


@pytest.mark.parametrize("target", ["http://10.0.0.1/admin", "http://169.254.169.254/latest/meta-data/"])
def test_redirect_to_a_private_address_is_refused(world: World, target: str) -> None:
    world.serve_feed("/page")
    world.bad.route("/page", redirect(target))
    report = world.crawl()
    row = assert_page_failed(world, report, "/page", "address_refused", "AddressRefused")
    assert target.split("/")[2] in (row.error_message or "")


def test_redirect_to_loopback_outside_the_allow_list(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEWSDEDUP_ALLOW_NETWORKS", "127.0.0.1/32,127.0.0.2/32")
    world.serve_feed("/page")
    world.bad.route("/page", redirect(f"http://127.0.0.3:{world.bad.port}/secret"))
    report = world.crawl()
    row = assert_page_failed(world, report, "/page", "address_refused", "AddressRefused")
    assert "refusing 127.0.0.3: loopback address" in (row.error_message or "")
    assert world.bad.hits("/secret") == 0


def test_redirect_to_a_file_url(world: World) -> None:
    world.serve_feed("/page")
    world.bad.route("/page", redirect("file:///etc/passwd"))
    report = world.crawl()
    row = assert_page_failed(world, report, "/page", "redirect_error", "InvalidRedirect")
    assert "unsupported scheme 'file'" in (row.error_message or "")


@pytest.mark.parametrize("status", [404, 410])
def test_client_errors_are_recorded_once(world: World, status: int) -> None:
    world.serve_feed("/page")
    world.bad.route("/page", static("gone", status=status))
    report = world.crawl()
    row = assert_page_failed(world, report, "/page", "http_error", "HTTPError")
    assert row.http_status == status and world.bad.hits("/page") == 1
    # A 404/410 will not heal: the feed's validators are kept, the next run costs one 304.
    assert world.query("SELECT etag IS NOT NULL FROM sources WHERE name = 'bad'") == [(True,)]


def test_server_error_is_retried_then_recorded(world: World) -> None:
    world.serve_feed("/page")
    world.bad.route("/page", static("boom", status=500))
    report = world.crawl()
    row = assert_page_failed(world, report, "/page", "http_error", "HTTPError")
    assert row.http_status == 500 and row.error_message == "HTTP 500 Internal Server Error (after 2 attempts)"
    assert world.bad.hits("/page") == 2
    assert world.query("SELECT etag FROM sources WHERE name = 'bad'") == [(None,)]


def test_429_retry_after_is_honoured(world: World) -> None:
    world.serve_feed("/page")
    world.bad.route("/page", static("slow down", status=429, headers={"Retry-After": "1"}))
    report = world.crawl()
    row = assert_page_failed(world, report, "/page", "http_error", "HTTPError")
    assert row.http_status == 429
    first, second = world.bad.requests_for("/page")
    assert second.at - first.at >= 1.0 - 0.03


def test_long_retry_after_leaves_the_host_alone(world: World) -> None:
    world.serve_feed("/page", "/other")
    world.bad.route("/page", static("maintenance", status=503, headers={"Retry-After": "7200"}))
    world.bad.route("/other", static(TURKISH_HTML))
    report = world.crawl()
    assert world.row_for("/page").http_status == 503
    other = world.row_for("/other")
    assert (other.outcome, other.error_class) == ("deferred", "HostBackoff")
    assert "asked to retry after 7200 s" in (other.error_message or "")
    assert world.bad.hits("/other") == 0 and report["pages_failed"] == 2


def test_robots_txt_disallow(world: World) -> None:
    world.serve_feed("/news/page")
    world.bad.route("/robots.txt", static("User-agent: *\nDisallow: /news/\n", content_type="text/plain"))
    world.bad.route("/news/page", static(TURKISH_HTML))
    report = world.crawl()
    row = assert_page_failed(world, report, "/news/page", "robots_disallowed", "RobotsDisallowed")
    assert "disallows this URL" in (row.error_message or "")
    assert world.bad.hits("/news/page") == 0
    assert world.row_for("/robots.txt", "robots").outcome == "ok"


def test_robots_txt_that_errors_means_stay_away(world: World) -> None:
    world.bad.route("/robots.txt", static("oops", status=500))
    world.serve_feed("/page")
    report = world.crawl()
    robots = world.row_for("/robots.txt", "robots")
    assert (robots.outcome, robots.http_status) == ("http_error", 500)
    feed = world.row_for("/feed.xml", "feed")
    assert (feed.outcome, feed.error_class) == ("robots_disallowed", "RobotsDisallowed")
    assert "robots.txt unavailable (HTTP 500)" in (feed.error_message or "")
    assert report["failed"] is True and report["error"].startswith("RobotsDisallowed")
    assert "bad" in world.row["failed_sources"] and world.bad.hits("/feed.xml") == 0


def test_non_html_content_type_is_not_downloaded(world: World) -> None:
    world.serve_feed("/paper.pdf")
    world.bad.route("/paper.pdf", stream(200_000, chunk=b"%PDF-1.7 " * 1000, content_type="application/pdf"))
    report = world.crawl()
    row = assert_page_failed(world, report, "/paper.pdf", "unsupported_content_type", "UnsupportedContentType")
    assert "'application/pdf'" in (row.error_message or "") and row.bytes == 0


def test_json_where_a_page_should_be(world: World) -> None:
    world.serve_feed("/api")
    world.bad.route("/api", static('{"title": "not a page"}', content_type="application/json"))
    report = world.crawl()
    row = assert_page_failed(world, report, "/api", "unsupported_content_type", "UnsupportedContentType")
    assert "expected application/xhtml+xml, text/html" in (row.error_message or "")


def test_wrong_declared_charset_is_corrected(world: World) -> None:
    world.serve_feed("/page")
    world.bad.route("/page", static(TURKISH_HTML.encode("cp1254"), content_type="text/html; charset=utf-8"))
    world.crawl()
    assert world.row_for("/page").outcome == "ok"
    (title, text, _canonical) = world.article_for("/page")
    assert title == TURKISH_TITLE and "Öğrenciler için okullar bugün tatil edildi" in text


def test_undeclared_windows_1254_page(world: World) -> None:
    page = TURKISH_HTML.replace('<meta charset="utf-8">', "")
    world.serve_feed("/page")
    world.bad.route("/page", static(page.encode("cp1254"), content_type="text/html"))
    world.crawl()
    (title, text, _canonical) = world.article_for("/page")
    assert title == TURKISH_TITLE and "ışıklı sokakları" in text
    assert world.query("SELECT encoding FROM raw_pages WHERE url = %s", (world.bad.url("/page"),)) == [("cp1254",)]


def test_gzip_bomb(world: World) -> None:
    world.serve_feed("/page")
    world.bad.route("/page", gzip_bomb(64 * 1024 * 1024))
    report = world.crawl()
    row = assert_page_failed(world, report, "/page", "too_large", "DecompressedTooLarge")
    assert row.bytes <= 70 * 1024  # about 64 KiB on the wire; never the 64 MiB they inflate to


def test_nul_bytes_and_control_characters(world: World) -> None:
    page = TURKISH_HTML.replace("Öğrenciler", "Öğ\x00renciler\x01\x1b")
    world.serve_feed("/page")
    world.bad.route("/page", static(page))
    world.crawl()
    (_title, text, _canonical) = world.article_for("/page")
    assert "\x00" not in text and "Meteoroloji" in text


def test_canonical_link_to_another_host_is_ignored(world: World) -> None:
    # The page claims to be the good site's stored article: it must not replace or shadow it.
    stored = world.good.url("/a.html")
    head = f'<link rel="canonical" href="{stored}"><meta property="og:url" content="{stored}">'
    world.serve_feed("/copy")
    world.bad.route("/copy", static(article_html("Harbour bridge: the real story", TURKISH_PARAGRAPHS, head)))
    world.crawl()
    (_title, _text, canonical) = world.article_for("/copy")
    assert canonical == world.bad.url("/copy")
    assert world.query("SELECT count(*) FROM articles WHERE canonical_url = %s", (world.good.url("/a.html"),)) == [(1,)]


def test_private_address_in_a_feed(world: World) -> None:
    world.bad.route(
        "/feed.xml", feed_handler(rss(["http://10.1.2.3/internal", "http://[::1]/x", world.bad.url("/page")]))
    )
    world.bad.route("/page", static(TURKISH_HTML))
    report = world.crawl()
    refused = [r for r in world.log() if r.outcome == "address_refused"]
    assert [r.url for r in refused] == ["http://10.1.2.3/internal", "http://[::1]/x"]
    assert report["pages_fetched"] == 1 and world.article_for("/page") is not None


def test_known_article_under_tracking_and_fragment_variants_is_not_refetched(world: World) -> None:
    hits = world.good.hits("/a.html")
    variants = [world.good.url("/a.html?utm_source=rss&utm_medium=feed"), world.good.url("/a.html#comments")]
    world.bad.route("/feed.xml", feed_handler(rss(variants)))
    report = world.crawl()
    assert (report["urls_discovered"], report["urls_skipped_known"]) == (1, 1)
    assert world.good.hits("/a.html") == hits


# ------------------------------------------------------------------ feeds and sitemaps


def test_xml_entity_bomb_feed(world: World) -> None:
    # Billion laughs: l9 expands to 10^9 copies of "lol".
    entities = '<!ENTITY l0 "lol">' + "".join(f'<!ENTITY l{i} "{f"&l{i - 1};" * 10}">' for i in range(1, 10))
    feed = rss([world.bad.url("/page")], extra=f"<!DOCTYPE rss [{entities}]>").replace("Feed", "&l9;")
    world.bad.route("/feed.xml", feed_handler(feed))
    report = world.crawl()
    feed = world.row_for("/feed.xml", "feed")
    assert (feed.outcome, feed.error_class) == ("parse_error", "EntitiesForbidden")
    assert "entity expansion" in (feed.error_message or "")
    assert report["failed"] is True and "bad" in world.row["failed_sources"]
    assert world.bad.hits("/page") == 0


def test_external_entity_feed(world: World) -> None:
    doctype = '<!DOCTYPE rss [<!ENTITY secret SYSTEM "file:///etc/passwd">]>'
    world.bad.route("/feed.xml", feed_handler(rss([world.bad.url("/page")], extra=doctype).replace("Item", "&secret;")))
    report = world.crawl()
    feed = world.row_for("/feed.xml", "feed")
    assert (feed.outcome, feed.error_class) == ("parse_error", "EntitiesForbidden")
    assert report["failed"] is True
    assert not world.query("SELECT 1 FROM raw_pages WHERE feed_title LIKE '%root:%'")


def test_feed_body_that_names_a_local_file(world: World) -> None:
    # feedparser.parse("/etc/passwd") would open the file; the crawler never hands it a str.
    world.bad.route("/feed.xml", static("/etc/passwd", content_type="application/rss+xml"))
    report = world.crawl()
    feed = world.row_for("/feed.xml", "feed")
    assert (feed.outcome, feed.error_class) == ("parse_error", "FeedParseError")
    assert report["failed"] is True


def test_html_login_page_instead_of_a_feed(world: World) -> None:
    world.bad.route("/feed.xml", static("<!DOCTYPE html><html><body><form>Sign in</form></body></html>"))
    report = world.crawl(kind="auto")
    feed = world.row_for("/feed.xml", "feed")
    assert (feed.outcome, feed.error_class) == ("parse_error", "NotAFeed")
    assert report["error"].startswith("NotAFeed: expected an RSS/Atom/JSON feed or a sitemap, got an HTML page")


def test_feed_host_refuses_connections(world: World) -> None:
    report = world.crawl(url=f"http://127.0.0.2:{free_port('127.0.0.2')}/feed.xml")
    (robots, feed) = world.log()
    assert (robots.request_kind, robots.outcome) == ("robots", "connection_error")
    assert (feed.outcome, feed.error_class) == ("robots_disallowed", "RobotsDisallowed")
    assert report["failed"] is True and "robots.txt unavailable (ConnectionError)" in report["error"]


def test_feed_that_hangs(world: World) -> None:
    world.bad.route("/feed.xml", hang(30))
    report = world.crawl()
    feed = world.row_for("/feed.xml", "feed")
    assert feed.outcome == "timeout" and report["failed"] is True and "Timeout" in report["error"]


def test_feed_with_invalid_dates(world: World) -> None:
    items = [
        (world.bad.url("/p1"), "the day after tomorrow"),
        (world.bad.url("/p2"), "Sat, 14 Mar 2999 08:00:00 GMT"),
        (world.bad.url("/p3"), "Mon, 45 Foo 2026 99:99:99 +9999"),
    ]
    world.bad.route("/feed.xml", feed_handler(rss(items)))
    for path in ("/p1", "/p2", "/p3"):
        world.bad.route(path, static(TURKISH_HTML.replace("yağışı", f"yağışı {path}")))
    report = world.crawl()
    assert report["failed"] is False and report["pages_fetched"] == 3
    assert world.query("SELECT feed_published FROM raw_pages WHERE run_id = %s", (world.run_id,)).count((None,)) >= 3
    assert world.query("SELECT count(*) FROM articles WHERE published_at > now() + interval '1 day'") == [(0,)]


def test_feed_with_relative_and_duplicate_links(world: World) -> None:
    feed = rss(["/page", "page?utm_source=rss", world.bad.url("/page#top"), "//" + world.bad.url("/page")[7:], ""])
    world.bad.route("/feed.xml", feed_handler(feed))
    world.bad.route("/page", static(TURKISH_HTML))
    report = world.crawl()
    assert report["urls_discovered"] == 1 and world.bad.hits("/page") == 1
    assert world.article_for("/page") is not None


def test_sitemap_index_that_points_at_itself(world: World) -> None:
    ns = 'xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"'
    index = (
        f'<?xml version="1.0"?><sitemapindex {ns}><sitemap><loc>{world.bad.url("/sitemap.xml")}</loc></sitemap>'
        f"<sitemap><loc>/sitemap.xml?utm_source=x</loc></sitemap><sitemap><loc>/child.xml</loc></sitemap>"
        "</sitemapindex>"
    )
    child = f'<?xml version="1.0"?><urlset {ns}><url><loc>/page</loc></url></urlset>'
    world.bad.route("/sitemap.xml", static(index, content_type="application/xml"))
    world.bad.route("/child.xml", static(child, content_type="application/xml"))
    world.bad.route("/page", static(TURKISH_HTML))
    report = world.crawl(url=world.bad.url("/sitemap.xml"), kind="sitemap")
    assert world.bad.hits("/sitemap.xml") == 1 and world.bad.hits("/child.xml") == 1
    assert report["failed"] is False and world.article_for("/page") is not None


def test_sitemap_with_entity_bomb(world: World) -> None:
    bomb = (
        '<?xml version="1.0"?><!DOCTYPE urlset [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]>'
        '<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"><url><loc>/page&b;</loc></url></urlset>'
    )
    world.bad.route("/sitemap.xml", static(bomb, content_type="application/xml"))
    report = world.crawl(url=world.bad.url("/sitemap.xml"), kind="auto")
    feed = world.row_for("/sitemap.xml", "feed")
    assert (feed.outcome, feed.error_class) == ("parse_error", "EntitiesForbidden")
    assert report["failed"] is True


def test_deeply_nested_json_feed(world: World) -> None:
    world.bad.route("/feed.json", static("[" * 100_000 + "]" * 100_000, content_type="application/feed+json"))
    report = world.crawl(url=world.bad.url("/feed.json"), kind="jsonfeed")
    feed = world.row_for("/feed.json", "feed")
    assert (feed.outcome, feed.error_class) == ("parse_error", "FeedParseError")
    assert "not valid JSON" in (feed.error_message or "") and report["failed"] is True


def test_feed_with_10000_items_is_bounded(world: World) -> None:
    start = datetime(2026, 3, 14, tzinfo=UTC)
    items = [
        (world.bad.url(f"/a/{i}"), format_datetime(start + timedelta(minutes=i), usegmt=True)) for i in range(10_000)
    ]
    world.bad.route("/feed.xml", feed_handler(rss(items)))
    world.bad.route("/robots.txt", static("User-agent: *\nDisallow: /a/\n", content_type="text/plain"))
    started = time.monotonic()
    report = world.crawl(max_articles=5)
    assert time.monotonic() - started < 20
    assert report["failed"] is False, report
    assert (report["urls_discovered"], report["urls_over_limit"]) == (10_000, 9_995)
    article_rows = [r for r in world.log() if r.request_kind == "article"]
    assert len(article_rows) == 5 and {r.outcome for r in article_rows} == {"robots_disallowed"}
    assert [r.url for r in article_rows] == [world.bad.url(f"/a/{i}") for i in range(9_999, 9_994, -1)]  # newest
    # The rest is left for later runs: no validators, so the next run reads the feed again.
    assert world.query("SELECT etag FROM sources WHERE name = 'bad'") == [(None,)]


def test_json_feed_through_the_pipeline(world: World) -> None:
    feed = {
        "version": "https://jsonfeed.org/version/1.1",
        "title": "Bad but valid",
        "items": [{"id": "1", "url": "/page", "title": "T", "date_published": "2026-03-14T08:00:00Z"}, {"id": 2}],
    }
    world.bad.route("/feed.json", static(json.dumps(feed), content_type="application/feed+json"))
    world.bad.route("/page", static(TURKISH_HTML))
    report = world.crawl(url=world.bad.url("/feed.json"), kind="auto")
    assert report["failed"] is False and world.article_for("/page") is not None


# ------------------------------------------------------------------ the run itself


def test_a_crash_on_odd_input_fails_only_its_source(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    real_discover = pipeline.discover

    def discover(source: Source, fetcher: Fetcher, **kwargs: object) -> object:
        if source.name == "bad":
            raise RecursionError("maximum recursion depth exceeded in a parser")
        return real_discover(source, fetcher, **kwargs)

    monkeypatch.setattr(pipeline, "discover", discover)
    report = world.crawl()
    assert report["failed"] is True and report["error"].startswith("RecursionError: maximum recursion depth")
    assert world.row["failed_sources"] == ["bad"] and world.row["status"] == "partial"


def test_a_lost_database_raises_so_the_task_is_retried() -> None:
    with pytest.raises(ConfigError, match="cannot connect to the article database"):
        pipeline.crawl_source(f"postgresql://postgres@127.0.0.1:{free_port()}/newsdedup", 1, "bad")


def test_robots_txt_is_shared_between_runs(world: World) -> None:
    # The baseline run read the good site's robots.txt; this run's new Fetcher reuses the stored copy.
    world.serve_feed("/page")
    world.bad.route("/page", static(TURKISH_HTML))
    world.crawl()
    assert world.good.hits("/robots.txt") == 1
    assert [r for r in world.log("good") if r.request_kind == "robots"] == []
    stored = world.query("SELECT origin, verdict FROM robots_txt ORDER BY origin")
    assert stored == [(world.good.base_url, "parsed"), (world.bad.base_url, "allow_all")]


# ------------------------------------------------------------------ bounded parsing, clean logs (issue 19)


def _scrambled(items: list) -> list:
    """The even-numbered items, then the odd ones: neither oldest nor newest first."""
    return items[::2] + items[1::2]


def _queued(world: World) -> set[str]:
    """Article URLs of the bad source that this run tried."""
    return {r.url for r in world.log() if r.request_kind == "article"}


def _dated_items(world: World, count: int) -> list[tuple[str, str]]:
    """`count` items of the bad site, item i published i minutes after a start, in scrambled order."""
    start = datetime(2026, 3, 14, tzinfo=UTC)
    dates = [format_datetime(start + timedelta(minutes=i), usegmt=True) for i in range(count)]
    return _scrambled([(world.bad.url(f"/a/{i}"), date) for i, date in enumerate(dates)])


def test_depth_bomb_feed_is_refused_before_parsing(world: World) -> None:
    bomb = rss([world.bad.url("/page")]).replace("<title>Feed</title>", "<x>" * 200_000 + "</x>" * 200_000)
    world.bad.route("/feed.xml", feed_handler(bomb))
    report = world.crawl()
    feed = world.row_for("/feed.xml", "feed")
    assert (feed.outcome, feed.error_class) == ("parse_error", "TooDeep")
    assert "NEWSDEDUP_MAX_XML_DEPTH" in (feed.error_message or "")
    assert report["failed"] is True and world.bad.hits("/page") == 0


def test_depth_bomb_that_is_not_well_formed_is_refused(world: World) -> None:
    # Leading junk makes the XML parser give up at once; feedparser's lenient parser would read on.
    world.bad.route("/feed.xml", feed_handler("junk <rss><channel>" + "<x>" * 200_000))
    world.crawl()
    feed = world.row_for("/feed.xml", "feed")
    assert (feed.outcome, feed.error_class) == ("parse_error", "TooDeep")


def test_feed_over_the_entry_cap_keeps_the_newest(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEWSDEDUP_MAX_FEED_ENTRIES", "50")
    world.bad.route("/feed.xml", feed_handler(rss(_dated_items(world, 200))))
    world.bad.route("/robots.txt", static("User-agent: *\nDisallow: /a/\n", content_type="text/plain"))
    report = world.crawl(max_articles=100)
    feed = world.row_for("/feed.xml", "feed")
    assert (feed.outcome, feed.error_class) == ("truncated", "TooManyEntries"), feed
    assert "200 entries" in (feed.error_message or "") and "NEWSDEDUP_MAX_FEED_ENTRIES" in (feed.error_message or "")
    assert report["failed"] is False and report["urls_discovered"] == 50
    assert _queued(world) == {world.bad.url(f"/a/{i}") for i in range(150, 200)}  # the newest, not the first listed


def test_json_feed_over_the_entry_cap_keeps_the_newest(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEWSDEDUP_MAX_FEED_ENTRIES", "10")
    start = datetime(2026, 3, 14, tzinfo=UTC)
    dates = [(start + timedelta(hours=i)).isoformat() for i in range(40)]
    items = [{"id": str(i), "url": f"/a/{i}", "date_published": date} for i, date in enumerate(dates)]
    feed = {"version": "https://jsonfeed.org/version/1.1", "title": "Many", "items": _scrambled(items)}
    world.bad.route("/feed.json", static(json.dumps(feed), content_type="application/feed+json"))
    world.bad.route("/robots.txt", static("User-agent: *\nDisallow: /a/\n", content_type="text/plain"))
    report = world.crawl(url=world.bad.url("/feed.json"), kind="jsonfeed", max_articles=100)
    row = world.row_for("/feed.json", "feed")
    assert (row.outcome, row.error_class, report["urls_discovered"]) == ("truncated", "TooManyEntries", 10)
    assert _queued(world) == {world.bad.url(f"/a/{i}") for i in range(30, 40)}


def test_sitemap_over_the_url_cap_keeps_the_newest(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEWSDEDUP_MAX_SITEMAP_URLS", "20")
    start = datetime(2026, 3, 14, tzinfo=UTC)
    urls = _scrambled([(world.bad.url(f"/a/{i}"), (start + timedelta(days=i)).date().isoformat()) for i in range(60)])
    body = (
        '<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
        + "".join(f"<url><loc>{loc}</loc><lastmod>{day}</lastmod></url>" for loc, day in urls)
        + "</urlset>"
    )
    world.bad.route("/sitemap.xml", static(body, content_type="application/xml"))
    world.bad.route("/robots.txt", static("User-agent: *\nDisallow: /a/\n", content_type="text/plain"))
    report = world.crawl(url=world.bad.url("/sitemap.xml"), kind="sitemap", max_articles=100)
    row = world.row_for("/sitemap.xml", "feed")
    assert (row.outcome, row.error_class) == ("truncated", "TooManyEntries")
    assert "NEWSDEDUP_MAX_SITEMAP_URLS" in (row.error_message or "") and report["urls_discovered"] == 20
    assert _queued(world) == {world.bad.url(f"/a/{i}") for i in range(40, 60)}


def _no_raw_controls(text: str) -> bool:
    """True when text has no CR, LF or escape character."""
    return not any(ch in text for ch in "\r\n\x1b")


def test_reason_phrase_with_cr_does_not_forge_log_lines(world: World, caplog: pytest.LogCaptureFixture) -> None:
    def forged(h: RequestHandler) -> None:
        h.wfile.write(b"HTTP/1.1 404 Gone\rFORGED INFO line\x1b[2J\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")

    world.bad.route("/feed.xml", forged)
    caplog.set_level(logging.DEBUG)
    report = world.crawl()
    feed = world.row_for("/feed.xml", "feed")
    assert feed.outcome == "http_error" and feed.error_message == "HTTP 404 Gone\\rFORGED INFO line\\x1b[2J"
    lines = [r.getMessage() for r in caplog.records if "FORGED" in r.getMessage()]
    assert lines and all(_no_raw_controls(line) for line in lines), lines
    label = run_report.crawl_label(run_report.record_crawl(world.db_url, world.run_id, report))
    assert "FORGED" in label and _no_raw_controls(label), label


def test_sitemap_root_tag_with_lf_does_not_forge_log_lines(world: World, caplog: pytest.LogCaptureFixture) -> None:
    body = '<?xml version="1.0"?><evil xmlns="urn:x&#10;ERROR FORGED line&#13;"><url/></evil>'
    world.bad.route("/sitemap.xml", static(body, content_type="application/xml"))
    caplog.set_level(logging.DEBUG)
    report = world.crawl(url=world.bad.url("/sitemap.xml"), kind="sitemap")
    row = world.row_for("/sitemap.xml", "feed")
    assert (row.outcome, row.error_class) == ("parse_error", "SitemapParseError")
    assert "urn:x\\nERROR FORGED line\\r" in (row.error_message or ""), row
    lines = [r.getMessage() for r in caplog.records if "FORGED" in r.getMessage()]
    assert lines and all(_no_raw_controls(line) for line in lines), lines
    label = run_report.crawl_label(run_report.record_crawl(world.db_url, world.run_id, report))
    assert "FORGED" in label and _no_raw_controls(label), label
