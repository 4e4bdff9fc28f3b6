"""Pages that never yield text (a JavaScript app's empty shell): tried NEWSDEDUP_GIVE_UP_AFTER times, then
given up once, no longer fetched, no longer making runs partial or their feed be read in full; recoverable.
Real PostgreSQL, real HTTP on 127.0.0.1, `pipeline.run_once` (the code path of `newsdedup ingest`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg2
import pytest
from newsdedup import pipeline
from newsdedup.config import ConfigError, Settings
from newsdedup.process import ProcessSettings

from tests.conftest import query
from tests.httpfixtures import LocalHTTPServer, RequestHandler
from tests.newssite import article_page, hourly, one_feed_settings, rss_feed

pytestmark = pytest.mark.integration

GOOD, BAD, LATER = "/news/tram-depot.html", "/story/8812", "/news/harbour-bridge.html"
PUBLISHED = "Tue, 10 Nov 2026 07:30:00 GMT"
ARTICLES = {
    GOOD: (
        "Council approves the new tram depot on the old freight yard",
        [
            "The city council approved plans on Monday for a tram depot on the disused freight yard north of "
            "the river, ending a dispute that had delayed the second tram line by almost two years.",
            "The depot will house forty vehicles and a workshop, and the council expects building work to start "
            "in the spring once the last contamination survey of the site has been completed.",
            "Residents of the neighbouring streets had asked for a noise barrier along the yard, and the final "
            "plan now includes one, the transport committee's chair told reporters after the vote.",
        ],
    ),
    BAD: (
        "Ferry operator cuts winter sailings to the islands",
        [
            "The island ferry operator will run two sailings a day instead of four from December, it said on "
            "Wednesday, blaming the rising price of fuel and a shortage of trained deck crew.",
            "Island councils called the decision a blow to commuters and pupils who cross every morning, and "
            "they asked the regional government to step in with a subsidy before the timetable changes.",
            "The operator said the full timetable would return in April if enough crew finish their training "
            "over the winter months, and that freight sailings are not affected by the cuts.",
        ],
    ),
    LATER: (
        "Harbour bridge closes for two weekends of repairs",
        [
            "The harbour bridge will close to traffic on two weekends this month while engineers replace worn "
            "expansion joints, the highways agency said, with buses diverted through the tunnel.",
            "Cyclists and pedestrians can still cross on the eastern walkway, which stays open throughout, and "
            "the agency promised extra staff at the tunnel entrance to keep the queues moving.",
            "The joints date from the bridge's opening and were due for replacement last year, but the work was "
            "postponed twice because of the marathon and a shortage of the steel parts needed.",
        ],
    ),
}
# What a client-side app serves before its JavaScript runs: no text at all.
APP_SHELL = (
    "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>Island Gazette</title>"
    "<script defer src='/static/app.3f9c.js'></script></head><body><div id='root'></div>"
    "<script>window.__APP__={route:'/story/8812'}</script></body></html>"
)


@dataclass
class Site:
    """A news site whose feed announces a good article and a page that is an empty app shell."""

    server: LocalHTTPServer
    feed_paths: list[str] = field(default_factory=lambda: [GOOD, BAD])
    bad_fixed: bool = False  # the page became a real article page
    validators: bool = True  # the feed sends an ETag and answers 304
    updated: dict[str, str] = field(default_factory=dict)  # path -> the entry's atom:updated

    @property
    def etag(self) -> str:
        return f'"{hashlib.sha256(self.feed().encode()).hexdigest()[:16]}"'

    def feed(self) -> str:
        return rss_feed(self.server, "Gazette", ARTICLES, self.feed_paths, PUBLISHED, self.updated)

    def serve_feed(self, h: RequestHandler) -> None:
        if not self.validators:
            h.reply(200, self.feed(), content_type="application/rss+xml; charset=utf-8")
        elif h.headers.get("If-None-Match") == self.etag:
            h.reply(304, headers={"ETag": self.etag}, content_type=None)
        else:
            h.reply(200, self.feed(), headers={"ETag": self.etag}, content_type="application/rss+xml; charset=utf-8")

    def serve_bad(self, h: RequestHandler) -> None:
        h.reply(200, article_page(*ARTICLES[BAD], "en") if self.bad_fixed else APP_SHELL)


@pytest.fixture
def site() -> Iterator[Site]:
    server = LocalHTTPServer().start()
    site = Site(server)
    server.route("/robots.txt", lambda h: h.reply(200, "User-agent: *\nAllow: /\n", content_type="text/plain"))
    server.route("/feed.xml", site.serve_feed)
    server.route(BAD, site.serve_bad)
    for path in (GOOD, LATER):
        server.route(path, lambda h, p=path: h.reply(200, article_page(*ARTICLES[p], "en")))
    yield site
    server.stop()


@pytest.fixture
def settings(db_url: str, site: Site, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    return one_feed_settings(db_url, tmp_path, monkeypatch, "gazette", site.server.url("/feed.xml"))


def articles(db_url: str) -> list[tuple]:
    return query(
        db_url, "SELECT article_id, canonical_url, title, text, content_hash, fetched_at, cluster_id FROM articles "
        "ORDER BY article_id"
    )


def outcomes(db_url: str, url: str, kind: str) -> list[tuple]:
    """(run_key, outcome) of one URL's crawl_log records of one kind, in order."""
    return query(
        db_url, "SELECT r.run_key, c.outcome FROM crawl_log c JOIN pipeline_runs r USING (run_id) "
        "WHERE c.url = %s AND c.request_kind = %s ORDER BY c.crawl_id", (url, kind)
    )


