"""The sources file, feed and sitemap parsing, and discovery against a local server."""

import gzip
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from newsdedup.config import ConfigError
from newsdedup.feeds import FeedError, detect_kind, parse_feed, parse_json_feed
from newsdedup.feedscan import ParseLimits
from newsdedup.fetch import Fetcher, FetchPolicy
from newsdedup.robots import parsed_rules
from newsdedup.sources import DEFAULT_MAX_ARTICLES, Source, discover, feed_links, load_sources
from newsdedup.textsafe import one_line

from tests.httpfixtures import LocalHTTPServer, http_server_fixture, static  # noqa: F401

RSS = """<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"><channel><title>Kıyı</title>
<item><title>Birinci</title><link>/2026/03/birinci.html?utm_source=rss</link>
<pubDate>Sat, 14 Mar 2026 08:00:00 +0300</pubDate></item>
<item><title>Birinci again</title><link>https://kiyi.example.com/2026/03/birinci.html</link></item>
<item><title>Bad date</title><link>https://kiyi.example.com/2026/03/ikinci.html</link>
<pubDate>the day after tomorrow</pubDate></item>
<item><title>No link</title></item>
</channel></rss>"""

ATOM = """<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title>Ledger</title>
<entry><title>Bridge</title><link href="https://ledger.example.com/bridge.html"/>
<updated>2026-03-14T09:00:00Z</updated><published>2026-03-14T08:00:00Z</published></entry>
</feed>"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sources.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_load_valid_sources(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """sources:
  - {name: kiyi, url: "https://kiyi.example.com/rss.xml", kind: rss, language: tr}
  - {name: ledger, url: "https://ledger.example.com/atom.xml"}
""",
    )
    kiyi, ledger = load_sources(path)
    assert (kiyi.name, kiyi.kind, kiyi.language) == ("kiyi", "rss", "tr")
    assert (ledger.kind, ledger.enabled) == ("auto", True)
    assert (ledger.rate_limit, ledger.max_articles, ledger.article_limit) == (None, None, DEFAULT_MAX_ARTICLES)


def test_load_every_option(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """sources:
  - name: wire
    url: https://wire.example.com/feed.json
    kind: jsonfeed
    language: EN
    enabled: false
    rate_limit: 2.5
    max_articles: 40
  - {name: maps, url: "https://maps.example.com/news-sitemap.xml.gz", kind: sitemap, rate_limit: 0}
""",
    )
    wire, maps = load_sources(path)
    assert wire == Source("wire", "https://wire.example.com/feed.json", "jsonfeed", "en", False, 2.5, 40)
    assert (maps.kind, maps.rate_limit, maps.article_limit) == ("sitemap", 0.0, DEFAULT_MAX_ARTICLES)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("sources: [", "not valid YAML"),
        ("feeds: []", "top-level key 'sources:'"),
        ("sources:\n  - {name: a, url: 'https://a.example/x', colour: red}", "unknown field(s) ['colour']"),
        ("sources:\n  - {name: a, url: 'ftp://a.example/x'}", "not an http(s) URL"),
        ("sources:\n  - {name: a, url: 'https://a.example/x', kind: podcast}", "field 'kind'"),
        ("sources:\n  - {url: 'https://a.example/x'}", "field 'name' is required"),
        (
            "sources:\n  - {name: a, url: 'https://a.example/x'}\n  - {name: a, url: 'https://b.example/'}",
            "duplicate source names ['a']",
        ),
        ("sources:\n  - {name: a, url: 'https://a.example/x', enabled: 'yes'}", "field 'enabled'"),
        ("sources:\n  - {name: a, url: 'https://a.example/x', language: turkish}", "field 'language' is 'turkish'"),
        ("sources:\n  - {name: a, url: 'https://a.example/x', rate_limit: -1}", "field 'rate_limit' is -1"),
        ("sources:\n  - {name: a, url: 'https://a.example/x', rate_limit: soon}", "field 'rate_limit' is 'soon'"),
        ("sources:\n  - {name: a, url: 'https://a.example/x', rate_limit: true}", "field 'rate_limit' is True"),
        ("sources:\n  - {name: a, url: 'https://a.example/x', rate_limit: .nan}", "field 'rate_limit'"),
        ("sources:\n  - {name: a, url: 'https://a.example/x', max_articles: 0}", "field 'max_articles' is 0"),
        ("sources:\n  - {name: a, url: 'https://a.example/x', max_articles: 2.5}", "field 'max_articles' is 2.5"),
        ("sources:\n  - {name: a, url: 'https://u:p@a.example/x'}", "must not contain credentials"),
        (
            "sources:\n  - {name: a, url: 'https://a.example/x', kind: json}",
            "expected one of ['rss', 'atom', 'jsonfeed'",
        ),
        ("sources:\n  - [a, b]", "source #1: expected a mapping"),
        ("sources: {a: 1}", "top-level key 'sources:'"),
    ],
)
def test_invalid_sources_name_the_problem(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_sources(write(tmp_path, text))
    assert message in str(info.value)


def test_missing_sources_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_sources(tmp_path / "nope.yaml")


def test_rss_entries_are_absolute_canonical_and_unique() -> None:
    entries = parse_feed(RSS, "https://kiyi.example.com/rss.xml").entries
    assert [e.url for e in entries] == [
        "https://kiyi.example.com/2026/03/birinci.html",
        "https://kiyi.example.com/2026/03/ikinci.html",
    ]
    assert entries[0].published_at is not None and entries[0].published_at.hour == 5
    assert entries[1].published_at is None


def test_atom_entries_keep_updated_time() -> None:
    (entry,) = parse_feed(ATOM, "https://ledger.example.com/atom.xml").entries
    assert entry.title == "Bridge"
    assert entry.updated_at is not None and entry.updated_at.hour == 9


def test_detect_kind() -> None:
    assert detect_kind(ATOM) == "atom"
    assert detect_kind(RSS) == "rss"
    assert detect_kind('<?xml version="1.0"?><urlset xmlns="x"></urlset>') == "sitemap"


def test_errors_name_the_source_and_the_field(tmp_path: Path) -> None:
    text = (
        "sources:\n  - {name: a, url: 'https://a.example/x'}\n"
        "  - {name: b, url: 'https://b.example/', max_articles: -3}"
    )
    with pytest.raises(ConfigError) as info:
        load_sources(write(tmp_path, text))
    message = str(info.value)
    assert "source #2 ('b')" in message and "field 'max_articles' is -3" in message and "from 1 to" in message


# ------------------------------------------------------------------ feeds

RSS091 = """<?xml version="1.0"?>
<!DOCTYPE rss PUBLIC "-//Netscape Communications//DTD RSS 0.91//EN"
  "http://my.netscape.com/publish/formats/rss-0.91.dtd">
