"""Adaptive polling (newsdedup.polling): intervals learned per source, bounds, overrides, due sources, and the
schedule written by real runs. Real PostgreSQL, real HTTP on 127.0.0.1, `pipeline.run_once`.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg2
import psycopg2.extras
import pytest
from newsdedup import dashboard_queries, pipeline, polling, store
from newsdedup.config import ConfigError, Settings
from newsdedup.feeds import FeedEntry, parse_feed
from newsdedup.polling import PollObservation
from newsdedup.sources import Discovery, Source, load_sources

from tests.httpfixtures import LocalHTTPServer, RequestHandler, http_server_fixture, static  # noqa: F401

pytestmark = pytest.mark.integration
T0 = datetime(2026, 11, 2, 6, 0, tzinfo=UTC)
NOTHING_NEW = PollObservation(0, "not_modified")


def add_sources(db_url: str, *sources: Source) -> dict[str, int]:
    """Write sources as `sources sync` does; their ids by name."""
    with store.connect(db_url) as conn:
        store.sync_sources(conn, sources)
        polling.save_overrides(conn, sources)
        with conn.cursor() as cur:
            cur.execute("SELECT name, source_id FROM sources")
            return dict(cur.fetchall())


def poll_series(db_url: str, source_id: int, observations: list[PollObservation], start: datetime = T0) -> list[int]:
    """Record the observations one after another, each poll when the last one said; the intervals in seconds."""
    intervals, now = [], start
    for observation in observations:
        with store.connect(db_url) as conn:
            due = polling.record_poll(conn, source_id, observation, now)
        intervals.append(round((due - now).total_seconds()))
        now = due
    return intervals


def schedule_row(db_url: str, source: str) -> dict:
    """The source's row of the source_schedule view."""
    with psycopg2.connect(db_url) as conn, conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
        cur.execute("SELECT * FROM source_schedule WHERE source = %s", (source,))
        return dict(cur.fetchone())


def test_new_items_shrink_the_interval_toward_their_spacing_down_to_the_floor(db_url: str) -> None:
    ids = add_sources(db_url, Source("busy", "https://busy.example/rss"))
    first_load = PollObservation(40, "ok")  # everything is new at the first poll: nothing to learn from yet
    # An hour after the first poll, 12 new links (one every 5 minutes): halved, not cut to 5 minutes at once.
    intervals = poll_series(db_url, ids["busy"], [first_load, PollObservation(12, "ok"), PollObservation(6, "ok"),
                                                  PollObservation(6, "ok")])
    assert intervals == [3600, 1800, 900, 900]  # the floor is NEWSDEDUP_POLL_FLOOR_MINUTES, 15
    row = schedule_row(db_url, "busy")
    assert (row["why"], row["last_new_items"], row["poll_interval"]) == ("learned", 6, timedelta(minutes=15))


def test_one_new_item_per_poll_keeps_the_interval(db_url: str) -> None:
    ids = add_sources(db_url, Source("steady", "https://steady.example/rss"))
    assert poll_series(db_url, ids["steady"], [PollObservation(5, "ok")] + [PollObservation(1, "ok")] * 3) == [3600] * 4