def failure_row(db_url: str, url: str) -> list[tuple]:
    return query(
        db_url, "SELECT failures, given_up_at IS NOT NULL, given_up_at, retry_at FROM page_failures WHERE url = %s",
        (url,),
    )


@pytest.mark.parametrize("validators", [True, False], ids=["etag", "no-etag"])
def test_page_without_text_is_given_up_after_the_documented_attempts(
    settings: Settings, site: Site, validators: bool
) -> None:
    """Default settings, hourly runs: the shell is tried `give_up_after` times, then given up once for good,
    whether the feed then answers 304 or is read in full every time."""
    site.validators = validators
    db, bad = settings.db_url, site.server.url(BAD)
    after, days = ProcessSettings().give_up_after, ProcessSettings().give_up_retry_days
    assert (after, days) == (3, 7)  # the defaults README.md and docs/schema.md document
    runs = after + 2
    rows = [hourly(settings, run_key="hour-1")]
    stored = articles(db)
    assert len(stored) == 1 and "tram depot" in stored[0][3]
    rows += [hourly(settings, run_key=f"hour-{n}") for n in range(2, runs + 1)]

    assert site.server.hits(BAD) == after
    assert site.server.hits(GOOD) == 1
    assert [r["status"] for r in rows] == ["partial"] * (after - 1) + ["success"] * (runs - after + 1)
    assert [r["extract_failed"] for r in rows] == [1] * (after - 1) + [0] * (runs - after + 1)
    # Recorded once as given up: one crawl_log record says so, one page_failures row holds it.
    assert outcomes(db, bad, "extract") == [(f"hour-{n}", "extract_failed") for n in range(1, after)] + [
        (f"hour-{after}", "given_up")
    ]
    ((failures, given_up, given_up_at, retry_at),) = failure_row(db, bad)
    assert (failures, given_up) == (after, True)
    assert (retry_at - given_up_at).days == days
    assert query(db, "SELECT count(*) FROM crawl_log WHERE outcome = 'given_up'") == [(1,)]
    feed = [o for _, o in outcomes(db, site.server.url("/feed.xml"), "feed")]
    if validators:
        # The feed was read in full while the page was still retried, then answered 304 again.
        assert feed == ["ok"] * after + ["not_modified"] * (runs - after)
        sent = [r.headers.get("if-none-match") for r in site.server.requests_for("/feed.xml")]
        assert sent[after:] == [site.etag] * (runs - after)
        assert query(db, "SELECT etag FROM sources") == [(site.etag,)]
    else:
        # Announced in every read, the given-up URL is skipped: urls_given_up in the crawl report.
        assert feed == ["ok"] * runs
        assert [r["urls_discovered"] - r["urls_skipped_known"] - r["pages_fetched"] for r in rows][after:] == [1] * 2
    assert articles(db) == stored  # nothing stored was lost or rewritten