<rss version="0.91"><channel><title>Old</title><link>https://old.example.com/</link>
<item><title>One</title><link>https://old.example.com/one.html</link></item></channel></rss>"""

RSS10 = """<?xml version="1.0"?>
<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" xmlns="http://purl.org/rss/1.0/"
  xmlns:dc="http://purl.org/dc/elements/1.1/">
<channel rdf:about="https://rdf.example.com/"><title>RDF</title></channel>
<item rdf:about="https://rdf.example.com/a.html"><title>A</title><link>https://rdf.example.com/a.html</link>
<dc:date>2026-03-14T08:00:00Z</dc:date></item></rdf:RDF>"""

ENTITY_BOMB = """<?xml version="1.0"?>
<!DOCTYPE rss [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">
<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]>
<rss version="2.0"><channel><title>&c;</title><item><link>https://x.example/1</link></item></channel></rss>"""

XXE = """<?xml version="1.0"?>
<!DOCTYPE rss [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<rss version="2.0"><channel><title>x</title><item><title>&secret;</title><link>https://x.example/1</link>
</item></channel></rss>"""


def test_old_and_rdf_rss_versions() -> None:
    assert [e.url for e in parse_feed(RSS091, "https://old.example.com/rss").entries] == ["https://old.example.com/one.html"]
    (entry,) = parse_feed(RSS10, "https://rdf.example.com/rss").entries
    assert entry.url == "https://rdf.example.com/a.html" and entry.published_at is not None


@pytest.mark.parametrize("text", [ENTITY_BOMB, XXE, ENTITY_BOMB.replace("<rss", "garbage <rss")])
def test_xml_entities_are_refused(text: str) -> None:
    with pytest.raises(FeedError) as info:
        parse_feed(text, "https://x.example/rss")
    assert info.value.error_class in ("EntitiesForbidden", "ExternalReferenceForbidden")
    assert "refused" in info.value.message


@pytest.mark.parametrize("body", ["/etc/passwd", "file:///etc/passwd", "http://10.0.0.1/feed.xml"])
def test_a_body_is_never_opened_as_a_path_or_url(body: str) -> None:
    # feedparser.parse() opens a str or bytes argument as a URL or a local file: we never pass one.
    with pytest.raises(FeedError, match="not an RSS or Atom feed"):
        parse_feed(body, "https://x.example/rss")


def test_html_page_is_not_a_feed() -> None:
    assert detect_kind("<!DOCTYPE html><html><body>login</body></html>") == "html"
    with pytest.raises(FeedError, match="not an RSS or Atom feed"):
        parse_feed("<html><body><p>login</p></body></html>", "https://x.example/rss")


def test_future_and_ancient_dates_are_dropped() -> None:
    feed = """<rss version="2.0"><channel><title>t</title>
<item><link>https://x.example/1</link><pubDate>Sat, 14 Mar 2999 08:00:00 GMT</pubDate></item>
<item><link>https://x.example/2</link><pubDate>Mon, 01 Jan 1900 00:00:00 GMT</pubDate></item>
<item><link>https://x.example/3</link><pubDate>31 Foo 2026 99:99</pubDate></item></channel></rss>"""
    assert [e.published_at for e in parse_feed(feed, "https://x.example/rss").entries] == [None, None, None]