def test_the_first_poll_reads_how_often_the_feed_publishes_from_its_dates(db_url: str) -> None:
    def entries(count: int, every: timedelta, newest_age: timedelta = timedelta(0)) -> list[FeedEntry]:
        return [FeedEntry(f"https://x.example/{i}", published_at=T0 - newest_age - i * every) for i in range(count)]

    assert polling.publishing_interval(entries(10, timedelta(days=2)), T0) == 18 * 86400 / 10  # 10 in 18 days
    stale = polling.publishing_interval(entries(10, timedelta(hours=1), newest_age=timedelta(days=30)), T0)
    assert stale and stale > 3 * 86400  # ten entries an hour apart, a month ago: not a busy feed now
    future = [FeedEntry("https://x.example/f", published_at=T0 + timedelta(days=9))]
    assert polling.publishing_interval(entries(1, timedelta(hours=1)) + future, T0) is None  # one usable date
    ids = add_sources(db_url, Source("weekly", "https://weekly.example/rss"), Source("wire", "https://wire.example/rss"),
                      Source("undated", "https://undated.example/rss"))
    weekly = polling.observe(Discovery(Source("weekly", ""), entries=entries(8, timedelta(days=7))), 8, T0)
    wire = polling.observe(Discovery(Source("wire", ""), entries=entries(50, timedelta(minutes=4))), 50, T0)
    undated = polling.observe(Discovery(Source("undated", ""), entries=[FeedEntry("https://u.example/1")]), 1, T0)
    assert poll_series(db_url, ids["weekly"], [weekly]) == [86400]  # the ceiling, NEWSDEDUP_POLL_CEILING_HOURS
    assert poll_series(db_url, ids["wire"], [wire]) == [900]  # the floor
    assert poll_series(db_url, ids["undated"], [undated]) == [polling.START_SECONDS]
    assert schedule_row(db_url, "weekly")["why"] == "learned"


def test_304s_and_empty_reads_grow_the_interval_up_to_the_ceiling_and_failures_keep_it(db_url: str) -> None:
    ids = add_sources(db_url, Source("quiet", "https://quiet.example/rss"))
    observations = [PollObservation(3, "ok"), NOTHING_NEW, PollObservation(0, "ok"), PollObservation(0, "failed")]
    intervals = poll_series(db_url, ids["quiet"], observations + [NOTHING_NEW] * 10)
    assert intervals[:4] == [3600, 5400, 8100, 8100]
    assert intervals == sorted(intervals) and intervals[-1] == 24 * 3600 and intervals.count(24 * 3600) >= 2