def test_given_up_page_repaired_then_reset_by_the_user_is_stored(
    settings: Settings, site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Give up after one failure; the site is repaired (feed unchanged); deleting the row brings the page back."""
    monkeypatch.setenv("NEWSDEDUP_GIVE_UP_AFTER", "1")
    db, bad = settings.db_url, site.server.url(BAD)
    first = hourly(settings, run_key="r1")
    assert first["status"] == "success" and first["extract_failed"] == 0
    assert failure_row(db, bad)[0][:2] == (1, True)
    site.bad_fixed = True
    second = hourly(settings, run_key="r2")
    assert second["feeds_not_modified"] == 1 and site.server.hits(BAD) == 1
    stored = articles(db)

    with psycopg2.connect(db) as conn, conn.cursor() as cur:
        cur.execute("DELETE FROM page_failures WHERE url = %s", (bad,))  # the reset docs/schema.md gives
    third = hourly(settings, run_key="r3")
    assert third["status"] == "success" and third["articles_new"] == 1
    assert site.server.hits(BAD) == 2
    assert query(db, "SELECT count(*) FROM page_failures") == [(0,)]
    now = articles(db)
    assert now[: len(stored)] == stored and "winter sailings" in now[-1][2]


def test_given_up_page_is_retried_after_the_retry_time_without_making_the_run_partial(
    settings: Settings, site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once retry_at has passed (set back here instead of waiting days), the next full feed read tries the page
    once; still a shell, it is given up again quietly and waits another period."""
    monkeypatch.setenv("NEWSDEDUP_GIVE_UP_AFTER", "1")
    monkeypatch.setenv("NEWSDEDUP_GIVE_UP_RETRY_DAYS", "2")
    db, bad = settings.db_url, site.server.url(BAD)
    hourly(settings, run_key="day-1")
    ((_, _, given_up_at, _),) = failure_row(db, bad)
    with psycopg2.connect(db) as conn, conn.cursor() as cur:
        cur.execute("UPDATE page_failures SET retry_at = now() - interval '1 minute'")
    site.feed_paths.append(LATER)  # a new story: the feed is read in full
    retried = hourly(settings, run_key="day-3")
    assert retried["status"] == "success" and retried["extract_failed"] == 0 and retried["articles_new"] == 1
    assert site.server.hits(BAD) == 2
    ((failures, given_up, again_at, retry_at),) = failure_row(db, bad)
    assert (failures, given_up, again_at) == (2, True, given_up_at)
    assert (retry_at - given_up_at).days >= 2
    assert [o for _, o in outcomes(db, bad, "extract")] == ["given_up", "given_up"]
    assert query(db, "SELECT etag FROM sources") == [(site.etag,)]  # kept: no full read next time

    hourly(settings, run_key="day-3b")
    assert site.server.hits(BAD) == 2


def test_given_up_page_the_feed_says_was_updated_is_fetched_again(
    settings: Settings, site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The feed announces an update of the entry after its last failure: the page is fetched and stored."""
    monkeypatch.setenv("NEWSDEDUP_GIVE_UP_AFTER", "1")
    db, bad = settings.db_url, site.server.url(BAD)
    hourly(settings, run_key="u1")
    assert failure_row(db, bad)[0][:2] == (1, True)
    site.bad_fixed = True
    site.updated[BAD] = (datetime.now(UTC) + timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    second = hourly(settings, run_key="u2")
    assert second["articles_new"] == 1 and site.server.hits(BAD) == 2
    assert query(db, "SELECT count(*) FROM page_failures") == [(0,)]


@pytest.mark.parametrize("after", ["1", "3"])
def test_processing_retried_counts_a_failed_page_once(
    settings: Settings, site: Site, monkeypatch: pytest.MonkeyPatch, after: str
) -> None:
    """The processing step run again for the same run (an Airflow retry) changes no streak and no counter."""
    monkeypatch.setenv("NEWSDEDUP_GIVE_UP_AFTER", after)
    db, bad = settings.db_url, site.server.url(BAD)
    row = hourly(settings, run_key="once")
    state = (failure_row(db, bad), outcomes(db, bad, "extract"), query(db, "SELECT etag FROM sources"))
    again = pipeline.process_pages(db, row["run_id"])
    assert again["extract_failed"] == row["extract_failed"] == (0 if after == "1" else 1)
    assert (failure_row(db, bad), outcomes(db, bad, "extract"), query(db, "SELECT etag FROM sources")) == state
    assert state[0][0][0] == 1


def test_page_that_yields_text_before_it_is_given_up_ends_its_streak(settings: Settings, site: Site) -> None:
    """One failure (the feed is then read in full again), the page is repaired: stored, streak gone."""
    db, bad = settings.db_url, site.server.url(BAD)
    assert hourly(settings, run_key="a")["status"] == "partial"
    assert failure_row(db, bad)[0][:2] == (1, False)
    site.bad_fixed = True
    second = hourly(settings, run_key="b")
    assert second["status"] == "success" and second["articles_new"] == 1
    assert query(db, "SELECT count(*) FROM page_failures") == [(0,)]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("NEWSDEDUP_GIVE_UP_AFTER", "0"),
        ("NEWSDEDUP_GIVE_UP_AFTER", "21"),
        ("NEWSDEDUP_GIVE_UP_AFTER", "three"),
        ("NEWSDEDUP_GIVE_UP_RETRY_DAYS", "-1"),
        ("NEWSDEDUP_GIVE_UP_RETRY_DAYS", "3651"),
    ],
)
def test_give_up_settings_out_of_bounds_are_refused(name: str, value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=name):
        ProcessSettings.from_env()


def test_give_up_settings_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEWSDEDUP_GIVE_UP_AFTER", "5")
    monkeypatch.setenv("NEWSDEDUP_GIVE_UP_RETRY_DAYS", "0")
    settings = ProcessSettings.from_env()
    assert (settings.give_up_after, settings.give_up_retry_days) == (5, 0)