def test_json_feed() -> None:
    feed = {
        "version": "https://jsonfeed.org/version/1.1",
        "title": "Wire",
        "items": [
            {
                "id": "1",
                "url": "/2026/a.html?utm_source=json",
                "title": " A \n story ",
                "date_published": "2026-03-14T08:00:00+03:00",
            },
            {"id": "2", "url": "https://wire.example.com/2026/a.html"},
            {"id": "3", "external_url": "https://other.example.org/b.html", "date_modified": "2026-03-15T10:00:00Z"},
            {"id": "4", "url": "javascript:alert(1)"},
            {"id": "5", "url": 42},
            "junk",
        ],
    }
    entries = parse_json_feed(json.dumps(feed), "https://wire.example.com/feed.json").entries
    assert [e.url for e in entries] == ["https://wire.example.com/2026/a.html", "https://other.example.org/b.html"]
    assert entries[0].title == "A story" and entries[0].published_at.hour == 5
    assert entries[1].updated_at is not None and entries[1].published_at == entries[1].updated_at
    assert detect_kind(json.dumps(feed)) == "jsonfeed"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{", "not valid JSON"),
        ("[" * 100_000 + "]" * 100_000, "not valid JSON"),
        ('{"version": "1", "items": []}', "not a JSON Feed"),
        ('{"version": "https://jsonfeed.org/version/1.1", "items": {}}', "without an 'items' list"),
    ],
)
def test_bad_json_feeds(text: str, message: str) -> None:
    with pytest.raises(FeedError, match=message):
        parse_json_feed(text, "https://x.example/feed.json")


# ------------------------------------------------------------------ discovery against a local server

SITEMAP_NS = 'xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"'
NEWS_NS = 'xmlns:news="http://www.google.com/schemas/sitemap-news/0.9"'


def fetcher() -> Fetcher:
    return Fetcher(FetchPolicy(allow_networks=("127.0.0.0/8",), min_host_delay=0, respect_robots=False))


def test_sitemap_index_with_gzip_and_news_children(http_server: LocalHTTPServer) -> None:
    index = (
        f'<?xml version="1.0"?><sitemapindex {SITEMAP_NS}>'
        f"<sitemap><loc>{http_server.url('/index.xml')}</loc></sitemap>"
        "<sitemap><loc>/news.xml.gz</loc></sitemap>"
        f"<sitemap><loc>{http_server.url('/plain.xml')}</loc></sitemap></sitemapindex>"
    )
    news = (
        f'<?xml version="1.0"?><urlset {SITEMAP_NS} {NEWS_NS}><url><loc>{http_server.url("/a.html")}</loc>'
        "<news:news><news:publication><news:name>X</news:name><news:language>tr</news:language></news:publication>"
        "<news:publication_date>2026-03-14T08:00:00+03:00</news:publication_date><news:title>Haber</news:title>"
        "</news:news></url></urlset>"
    )
    plain = (
        f'<?xml version="1.0"?><urlset {SITEMAP_NS}><url><loc>{http_server.url("/b.html")}</loc>'
        "<lastmod>2026-03-15</lastmod></url><url><loc>/a.html</loc></url></urlset>"
    )
    http_server.route("/index.xml", static(index, headers={"ETag": '"i1"'}, content_type="application/xml"))
    http_server.route(
        "/news.xml.gz",
        static(gzip.compress(news.encode()), headers={"ETag": '"n1"'}, content_type="application/x-gzip"),
    )
    http_server.route("/plain.xml", static(plain, headers={"Last-Modified": "Sat, 14 Mar 2026 08:00:00 GMT"}))
    source = Source("maps", http_server.url("/index.xml"), "auto")
    with fetcher() as f:
        found = discover(source, f)
    assert found.error is None and not found.incomplete
    a, b = found.entries
    assert (a.url, a.title, a.published_at.hour) == (http_server.url("/a.html"), "Haber", 5)
    assert b.url == http_server.url("/b.html") and b.updated_at is not None
    assert http_server.hits("/index.xml") == 1  # the index lists itself: read once
    assert found.children == {
        http_server.url("/news.xml.gz"): ['"n1"', None],
        http_server.url("/plain.xml"): [None, "Sat, 14 Mar 2026 08:00:00 GMT"],
    }


def test_sitemap_children_are_fetched_conditionally(http_server: LocalHTTPServer) -> None:
    index = f"<sitemapindex {SITEMAP_NS}><sitemap><loc>/child.xml</loc></sitemap></sitemapindex>"
    child = f"<urlset {SITEMAP_NS}><url><loc>/a.html</loc></url></urlset>"

    def child_handler(h) -> None:
        if h.headers.get("If-None-Match") == '"c1"':
            h.reply(304, content_type=None, headers={"ETag": '"c1"'})
        else:
            h.reply(200, child, headers={"ETag": '"c1"'}, content_type="application/xml")

    http_server.route("/index.xml", static(index, content_type="application/xml"))
    http_server.route("/child.xml", child_handler)
    source = Source("maps", http_server.url("/index.xml"), "sitemap")
    with fetcher() as f:
        first = discover(source, f)
        second = discover(source, f, children=first.children)
    assert [e.url for e in first.entries] == [http_server.url("/a.html")]
    assert second.entries == [] and second.error is None
    assert [r.outcome for r in second.fetches] == ["ok", "not_modified"]
    assert second.children == first.children