def test_settings_move_floor_and_ceiling(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    ids = add_sources(db_url, Source("a", "https://a.example/rss"), Source("b", "https://b.example/rss"))
    monkeypatch.setenv("NEWSDEDUP_POLL_FLOOR_MINUTES", "45")
    monkeypatch.setenv("NEWSDEDUP_POLL_CEILING_HOURS", "2")
    assert poll_series(db_url, ids["a"], [PollObservation(9, "ok")] + [PollObservation(30, "ok")] * 2) == [3600,
                                                                                                           2700, 2700]
    assert poll_series(db_url, ids["b"], [PollObservation(9, "ok")] + [NOTHING_NEW] * 3) == [3600, 5400, 7200, 7200]
    monkeypatch.setenv("NEWSDEDUP_POLL_FLOOR_MINUTES", "180")
    with store.connect(db_url) as conn, pytest.raises(ConfigError, match="FLOOR_MINUTES .180. is longer than"):
        polling.record_poll(conn, ids["a"], NOTHING_NEW, T0)


def test_the_feed_declared_interval_is_a_lower_bound_within_the_ceiling(db_url: str) -> None:
    ids = add_sources(db_url, *(Source(n, f"https://{n}.example/rss") for n in ("ttl", "maxage", "weekly")))
    busy_ttl = PollObservation(50, "ok", declared_seconds=2 * 3600)
    assert poll_series(db_url, ids["ttl"], [busy_ttl] * 3) == [7200] * 3  # never faster than the feed asks
    assert schedule_row(db_url, "ttl")["why"] == "feed_declared"
    busy_cached = PollObservation(50, "ok", max_age_seconds=1800)
    assert poll_series(db_url, ids["maxage"], [busy_cached] * 3) == [3600, 1800, 1800]
    weekly = PollObservation(0, "not_modified", declared_seconds=7 * 86400)
    assert poll_series(db_url, ids["weekly"], [weekly]) == [86400]  # the ceiling still holds


def test_per_source_overrides(db_url: str) -> None:
    ids = add_sources(
        db_url,
        Source("fixed", "https://fixed.example/rss", poll_every=1800),
        Source("bounded", "https://bounded.example/rss", poll_min=3600, poll_max=3 * 3600),
        Source("slow-floor", "https://slow.example/rss", poll_min=2 * 86400),
    )
    mixed = [PollObservation(20, "ok"), NOTHING_NEW, PollObservation(0, "failed", declared_seconds=86400)]
    assert poll_series(db_url, ids["fixed"], mixed) == [1800] * 3
    assert schedule_row(db_url, "fixed")["why"] == "fixed"
    assert poll_series(db_url, ids["bounded"], [PollObservation(5, "ok")] + [NOTHING_NEW] * 4) == [3600, 5400, 8100,
                                                                                                 10800, 10800]
    flood = [PollObservation(1000, "ok")] * 3
    assert poll_series(db_url, ids["bounded"], flood, T0 + timedelta(days=9)) == [5400, 3600, 3600]
    assert poll_series(db_url, ids["slow-floor"], [PollObservation(9, "ok")]) == [2 * 86400]  # above the ceiling


def test_a_shorter_override_applies_at_once(db_url: str) -> None:
    ids = add_sources(db_url, Source("s", "https://s.example/rss"))
    now = datetime.now(UTC)
    poll_series(db_url, ids["s"], [PollObservation(1, "ok")], now - timedelta(minutes=30))  # due in 30 minutes
    with store.connect(db_url) as conn:
        assert polling.due_sources(conn, now) == []
    add_sources(db_url, Source("s", "https://s.example/rss", poll_every=600))
    with store.connect(db_url) as conn:
        assert polling.due_sources(conn, now) == ["s"]  # last polled long ago: due under the new fixed interval


def test_due_sources_are_exactly_the_due_enabled_ones(db_url: str) -> None:
    names = ["never", "overdue", "later", "gone"]
    ids = add_sources(db_url, *(Source(n, f"https://{n}.example/rss") for n in names))
    now = T0 + timedelta(days=1)
    poll_series(db_url, ids["overdue"], [PollObservation(1, "ok")], now - timedelta(hours=2))
    poll_series(db_url, ids["later"], [PollObservation(1, "ok")], now - timedelta(minutes=30))
    poll_series(db_url, ids["gone"], [PollObservation(1, "ok")], now - timedelta(hours=2))
    add_sources(db_url, *(Source(n, f"https://{n}.example/rss") for n in names[:3]))  # "gone" is disabled
    with store.connect(db_url) as conn:
        assert polling.due_sources(conn, now) == ["never", "overdue"]
        assert polling.due_sources(conn, now + timedelta(minutes=30)) == ["later", "never", "overdue"]
        assert polling.due_sources(conn, T0) == ["never"]
    assert schedule_row(db_url, "never")["why"] == "never_polled" and schedule_row(db_url, "gone")["due"] is False
    with store.connect(db_url) as conn:
        assert polling.due_now(conn, ["later"]) == 1 and polling.due_sources(conn, now) == ["later", "never", "overdue"]
        assert polling.due_now(conn) == 2 and polling.due_sources(conn, T0) == ["later", "never", "overdue"]
    assert schedule_row(db_url, "later")["poll_interval"] == timedelta(hours=1)  # the learned interval is kept


def test_due_sources_uses_the_index_at_100k_sources(db_url: str) -> None:
    """Planning a run over 100,000 sources reads the due ones through sources_next_due_idx, not the table."""
    with store.connect(db_url) as conn, conn.cursor() as cur:
        cur.execute(
            "INSERT INTO sources (name, url, kind, next_due_at, last_polled_at, poll_interval_seconds) "
            "SELECT 'feed-' || i, 'https://h' || mod(i, 500) || '.example/rss/' || i, 'rss', "
            "%s + make_interval(mins => mod(i, 1440)), %s, 3600 FROM generate_series(1, 100000) AS i",
            (T0, T0),
        )
        cur.execute("ANALYZE sources")
    with store.connect(db_url) as conn:
        due = polling.due_sources(conn, T0 + timedelta(minutes=9))
        with conn.cursor() as cur:
            cur.execute("EXPLAIN SELECT name FROM sources WHERE enabled AND (next_due_at IS NULL OR next_due_at <= %s)",
                        (T0 + timedelta(minutes=9),))
            plan = "\n".join(line for (line,) in cur.fetchall())
    assert len(due) == sum(1 for i in range(1, 100001) if i % 1440 <= 9)
    assert "sources_next_due_idx" in plan and "Seq Scan" not in plan, plan


def test_max_age_and_feed_declared_intervals_are_read() -> None:
    assert polling.max_age("public, max-age=900, must-revalidate") == 900
    assert polling.max_age('max-age="120"') == 120
    assert [polling.max_age(v) for v in (None, "no-cache", "s-maxage=600", "max-age=0", "max-age=x")] == [None] * 5
    channel = ("<?xml version='1.0'?><rss version='2.0' xmlns:sy='http://purl.org/rss/1.0/modules/syndication/'>"
               "<channel><title>Kasaba Postası</title>{}<item><link>https://k.example/haber/1</link></item>"
               "</channel></rss>")
    cases = {
        "<ttl>90</ttl>": 5400,
        "<sy:updatePeriod>daily</sy:updatePeriod><sy:updateFrequency>4</sy:updateFrequency>": 21600,
        "<sy:updatePeriod>hourly</sy:updatePeriod>": 3600,
        "<ttl>30</ttl><sy:updatePeriod>hourly</sy:updatePeriod>": 3600,  # the longer one
        "<ttl>soon</ttl><sy:updatePeriod>sometimes</sy:updatePeriod>": None,
        "<ttl>0</ttl>": None,
        "": None,
    }
    for extra, expected in cases.items():
        assert parse_feed(channel.format(extra), "https://k.example/rss").declared_seconds == expected, extra


def test_sources_file_overrides_are_parsed_and_checked(tmp_path: Path) -> None:
    path = tmp_path / "sources.yaml"
    path.write_text(
        "sources:\n"
        "  - {name: Kent Haber, url: 'https://kent.example/rss', poll_every: 30m}\n"
        "  - {name: Weekly Gazette, url: 'https://weekly.example/rss', poll_min: 6h, poll_max: 2d}\n"
        "  - {name: plain, url: 'https://plain.example/rss'}\n",
        encoding="utf-8",
    )
    kent, weekly, plain = load_sources(path)
    assert (kent.poll_every, kent.poll_min, kent.poll_max) == (1800, None, None)
    assert (weekly.poll_every, weekly.poll_min, weekly.poll_max) == (None, 6 * 3600, 2 * 86400)
    assert (plain.poll_every, plain.poll_min, plain.poll_max) == (None, None, None)
    bad = {
        "poll_every: 30": "field 'poll_every' is 30; expected a duration such as '30m', '2h' or '1d', from 1m to 30d",
        "poll_every: 10x": "field 'poll_every' is '10x'; expected a duration",
        "poll_max: 45d": "field 'poll_max' is '45d'; expected a duration",
        "poll_min: 30s": "field 'poll_min' is '30s'; expected a duration",
        "poll_every: 1h, poll_max: 2h": "poll_every fixes the interval: give it alone, or poll_min / poll_max",
        "poll_min: 2h, poll_max: 1h": "poll_min ('2h') is longer than poll_max ('1h')",
    }
    for fields, message in bad.items():
        path.write_text(f"sources:\n  - {{name: x, url: 'https://x.example/rss', {fields}}}\n", encoding="utf-8")
        with pytest.raises(ConfigError) as info:
            load_sources(path)
        assert f"source #1 ('x'): {message}" in str(info.value) and "\n" not in str(info.value), fields


# ------------------------------------------------------------------ real runs

ARTICLES = {
    "/news/ferry.html": ("Harbour ferry returns to its winter timetable",
                         "The harbour ferry will run every forty minutes from Monday, the operator said, after the "
                         "summer crossings ended with record numbers of cyclists and commuters on the early boats."),
    "/news/orchard.html": ("Community orchard plants forty new apple trees",
                           "Volunteers planted forty young apple trees on the hill above the school on Saturday, "
                           "choosing old local varieties that the county's fruit society had kept from cuttings."),
    "/haber/pazar.html": ("Semt pazarı yeni yerine taşındı",
                          "Salı günleri kurulan semt pazarı, belediyenin yaptığı kapalı alana taşındı; esnaf "
                          "yağmurlu günlerde tezgâhların artık ıslanmayacağını, müşterilerin de otoparkı "
                          "kullanabileceğini söyledi."),
}


def page(title: str, text: str) -> str:
    """An article page of the local outlet."""
    paragraphs = "".join(f"<p>{text} {title}.</p>" for _ in range(3))
    return f"<!DOCTYPE html><html><head><title>{title}</title></head><body><article><h1>{title}</h1>" \
           f"{paragraphs}</article></body></html>"


def conditional_feed(server: LocalHTTPServer, paths: list[str], extra: str = "", headers: dict | None = None):
    """A feed handler answering 304 to its own ETag."""
    items = "".join(f"<item><title>{ARTICLES[p][0]}</title><link>{server.url(p)}</link></item>" for p in paths)
    body = f"<?xml version='1.0'?><rss version='2.0'><channel><title>Outlet</title>{extra}{items}</channel></rss>"
    etag = f'"{hashlib.sha256(body.encode()).hexdigest()[:16]}"'

    def handler(h: RequestHandler) -> None:
        if h.headers.get("If-None-Match") == etag:
            h.reply(304, headers={"ETag": etag}, content_type=None)
        else:
            h.reply(200, body, headers={"ETag": etag} | (headers or {}), content_type="application/rss+xml")

    return handler


def test_two_runs_write_the_schedule_and_the_dashboard_shows_it(
    db_url: str, http_server: LocalHTTPServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in {"ALLOW_NETWORKS": "127.0.0.0/8", "MIN_HOST_DELAY": "0", "WORKERS": "1", "RETRIES": "0"}.items():
        monkeypatch.setenv(f"NEWSDEDUP_{name}", value)
    http_server.route("/en.xml", conditional_feed(http_server, ["/news/ferry.html", "/news/orchard.html"]))
    http_server.route("/tr.xml", conditional_feed(http_server, ["/haber/pazar.html"], "<ttl>180</ttl>",
                                                  {"Cache-Control": "public, max-age=600"}))
    for path, (title, text) in ARTICLES.items():
        http_server.route(path, static(page(title, text)))
    sources = tmp_path / "sources.yaml"
    sources.write_text(
        "sources:\n"
        f"  - {{name: en-outlet, url: '{http_server.url('/en.xml')}', kind: rss}}\n"
        f"  - {{name: tr-outlet, url: '{http_server.url('/tr.xml')}', kind: rss, language: tr}}\n"
        f"  - {{name: fixed-outlet, url: '{http_server.url('/missing.xml')}', kind: rss, poll_every: 2h}}\n",
        encoding="utf-8",
    )
    settings = Settings(db_url=db_url, sources_path=sources)
    first = pipeline.run_once(settings, run_key="manual__poll1")
    assert first["pages_fetched"] == 3
    before = {s: schedule_row(db_url, s) for s in ("en-outlet", "tr-outlet", "fixed-outlet")}
    assert before["en-outlet"]["last_new_items"] == 2 and before["en-outlet"]["poll_interval"] == timedelta(hours=1)
    assert before["tr-outlet"]["why"] == "feed_declared" and before["tr-outlet"]["poll_interval"] == timedelta(hours=3)
    assert before["fixed-outlet"]["why"] == "fixed" and before["fixed-outlet"]["last_new_items"] == 0  # a 404 feed

    idle = pipeline.run_once(settings, run_key="manual__poll2")  # nothing is due yet: nothing is fetched
    assert (idle["sources_total"], http_server.hits("/en.xml"), http_server.hits("/tr.xml")) == (0, 1, 1)
    assert {s: schedule_row(db_url, s) for s in before} == before
    with psycopg2.connect(db_url) as conn, conn.cursor() as cur:  # five hours pass
        cur.execute("UPDATE sources SET next_due_at = next_due_at - interval '5 hours', "
                    "last_polled_at = last_polled_at - interval '5 hours'")
    before = {s: schedule_row(db_url, s) for s in before}
    second = pipeline.run_once(settings, run_key="manual__poll3")
    assert second["feeds_not_modified"] == 2 and http_server.hits("/en.xml") == 2
    after = {s: schedule_row(db_url, s) for s in before}
    for name in before:
        assert after[name]["next_due_at"] > before[name]["next_due_at"], name
        assert after[name]["last_polled_at"] > before[name]["last_polled_at"], name
    assert (after["en-outlet"]["why"], after["en-outlet"]["last_new_items"]) == ("learned", 0)
    assert after["en-outlet"]["poll_interval"] == timedelta(minutes=90)  # a 304: grown by half
    # A 304 carries no <ttl> (the response had no max-age either): the interval grows from the declared 3 hours.
    assert (after["tr-outlet"]["why"], after["tr-outlet"]["poll_interval"]) == ("learned", timedelta(hours=4.5))
    assert after["fixed-outlet"]["poll_interval"] == timedelta(hours=2)
    with store.connect(db_url) as conn:
        assert polling.due_sources(conn) == []
        assert polling.due_sources(conn, datetime.now(UTC) + timedelta(minutes=100)) == ["en-outlet"]
        assert polling.due_sources(conn, datetime.now(UTC) + timedelta(hours=5)) == [
            "en-outlet", "fixed-outlet", "tr-outlet"
        ]

    query = (Path(__file__).resolve().parents[1] / "sql" / "queries" / "source_schedule.sql").read_text()
    with psycopg2.connect(db_url) as conn, conn.cursor() as cur:
        cur.execute(query)
        rows = cur.fetchall()
    assert [(r[0], r[1], r[4]) for r in rows] == [
        ("en-outlet", False, "learned"), ("fixed-outlet", False, "fixed"), ("tr-outlet", False, "learned")
    ]

    import newsdedup_dashboard as ui

    html = ui.render_page(dashboard_queries.dashboard(db_url))
    assert "<th>next due</th><th>polled every</th>" in html
    for shown in ("1h 30m <span class='muted'>(learned)</span>", "4h 30m <span class='muted'>(learned)</span>",
                  "2h <span class='muted'>(fixed)</span>"):
        assert shown in html, shown


def test_a_crawl_that_leaves_links_behind_is_due_at_the_next_run(
    db_url: str, http_server: LocalHTTPServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in {"ALLOW_NETWORKS": "127.0.0.0/8", "MIN_HOST_DELAY": "0", "WORKERS": "1", "RETRIES": "0"}.items():
        monkeypatch.setenv(f"NEWSDEDUP_{name}", value)
    http_server.route("/en.xml", conditional_feed(http_server, ["/news/ferry.html", "/news/orchard.html"]))
    for path, (title, text) in ARTICLES.items():
        http_server.route(path, static(page(title, text)))
    sources = tmp_path / "sources.yaml"
    sources.write_text(f"sources:\n  - {{name: en, url: '{http_server.url('/en.xml')}', kind: rss, max_articles: 1}}\n",
                       encoding="utf-8")
    settings = Settings(db_url=db_url, sources_path=sources)
    assert pipeline.run_once(settings)["pages_fetched"] == 1
    row = schedule_row(db_url, "en")
    assert (row["why"], row["due"], row["next_due_at"]) == ("backlog", True, row["last_polled_at"])
    assert pipeline.run_once(settings)["pages_fetched"] == 1  # the link left behind, at once
    row = schedule_row(db_url, "en")
    assert (row["why"], row["due"], row["last_new_items"]) == ("learned", False, 1)
    assert http_server.hits("/news/ferry.html") == http_server.hits("/news/orchard.html") == 1
