"""Gone articles: a stored article whose page later answers 404 or 410 is marked (articles.gone_at), kept and
still shown, not fetched again every run, and does not make the run partial; a page that comes back is unmarked.
A missing robots.txt on the same site is logged `ok` (RFC 9309: no rules), not as a failed request.
Real PostgreSQL, real HTTP on 127.0.0.1, `pipeline.run_once` (the code path of `newsdedup ingest`).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from newsdedup.config import Settings

from tests.conftest import query
from tests.httpfixtures import LocalHTTPServer, RequestHandler
from tests.newssite import article_page, hourly, one_feed_settings, rss_feed

pytestmark = pytest.mark.integration

KEPT, REMOVED, NEVER = "/haber/liman-koprusu.html", "/news/recalled-ferry-report.html", "/news/draft-only.html"
PUBLISHED = "Mon, 09 Nov 2026 06:15:00 GMT"
ARTICLES = {
    KEPT: (
        "Liman köprüsü iki hafta sonu trafiğe kapanacak",
        [
            "Karayolları müdürlüğü, liman köprüsünün genleşme derzlerinin yenilenmesi için bu ay iki hafta sonu "
            "boyunca araç trafiğine kapatılacağını duyurdu; otobüsler tünel güzergâhına yönlendirilecek.",
            "Bisikletliler ve yayalar köprünün doğu tarafındaki yürüyüş yolunu kullanmaya devam edebilecek, "
            "tünel girişinde kuyrukları azaltmak için ek personel görevlendirileceği belirtildi.",
            "Derzlerin köprünün açılışından bu yana değiştirilmediği, çalışmanın geçen yıl maraton ve parça "
            "sıkıntısı nedeniyle iki kez ertelendiği öğrenildi.",
        ],
    ),
    REMOVED: (
        "Ferry operator's safety report questioned by inspectors",
        [
            "Maritime inspectors questioned the island ferry operator's annual safety report on Thursday, saying "
            "two of its lifeboat drills had been recorded on days when the vessel was in dry dock.",
            "The operator said a clerical error had put the wrong dates on the forms and that every drill had "
            "taken place, and it promised to send the inspectors the crew rosters for both weeks.",
            "Island councillors asked for the report to be published in full before the winter timetable starts, "
            "when the number of sailings falls and each crossing carries more passengers.",
        ],
    ),
    NEVER: (
        "Draft",
        ["This page was announced by the feed and removed before anyone fetched it for the first time."],
    ),
}


@dataclass
class Site:
    """A site whose feed (read in full every run: no validators) announces its articles, some later removed."""

    server: LocalHTTPServer
    feed_paths: list[str] = field(default_factory=lambda: [KEPT, REMOVED])
    status: dict[str, int] = field(default_factory=dict)  # path -> status answered instead of the page
    updated: dict[str, str] = field(default_factory=dict)  # path -> the entry's atom:updated

    def feed(self) -> str:
        return rss_feed(self.server, "Courier", ARTICLES, self.feed_paths, PUBLISHED, self.updated)

    def serve(self, h: RequestHandler, path: str) -> None:
        status = self.status.get(path, 200)
        h.reply(status, article_page(*ARTICLES[path]) if status == 200 else "<h1>Not here</h1>")


@pytest.fixture
def site() -> Iterator[Site]:
    server = LocalHTTPServer().start()  # no /robots.txt route: it answers 404
    site = Site(server)
    server.route("/feed.xml", lambda h: h.reply(200, site.feed(), content_type="application/rss+xml"))
    for path in ARTICLES:
        server.route(path, lambda h, p=path: site.serve(h, p))
    yield site
    server.stop()


@pytest.fixture
def settings(db_url: str, site: Site, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    return one_feed_settings(db_url, tmp_path, monkeypatch, "courier", site.server.url("/feed.xml"))


def gone(db_url: str, url: str) -> tuple:
    """(gone_at, gone_status) of the article stored for url."""
    (row,) = query(db_url, "SELECT gone_at, gone_status FROM articles WHERE url = %s", (url,))
    return row


def after_last_fetch() -> str:
    """An atom:updated later than every fetch so far (whole seconds, as feeds write them)."""
    time.sleep(1.1)
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.mark.parametrize("status", [404, 410])
def test_removed_page_is_marked_gone_kept_and_not_fetched_every_run(
    settings: Settings, site: Site, status: int
) -> None:
    """Stored, then edited (the feed dates it after our fetch) and removed: one request finds it gone; later
    runs neither fetch it again nor turn partial, and the article stays stored and listed, marked."""
    db, removed = settings.db_url, site.server.url(REMOVED)
    first = hourly(settings, run_key="h1")
    assert first["status"] == "success" and first["articles_new"] == 2
    stored = query(db, "SELECT article_id, title, text, content_hash FROM articles ORDER BY article_id")
    assert gone(db, removed) == (None, None)

    site.updated[REMOVED] = after_last_fetch()
    site.status[REMOVED] = status
    runs = [hourly(settings, run_key=f"h{n}") for n in range(2, 5)]

    assert site.server.hits(REMOVED) == 2  # stored once, found gone once, then left alone
    assert [(r["status"], r["pages_failed"]) for r in runs] == [("success", 0)] * 3
    gone_at, gone_status = gone(db, removed)
    assert gone_status == status and gone_at is not None
    assert gone(db, site.server.url(KEPT)) == (None, None)
    # Kept as it was, and still shown: the story view lists it with its mark.
    assert query(db, "SELECT article_id, title, text, content_hash FROM articles ORDER BY article_id") == stored
    assert query(db, "SELECT url, gone_at IS NOT NULL FROM articles_dedup ORDER BY url") == sorted(
        [(site.server.url(KEPT), False), (removed, True)]
    )
    # The one request that found it gone is in crawl_log with its status.
    assert query(
        db, "SELECT outcome, http_status FROM crawl_log WHERE url = %s AND request_kind = 'article' "
        "ORDER BY crawl_id", (removed,)
    ) == [("ok", 200), ("http_error", status)]


def test_page_that_comes_back_is_unmarked(settings: Settings, site: Site) -> None:
    """Gone, then the feed dates a new change and the page answers again: fetched, stored, no longer gone."""
    db, removed = settings.db_url, site.server.url(REMOVED)
    hourly(settings, run_key="a")
    site.updated[REMOVED] = after_last_fetch()
    site.status[REMOVED] = 404
    hourly(settings, run_key="b")
    assert gone(db, removed)[1] == 404
    del site.status[REMOVED]
    site.updated[REMOVED] = (datetime.now(UTC) + timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    back = hourly(settings, run_key="c")
    assert back["status"] == "success" and site.server.hits(REMOVED) == 3
    assert gone(db, removed) == (None, None)


def test_a_page_never_stored_that_answers_404_is_still_a_failure(settings: Settings, site: Site) -> None:
    """Only a stored article can be gone: a new link that is broken is a failed page, as before."""
    site.feed_paths.append(NEVER)
    site.status[NEVER] = 404
    row = hourly(settings, run_key="x")
    assert (row["status"], row["pages_failed"], row["articles_new"]) == ("partial", 1, 2)
    assert query(settings.db_url, "SELECT count(*) FROM articles WHERE gone_at IS NOT NULL") == [(0,)]


def test_missing_robots_txt_is_not_a_failed_request(settings: Settings, site: Site) -> None:
    """The site has no robots.txt (404): everything is allowed and crawl_log records it as `ok` with its status,
    so the failed-request counts (outcome not ok / not_modified) stay at zero."""
    row = hourly(settings, run_key="r")
    assert row["status"] == "success" and site.server.hits("/robots.txt") == 1
    db = settings.db_url
    assert query(db, "SELECT outcome, http_status, error_class FROM crawl_log WHERE request_kind = 'robots'") == [
        ("ok", 404, None)
    ]
    assert query(db, "SELECT count(*) FROM crawl_log WHERE outcome NOT IN ('ok', 'not_modified')") == [(0,)]