def test_broken_child_sitemap_marks_discovery_incomplete(http_server: LocalHTTPServer) -> None:
    index = (
        f"<sitemapindex {SITEMAP_NS}><sitemap><loc>/bad.xml</loc></sitemap>"
        "<sitemap><loc>/gone.xml</loc></sitemap><sitemap><loc>/good.xml</loc></sitemap></sitemapindex>"
    )
    http_server.route("/index.xml", static(index, content_type="application/xml"))
    http_server.route("/bad.xml", static("<urlset><url>", content_type="application/xml"))
    http_server.route("/good.xml", static(f"<urlset {SITEMAP_NS}><url><loc>/a.html</loc></url></urlset>"))
    with fetcher() as f:
        found = discover(Source("maps", http_server.url("/index.xml"), "sitemap"), f)
    assert found.error is None and found.incomplete
    assert [e.url for e in found.entries] == [http_server.url("/a.html")]
    outcomes = {r.url.rsplit("/", 1)[1]: (r.outcome, r.error_class) for r in found.fetches}
    assert outcomes["bad.xml"] == ("parse_error", "SitemapParseError")
    assert outcomes["gone.xml"] == ("http_error", "HTTPError")


def test_feed_that_is_an_html_page_is_a_parse_error(http_server: LocalHTTPServer) -> None:
    http_server.route("/rss", static("<!doctype html><html><body>Please log in</body></html>"))
    with fetcher() as f:
        found = discover(Source("x", http_server.url("/rss")), f)
    assert found.error is not None and found.error.startswith("NotAFeed: expected an RSS/Atom/JSON feed")
    assert (found.fetches[0].outcome, found.fetches[0].error_class) == ("parse_error", "NotAFeed")


# ------------------------------------------------------------------ sources in PostgreSQL


@pytest.mark.integration
def test_source_options_round_trip(db_url: str) -> None:
    from newsdedup import store

    wire = Source("wire", "https://wire.example.com/feed.json", "jsonfeed", "en", True, 2.5, 40)
    with store.connect(db_url) as conn:
        store.sync_sources(conn, [wire])
        stored = store.get_source(conn, "wire")
        assert stored.source == wire and stored.child_validators == {}
        store.save_source_state(conn, stored.source_id, '"e"', "lm", {"https://wire.example.com/a.xml": ['"c"', None]})
        stored = store.get_source(conn, "wire")
        assert (stored.etag, stored.last_modified) == ('"e"', "lm")
        assert stored.child_validators == {"https://wire.example.com/a.xml": ['"c"', None]}
        # Same URL: validators stay. New URL: they are forgotten.
        store.sync_sources(conn, [wire])
        assert store.get_source(conn, "wire").etag == '"e"'
        moved = Source("wire", "https://wire.example.com/v2/feed.json", "jsonfeed")
        store.sync_sources(conn, [moved])
        stored = store.get_source(conn, "wire")
        assert (stored.etag, stored.child_validators, stored.source.rate_limit) == (None, {}, None)
        store.sync_sources(conn, [])
        assert store.enabled_sources(conn) == []
        with pytest.raises(ConfigError, match="not configured or not enabled"):
            store.get_source(conn, "wire")


@pytest.mark.integration
def test_migration_003_is_idempotent(db_url: str) -> None:
    from newsdedup import store

    sql = (store.SQL_DIR / "003_sources_options.sql").read_text()
    with store.connect(db_url) as conn, conn.cursor() as cur:
        cur.execute(sql)
        cur.execute(sql)
        cur.execute("INSERT INTO sources (name, url, kind) VALUES ('j', 'https://j.example/f.json', 'jsonfeed')")
        with pytest.raises(Exception, match="sources_kind_check"):
            cur.execute("INSERT INTO sources (name, url, kind) VALUES ('p', 'https://p.example/', 'podcast')")


@pytest.mark.integration
def test_known_urls_match_www_and_scheme_variants(db_url: str) -> None:
    from datetime import UTC, datetime

    from newsdedup import store

    with store.connect(db_url) as conn, conn.cursor() as cur:
        cur.execute(
            "INSERT INTO articles (url, canonical_url, title, text, content_hash, fetched_at) VALUES "
            "('https://www.example.com/a', 'https://www.example.com/a', 't', 'x', 'h1', %s), "
            "('http://example.com/feed-b', 'https://example.com/b', 't', 'x', 'h2', %s)",
            (datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 3, 2, tzinfo=UTC)),
        )
        known = store.known_urls(
            conn,
            [
                "https://example.com/a",
                "http://www.example.com/a",
                "https://www.example.com/feed-b",
                "http://www.example.com/b",
                "https://example.com/c",
            ],
        )
    assert known == {
        "https://example.com/a": datetime(2026, 3, 1, tzinfo=UTC),
        "http://www.example.com/a": datetime(2026, 3, 1, tzinfo=UTC),
        "https://www.example.com/feed-b": datetime(2026, 3, 2, tzinfo=UTC),
        "http://www.example.com/b": datetime(2026, 3, 2, tzinfo=UTC),
    }


def test_outcomes_kinds_and_fields_are_documented() -> None:
    from newsdedup.outcomes import Outcome
    from newsdedup.sources import KINDS, SourceEntry

    repo = Path(__file__).resolve().parents[1]
    schema = (repo / "docs" / "schema.md").read_text(encoding="utf-8")
    readme = (repo / "README.md").read_text(encoding="utf-8")
    for outcome in Outcome:
        assert f"`{outcome}`" in schema, outcome
    for kind in KINDS:
        assert f"`{kind}`" in schema and kind in readme, kind
    for name in SourceEntry.model_fields:
        assert f"| `{name}` |" in readme, name


# ------------------------------------------------------------------ lenient sitemaps, home pages


def serve_xml(
    server: LocalHTTPServer, path: str, body: str, etag: str | None = None, content_type: str = "application/xml"
) -> None:
    """Serve body (XML unless told), answering 304 to a request that sends back the ETag."""

    def handler(h) -> None:
        if etag and h.headers.get("If-None-Match") == etag:
            h.reply(304, content_type=None, headers={"ETag": etag})
        else:
            h.reply(200, body, headers={"ETag": etag} if etag else None, content_type=content_type)

    server.route(path, handler)


def news_url(loc: str, title: str, date: str, prefix: str = "news") -> str:
    return (
        f"<url><loc>{loc}</loc><{prefix}:news><{prefix}:publication><{prefix}:name>Kıyı</{prefix}:name>"
        f"<{prefix}:language>tr</{prefix}:language></{prefix}:publication>"
        f"<{prefix}:publication_date>{date}</{prefix}:publication_date><{prefix}:title>{title}</{prefix}:title>"
        f"</{prefix}:news></url>"
    )


@pytest.mark.parametrize(
    ("xmlns", "p"),
    [
        ("", ""),  # no xmlns at all
        ('xmlns="https://www.sitemaps.org/schemas/sitemap/0.9"', ""),  # the https:// variant
        ('xmlns="http://www.google.com/schemas/sitemap/0.84"', ""),  # the pre-2006 namespace
        ('xmlns:sm="http://www.sitemaps.org/schemas/sitemap/0.9"', "sm:"),  # a prefix instead of a default
    ],
)
def test_sitemaps_are_matched_by_local_name(http_server: LocalHTTPServer, xmlns: str, p: str) -> None:
    news = 'xmlns:n="https://www.google.com/schemas/sitemap-news/0.9"'  # https:// here too
    body = (
        f'<?xml version="1.0"?><{p}urlset {xmlns} {news}>'
        f"<{p}url><{p}loc>/2026/12/kopru.html</{p}loc><n:news><n:publication><n:name>Kıyı</n:name></n:publication>"
        "<n:publication_date>2026-12-01T09:30:00+03:00</n:publication_date><n:title>Köprü açıldı</n:title>"
        f"</n:news></{p}url><{p}url><{p}loc>/2026/12/liman.html</{p}loc><{p}lastmod>2026-12-01</{p}lastmod>"
        f"</{p}url></{p}urlset>"
    )
    serve_xml(http_server, "/sitemap.xml", body)
    with fetcher() as f:
        found = discover(Source("kiyi", http_server.url("/sitemap.xml"), "auto"), f)
    assert found.error is None, found.error
    kopru, liman = found.entries
    assert (kopru.url, kopru.title) == (http_server.url("/2026/12/kopru.html"), "Köprü açıldı")
    assert kopru.published_at is not None and (kopru.published_at.hour, kopru.published_at.minute) == (6, 30)
    assert (liman.title, liman.updated_at.day) == (None, 1)


def test_image_and_video_locations_are_not_articles(http_server: LocalHTTPServer) -> None:
    image = 'xmlns:image="http://www.google.com/schemas/sitemap-image/1.1"'
    body = (
        f"<urlset {SITEMAP_NS} {image}><url><loc>/a.html</loc>"
        "<image:image><image:loc>/a.jpg</image:loc></image:image></url></urlset>"
    )
    serve_xml(http_server, "/sitemap.xml", body)
    with fetcher() as f:
        found = discover(Source("x", http_server.url("/sitemap.xml"), "sitemap"), f)
    assert [e.url for e in found.entries] == [http_server.url("/a.html")]


def test_a_sitemap_without_namespace_still_refuses_entities(http_server: LocalHTTPServer) -> None:
    bomb = '<?xml version="1.0"?><!DOCTYPE urlset [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]>'
    serve_xml(http_server, "/sitemap.xml", bomb + "<urlset><url><loc>/&b;</loc></url></urlset>")
    with fetcher() as f:
        found = discover(Source("x", http_server.url("/sitemap.xml"), "auto"), f)
    assert found.entries == [] and found.error is not None and found.error.startswith("EntitiesForbidden")


def test_broken_links_in_a_sitemap_are_skipped(http_server: LocalHTTPServer) -> None:
    index = "<sitemapindex><sitemap><loc>http://[::1</loc></sitemap><sitemap><loc>/m.xml</loc></sitemap></sitemapindex>"
    serve_xml(http_server, "/index.xml", index)
    serve_xml(http_server, "/m.xml", "<urlset><url><loc>http://[::1/a</loc></url><url><loc>/b.html</loc></url></urlset>")
    with fetcher() as f:
        found = discover(Source("x", http_server.url("/index.xml"), "auto"), f)
    assert found.error is None and [e.url for e in found.entries] == [http_server.url("/b.html")]


def test_other_xml_is_still_not_a_sitemap(http_server: LocalHTTPServer) -> None:
    serve_xml(http_server, "/sitemap.xml", "<urlsets><url><loc>/a.html</loc></url></urlsets>")
    with fetcher() as f:
        found = discover(Source("x", http_server.url("/sitemap.xml"), "sitemap"), f)
    assert found.error == "SitemapParseError: not a sitemap: root element is <urlsets>"


HOME = """<!DOCTYPE html><html lang="tr"><head><title>Kıyı Gazetesi</title>
<link rel="stylesheet" href="/site.css">
<link rel="alternate" type="application/rss+xml" title="Kıyı Gazetesi" href="/rss.xml">
<link rel="alternate" type="application/rss+xml" title="Kıyı Gazetesi &raquo; Comments Feed" href="/comments/feed/">
<link rel="alternate" type="application/json" href="/wp-json/wp/v2/pages/12">
<link rel="alternate" hreflang="en" href="/en/">
<link rel="Alternate Feed" type="application/atom+xml; charset=utf-8" href="atom.xml"/>
<link rel=alternate type=application/feed+json href=/feed.json>
</head><body><a href="/rss2.xml" type="application/rss+xml">RSS</a></body></html>"""


def test_feed_links_of_a_home_page() -> None:
    assert feed_links(HOME, "https://kiyi.example.com/") == [
        "https://kiyi.example.com/rss.xml",
        "https://kiyi.example.com/atom.xml",
        "https://kiyi.example.com/feed.json",
    ]
    assert feed_links("<html><body>no head at all<link rel=alternate", "https://x.example/") == []
    for bad in ("javascript:x()", "http://[::1"):
        link = f'<link rel="alternate" type="application/rss+xml" href="{bad}">'
        assert feed_links(link, "https://x.example/") == []
    other = '<link rel="alternate" type="application/rss+xml" href="https://wire.example.org/tr.xml?utm_source=x">'
    assert feed_links(other, "https://kiyi.example.com/") == ["https://wire.example.org/tr.xml"]


def test_robots_txt_sitemap_lines() -> None:
    text = "User-agent: *\nDisallow: /search\nSitemap: https://kiyi.example.com/news.xml\nsitemap: /index.xml\n"
    assert parsed_rules("https://kiyi.example.com", text, "HTTP 200", 0.0).sitemaps() == [
        "https://kiyi.example.com/news.xml",
        "/index.xml",
    ]


def home_site(server: LocalHTTPServer, robots: str) -> None:
    """A home page linking to an RSS feed; robots.txt as given; a news sitemap; an article of each."""
    rss = "<rss version='2.0'><channel><title>Kıyı</title><item><title>Liman</title>"
    rss += f"<link>{server.url('/liman.html')}</link><pubDate>Tue, 01 Dec 2026 08:00:00 GMT</pubDate>"
    rss += "</item></channel></rss>"
    news = f"<urlset {SITEMAP_NS} {NEWS_NS}>" + news_url("/kopru.html", "Köprü açıldı", "2026-12-01T09:30:00+03:00")
    news += "</urlset>"
    page = '<html><head><link rel="alternate" type="application/rss+xml" href="/rss.xml"></head></html>'
    serve_xml(server, "/", page, '"h1"', "text/html; charset=utf-8")
    server.route("/robots.txt", static(robots, content_type="text/plain"))
    serve_xml(server, "/rss.xml", rss, '"r1"')
    serve_xml(server, "/sitemaps/news.xml", news, '"s1"')
    for path in ("/liman.html", "/kopru.html"):
        server.route(path, static(f"<html><body><h1>{path}</h1><p>Haber metni.</p></body></html>"))


def polite_fetcher() -> Fetcher:
    return Fetcher(FetchPolicy(allow_networks=("127.0.0.0/8",), min_host_delay=0))


def test_home_page_finds_its_feeds_and_robots_sitemaps(http_server: LocalHTTPServer) -> None:
    home_site(http_server, "User-agent: *\nDisallow: /private/\nSitemap: /sitemaps/news.xml\n")
    source = Source("kiyi", http_server.url("/"), "auto")
    with polite_fetcher() as f:
        found = discover(source, f)
    assert found.error is None and not found.incomplete and not found.not_modified
    by_url = {e.url: e for e in found.entries}
    assert set(by_url) == {http_server.url("/liman.html"), http_server.url("/kopru.html")}
    assert by_url[http_server.url("/kopru.html")].title == "Köprü açıldı"
    assert by_url[http_server.url("/liman.html")].published_at.hour == 8
    assert [r.url for r in found.fetches] == [http_server.url(p) for p in ("/", "/rss.xml", "/sitemaps/news.xml")]
    assert [r.url for r in found.fetches[0].robots] == [http_server.url("/robots.txt")]
    assert found.children == {
        http_server.url("/rss.xml"): ['"r1"', None, "linked"],
        http_server.url("/sitemaps/news.xml"): ['"s1"', None, "linked"],
    }


def test_unchanged_home_page_still_rechecks_its_feeds(http_server: LocalHTTPServer) -> None:
    home_site(http_server, "User-agent: *\nSitemap: /sitemaps/news.xml\n")
    source = Source("kiyi", http_server.url("/"), "auto")
    with polite_fetcher() as f:
        first = discover(source, f)
        http_server.route("/", static("", status=304, content_type=None))
        same = discover(source, f, etag='"h1"', children=first.children)
        new_rss = "<rss version='2.0'><channel><item><link>/yeni.html</link></item></channel></rss>"
        serve_xml(http_server, "/rss.xml", new_rss)
        changed = discover(source, f, etag='"h1"', children=first.children)
    assert same.not_modified and same.entries == [] and same.children == first.children
    assert [r.outcome for r in same.fetches] == ["not_modified"] * 3
    sent = [r.headers.get("if-none-match") for r in http_server.requests_for("/sitemaps/news.xml")]
    assert sent == [None, '"s1"', '"s1"']
    assert not changed.not_modified and [e.url for e in changed.entries] == [http_server.url("/yeni.html")]
    assert changed.children[http_server.url("/rss.xml")] == [None, None, "linked"]


def test_home_page_without_feeds_or_sitemaps_is_not_a_feed(http_server: LocalHTTPServer) -> None:
    http_server.route("/", static(re.sub("alternate", "preload", HOME, flags=re.IGNORECASE)))
    http_server.route("/robots.txt", static("User-agent: *\nDisallow:\n", content_type="text/plain"))
    with polite_fetcher() as f:
        found = discover(Source("kiyi", http_server.url("/")), f)
    assert found.error is not None and found.error.startswith("NotAFeed: expected an RSS/Atom/JSON feed")
    assert "robots.txt names no sitemap" in found.error
    with polite_fetcher() as f:  # kind: rss is taken at its word: an HTML page is a broken feed
        found = discover(Source("kiyi", http_server.url("/"), "rss"), f)
    assert found.error is not None and found.error.startswith("FeedParseError")
    assert http_server.hits("/rss.xml") == 0


def test_home_page_files_are_bounded_and_checked(http_server: LocalHTTPServer) -> None:
    from newsdedup.sources import MAX_SITEMAP_FILES

    lines = "".join(f"Sitemap: /s{i}.xml\n" for i in range(MAX_SITEMAP_FILES + 10))
    home_site(http_server, "User-agent: *\n" + lines)
    doctype = '<!DOCTYPE rss [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
    http_server.route("/rss.xml", static(doctype + "<rss version='2.0'><channel><title>&x;</title></channel></rss>"))
    for i in range(MAX_SITEMAP_FILES + 10):
        serve_xml(http_server, f"/s{i}.xml", f"<urlset><url><loc>/m{i}.html</loc></url></urlset>")
    with polite_fetcher() as f:
        found = discover(Source("kiyi", http_server.url("/")), f)
    assert found.error is None and found.incomplete
    assert len(found.fetches) == MAX_SITEMAP_FILES  # the home page counts as one
    rss = next(r for r in found.fetches if r.url.endswith("/rss.xml"))
    assert (rss.outcome, rss.error_class) == ("parse_error", "EntitiesForbidden")
    assert len(found.entries) == MAX_SITEMAP_FILES - 2


def test_home_page_whose_feeds_all_fail_is_an_error(http_server: LocalHTTPServer) -> None:
    http_server.route("/", static(HOME))
    with polite_fetcher() as f:
        found = discover(Source("kiyi", http_server.url("/")), f)
    assert found.error == (
        "NoReadableFeed: none of the 3 feeds and sitemaps this home page leads to could be read (see crawl_log)"
    )
    assert [(r.url, r.status) for r in found.fetches[1:]] == [
        (http_server.url(path), 404) for path in ("/rss.xml", "/atom.xml", "/feed.json")
    ]


@pytest.mark.integration
def test_home_page_source_end_to_end(db_url: str, http_server: LocalHTTPServer) -> None:
    """Through the pipeline: the news sitemap's title and date reach raw_pages; every request is logged."""
    import psycopg2
    from newsdedup import pipeline, store

    home_site(http_server, "User-agent: *\nSitemap: /sitemaps/news.xml\n")
    with store.connect(db_url) as conn:
        store.sync_sources(conn, [Source("kiyi", http_server.url("/"), "auto", "tr")])
    run = pipeline.begin_run(db_url, "home-page-1", "cli")
    with polite_fetcher() as f:
        report = pipeline.crawl_source(db_url, run["run_id"], "kiyi", f)
        again = pipeline.crawl_source(db_url, pipeline.begin_run(db_url, "home-page-2", "cli")["run_id"], "kiyi", f)
    assert not report["failed"] and report["pages_fetched"] == 2, report
    # The second run only asks conditionally, and everything is unchanged.
    assert (again["failed"], again["feeds_not_modified"]) == (False, 1), again
    with psycopg2.connect(db_url) as conn, conn.cursor() as cur:
        cur.execute("SELECT url, feed_title, feed_published FROM raw_pages ORDER BY url")
        (kopru, liman) = cur.fetchall()
        cur.execute("SELECT request_kind, url FROM crawl_log WHERE run_id = %s ORDER BY crawl_id", (run["run_id"],))
        log = cur.fetchall()
    assert kopru[:2] == (http_server.url("/kopru.html"), "Köprü açıldı")
    assert (kopru[2].isoformat(), liman[1]) == ("2026-12-01T06:30:00+00:00", "Liman")
    assert all("if-none-match" in r.headers for r in http_server.requests[-3:])
    assert log[:4] == [
        ("robots", http_server.url("/robots.txt")),
        ("feed", http_server.url("/")),
        ("feed", http_server.url("/rss.xml")),
        ("feed", http_server.url("/sitemaps/news.xml")),
    ]


# ------------------------------------------------------------------ bounded parsing (issue 19)


def _rss_items(items: list[tuple[str, str | None]], prefix: str = "") -> str:
    """An RSS feed of (path, pubDate or None) items on x.example."""
    body = "".join(
        f"<item><title>{path}</title><link>https://x.example/{path}</link>"
        + (f"<pubDate>{date}</pubDate>" if date else "")
        + "</item>"
        for path, date in items
    )
    return f'{prefix}<rss version="2.0"><channel><title>t</title>{body}</channel></rss>'


@pytest.mark.parametrize("prefix", ["", "junk before the root "], ids=["well-formed", "not-well-formed"])
def test_a_feed_nested_too_deep_is_refused_before_parsing(prefix: str) -> None:
    deep = _rss_items([("a", None)], prefix).replace("<title>t</title>", "<x>" * 5000 + "</x>" * 5000)
    with pytest.raises(FeedError) as info:
        parse_feed(deep, "https://x.example/rss", ParseLimits(max_depth=100))
    assert info.value.error_class == "TooDeep" and "100" in info.value.message


def test_a_feed_within_the_depth_limit_is_read() -> None:
    xhtml = '<div xmlns="http://www.w3.org/1999/xhtml">' + "<div>" * 40 + "deep" + "</div>" * 40 + "</div>"
    atom = ATOM.replace("<title>Bridge</title>", f'<title>Bridge</title><content type="xhtml">{xhtml}</content>')
    listing = parse_feed(atom, "https://ledger.example.com/atom.xml", ParseLimits(max_depth=60))
    assert [e.url for e in listing.entries] == ["https://ledger.example.com/bridge.html"] and listing.dropped == 0


def test_a_feed_over_the_cap_keeps_the_newest_dated_then_the_first_undated() -> None:
    items = [
        ("undated-1", None),
        ("old", "Sat, 14 Mar 2026 08:00:00 GMT"),
        ("newest", "Sat, 14 Mar 2026 12:00:00 GMT"),
        ("undated-2", None),
        ("middle", "Sat, 14 Mar 2026 10:00:00 GMT"),
        ("bad-date", "someday"),
    ]
    listing = parse_feed(_rss_items(items), "https://x.example/rss", ParseLimits(max_feed_entries=4))
    assert [e.title for e in listing.entries] == ["undated-1", "old", "newest", "middle"]  # feed order kept
    assert (listing.listed, listing.dropped) == (6, 2)


def test_an_atom_feed_over_the_cap() -> None:
    entries = "".join(
        f'<entry><title>e{i}</title><link href="https://x.example/e{i}"/><updated>2026-03-{10 + i}T08:00:00Z</updated>'
        "</entry>"
        for i in range(8)
    )
    atom = f'<feed xmlns="http://www.w3.org/2005/Atom"><title>t</title>{entries}</feed>'
    listing = parse_feed(atom, "https://x.example/atom", ParseLimits(max_feed_entries=3))
    assert [e.title for e in listing.entries] == ["e5", "e6", "e7"] and listing.dropped == 5


def test_a_broken_feed_over_the_cap_is_refused() -> None:
    # lxml cannot read it, so it cannot be cut; feedparser would read every entry.
    broken = _rss_items([(f"p{i}", None) for i in range(20)], prefix="junk ")
    with pytest.raises(FeedError) as info:
        parse_feed(broken, "https://x.example/rss", ParseLimits(max_feed_entries=5))
    assert info.value.error_class == "TooManyEntries"
    assert len(parse_feed(broken, "https://x.example/rss", ParseLimits(max_feed_entries=20)).entries) == 20


def test_a_cut_feed_that_declares_entities_is_refused() -> None:
    with pytest.raises(FeedError) as info:
        parse_feed(ENTITY_BOMB.replace("</channel>", "<item><link>https://x.example/2</link></item></channel>"),
                   "https://x.example/rss", ParseLimits(max_feed_entries=1))
    assert info.value.error_class == "EntitiesForbidden"


def test_parse_limits_come_from_the_settings() -> None:
    limits = ParseLimits.from_env({"NEWSDEDUP_MAX_FEED_ENTRIES": "5", "NEWSDEDUP_MAX_XML_DEPTH": "40"})
    assert (limits.max_feed_entries, limits.max_depth, limits.max_sitemap_urls) == (5, 40, 50_000)
    assert ParseLimits() == ParseLimits(100, 10_000, 50_000)
    with pytest.raises(ConfigError, match="NEWSDEDUP_MAX_XML_DEPTH: must be <= 250"):
        ParseLimits.from_env({"NEWSDEDUP_MAX_XML_DEPTH": "300"})


def test_titles_and_messages_from_the_web_are_one_line() -> None:
    feed = _rss_items([("a", None)]).replace("<title>a</title>", "<title>Evil\x1b[2J title&#13;</title>")
    (entry,) = parse_feed(feed, "https://x.example/rss").entries
    assert entry.title == "Evil\\x1b[2J title"
    assert FeedError("X", "root <{urn:a\nb}x>\r").message == "root <{urn:a\\nb}x>\\r"
    assert one_line("a\u2028b\x85c\td", 5) == "a\\u2…"


def test_reading_sources_and_feeds_does_not_import_the_extractor() -> None:
    """The crawl side (sources, feeds) stays free of extraction's heavy imports (trafilatura, numpy, py3langid)."""
    plugins = Path(__file__).resolve().parents[1] / "plugins"
    code = (
        "import sys; import newsdedup.sources, newsdedup.feeds; "
        "print(sorted(m for m in ('trafilatura', 'numpy', 'py3langid', 'newsdedup.extract') if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env={"PYTHONPATH": str(plugins)}
    )
    assert done.stdout.strip() == "[]"
