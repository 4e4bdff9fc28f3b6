"""Fuzzing with random and mutated bytes (hypothesis): the extractor, the page-processing unit and the
feed/sitemap parsers never crash and never hang; a bad input becomes a recorded error.

The seeds are real inputs (the demo site's pages and feeds, the test fixtures); mutations cut, repeat,
splice random bytes, nest tags deeply, add entities and NUL bytes, and declare other charsets. Every
example must finish within the hypothesis deadline (30 s: generous, so a cold start on a busy CI machine
is not taken for a hang); the processing pool's own per-page time limit is
tested at the end with a page that takes longer than the limit.
"""

from __future__ import annotations

import time
from functools import cache
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from newsdedup.content import decode_body
from newsdedup.extract import ExtractionError, extract
from newsdedup.outcomes import FetchResult
from newsdedup.page_extraction import Extracted, extract_page, extract_pages
from newsdedup.process import ProcessSettings, _Extractor
from newsdedup.robots import RobotsCache
from newsdedup.sources import Source, discover

from demo import site as demo_site

FIXTURES = Path(__file__).parent / "fixtures" / "pages"
URL = "http://127.0.0.1:8/news/a.html"
FUZZ = settings(
    max_examples=120, deadline=30_000, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
INSERTS = [
    b"<",
    b">",
    b"</p>",
    b"<p>",
    b"<div>" * 300,
    b"<table><tr><td>",
    b"<![CDATA[",
    b"]]>",
    b"<!--",
    b"-->",
    b"&#0;",
    b"&#xD800;",
    b"&amp",
    b"&#99999999;",
    b"\x00",
    b"\xff\xfe",
    b"\xef\xbb\xbf",
    b"\r",
    b"\xc3",
    b"<script>",
    b"<meta charset='utf-16'>",
    b"<meta http-equiv='content-type' content='text/html; charset=koi8-r'>",
    b"<!DOCTYPE x [<!ENTITY a 'aaaaaaaaaa'><!ENTITY b '&a;&a;&a;&a;&a;'>]>",
    b"&b;",
    b"<?xml version='1.0'?>",
    b"<link rel='canonical' href='javascript:alert(1)'>",
    b"<html lang='\xff'>",
    b"<time datetime='99999-99-99'>",
    b'<script type=\'application/ld+json\'>{"datePublished": [1, {}], "author": {"name": 5}}</script>',
]


@cache
def seeds() -> dict[str, list[bytes]]:
    """Real pages and feeds to mutate."""
    corpus = demo_site.load_corpus()
    pages = demo_site.build_pages(corpus, "http://127.0.0.1:8")
    html = [FIXTURES.joinpath(name).read_bytes() for name in ("wire_story.html", "haber_minimal.html")]
    html += [pages[a.path].body for a in corpus.articles[:6]]
    feeds = [page.body for path, page in sorted(pages.items()) if path.endswith((".xml", ".json"))]
    feeds.append(b'{"version": "https://jsonfeed.org/version/1.1", "items": [{"url": "/a", "title": "A"}]}')
    feeds.append(
        b"<?xml version='1.0'?><sitemapindex xmlns='http://www.sitemaps.org/schemas/sitemap/0.9'>"
        b"<sitemap><loc>http://127.0.0.1:8/s1.xml</loc></sitemap></sitemapindex>"
    )
    return {"html": html, "feed": feeds}


@st.composite
def mutated(draw: st.DrawFn, kind: str) -> bytes:
    """A seed with up to six random edits."""
    data = bytearray(draw(st.sampled_from(seeds()[kind])))
    for _ in range(draw(st.integers(0, 6))):
        op = draw(st.sampled_from(["cut", "dup", "bytes", "insert", "flip", "truncate"]))
        i = draw(st.integers(0, max(len(data) - 1, 0)))
        j = min(len(data), i + draw(st.integers(0, 4000)))
        if op == "cut":
            del data[i:j]
        elif op == "dup":
            data[i:i] = data[i:j] * draw(st.integers(1, 4))
        elif op == "bytes":
            data[i:i] = draw(st.binary(max_size=300))
        elif op == "insert":
            data[i:i] = draw(st.sampled_from(INSERTS))
        elif op == "flip" and data:
            data[min(i, len(data) - 1)] ^= 1 << draw(st.integers(0, 7))
        elif op == "truncate":
            del data[i:]
    return bytes(data[:200_000])


ANY_BYTES = st.binary(max_size=20_000)
CHARSET = st.sampled_from([None, "utf-8", "iso-8859-9", "windows-1252", "koi8-r", "utf-16", "x-unknown"])


def check_extract(body: bytes, charset: str | None) -> None:
    """extract() returns an article or raises ExtractionError, nothing else."""
    text, _ = decode_body(body, charset)
    try:
        article = extract(text, URL)
    except ExtractionError:
        return
    assert article.text.strip() and isinstance(article.title, str)
    assert article.canonical_url.startswith(("http://", "https://"))


@FUZZ
@given(ANY_BYTES, CHARSET)
def test_extract_random_bytes(body: bytes, charset: str | None) -> None:
    check_extract(body, charset)


@FUZZ
@given(mutated("html"), CHARSET)
def test_extract_mutated_pages(body: bytes, charset: str | None) -> None:
    check_extract(body, charset)


@FUZZ
@given(st.one_of(mutated("html"), ANY_BYTES), CHARSET)
def test_processing_unit_records_instead_of_raising(body: bytes, charset: str | None) -> None:
    text, _ = decode_body(body, charset)
    page = {
        "raw_page_id": 7,
        "source_id": 1,
        "url": URL,
        "final_url": URL,
        "html": text.replace("\x00", ""),  # as raw_pages stores it
        "feed_title": "Feed title",
        "feed_published": None,
        "source_language": "tr",
    }
    done = extract_page(page)
    assert isinstance(done, Extracted) and (done.article is None) != (done.failure is None)
    if done.failure:
        assert done.failure.outcome == "extract_failed" and done.failure.error_message


class StubFetcher:
    """Answers the source URL with the fuzzed body; any other URL (sitemap children, robots.txt) with a 404."""

    def __init__(self, body: bytes, content_type: str) -> None:
        self.body, self.content_type, self.calls = body, content_type, 0
        self.robots = RobotsCache(self.get, "fuzz")  # a home page (kind auto, HTML) asks for its Sitemap lines

    def get(self, url: str, **_: object) -> FetchResult:
        self.calls += 1
        if self.calls > 1:
            return FetchResult(url, url, "http_error", status=404, error_class="HTTPError", error_message="404")
        text, encoding = decode_body(self.body, None)
        return FetchResult(
            url,
            url,
            "ok",
            status=200,
            body=self.body,
            text=text,
            content_type=self.content_type,
            encoding=encoding,
            nbytes=len(self.body),
        )


@FUZZ
@given(
    st.one_of(mutated("feed"), ANY_BYTES),
    st.sampled_from(["auto", "rss", "atom", "sitemap", "jsonfeed"]),
    st.sampled_from(["application/rss+xml", "application/xml", "application/json", "text/html"]),
)
def test_feed_and_sitemap_parsers(body: bytes, kind: str, content_type: str) -> None:
    fetcher = StubFetcher(body, content_type)
    found = discover(Source("fuzz", "http://127.0.0.1:8/feed.xml", kind), fetcher)
    assert found.error is None or isinstance(found.error, str)
    assert all(entry.url.startswith(("http://", "https://")) for entry in found.entries)
    assert len({entry.url for entry in found.entries}) == len(found.entries)
    assert fetcher.calls <= 21  # sitemap indexes are walked a bounded number of files deep


def test_a_page_slower_than_the_limit_is_recorded_not_waited_for() -> None:
    """In the pool, a page that takes longer than the per-page limit costs the limit, then is a failure.

    The slow page is 1,200 near-identical paragraphs (just under MAX_TEXT_CHARS) beside a sidebar of
    200,000 empty elements: parsing and extracting it takes about 3 s of CPU, three times the limit.
    """
    slow = (
        "<html><body><article>"
        + "".join(
            f"<p>Paragraph {i} tells of harbour {i * 7} ferries and {i * 3} boats. Another sentence number {i} "
            f"about the boats of {i % 13} towns.</p>"
            for i in range(1200)
        )
        + "</article><aside>"
        + "<span><i></i></span>" * 100_000
        + "</aside></body></html>"
    )
    quick = "<html><head><title>Ferry</title></head><body><article><p>A short article about the harbour ferry.</p>"
    pages = [
        {
            "raw_page_id": i,
            "source_id": 1,
            "url": f"{URL}?{i}",
            "final_url": f"{URL}?{i}",
            "html": html,
            "feed_title": None,
            "feed_published": None,
            "source_language": "en",
        }
        for i, html in enumerate([quick, slow, quick])
    ]
    extractor = _Extractor(ProcessSettings(workers=2, pool_min_pages=1, page_timeout=1.0), pending=3)
    try:
        started = time.monotonic()
        results = extractor.submit(pages)()
        elapsed = time.monotonic() - started
    finally:
        extractor.close()
    assert [r.raw_page_id for r in results] == [0, 1, 2]
    assert results[0].article and results[2].article, results
    assert results[1].failure and results[1].failure.error_class == "ExtractionTimeout"
    assert elapsed < 10, elapsed


def test_text_longer_than_an_article_is_refused_before_cleaning() -> None:
    html = (
        "<html><body><article>"
        + "".join(
            f"<p>Paragraph {i} tells of harbour {i * 7} ferries and {i * 3} boats. Another sentence number {i} "
            f"about the boats of {i % 13} towns.</p>"
            for i in range(3000)
        )
        + "</article></body></html>"
    )
    started = time.monotonic()
    done = extract_page(
        {
            "raw_page_id": 1,
            "source_id": 1,
            "url": URL,
            "final_url": URL,
            "html": html,
            "feed_title": None,
            "feed_published": None,
            "source_language": "en",
        }
    )
    assert done.failure and "longer than an article" in done.failure.error_message
    assert time.monotonic() - started < 10  # cleaning it would take about 40 s


def test_a_chunk_is_processed_stage_by_stage_with_each_page_failing_alone() -> None:
    """extract_pages runs each stage over the whole chunk: a page failing at any stage fails alone, in order."""
    story = "<p>" + "The harbour ferry keeps its winter timetable until March, the operator said. " * 6 + "</p>"
    headline = "Ferry keeps its winter timetable"
    bodies = {
        1: f"<html><head><title>{headline}</title></head><body><article><h1>{headline}</h1>{story}</article>"
        "</body></html>",
        2: "",  # nothing to extract
        3: f"<html><head><title>{headline}</title></head><body><article>" + f"<p>{headline}.</p>" * 3
        + "</article></body></html>",  # only repeats its headline: fails at cleaning
        4: "<html><body>" + "<div>" * 100_000 + story + "</div>" * 100_000 + "</body></html>",
        5: "<html><head><title>Trams return</title></head><body><article>" + "".join(
            f"<p>Tram line {i} reopens on Monday after {i + 2} weeks of track work in the old town.</p>"
            for i in range(6)) + "</article></body></html>",
    }
    pages = [
        {"raw_page_id": n, "source_id": 1, "url": f"{URL}?{n}", "final_url": f"{URL}?{n}", "html": html,
         "feed_title": None, "feed_published": None, "source_language": "en"}
        for n, html in bodies.items()
    ]
    together = extract_pages(pages)
    alone = [extract_page(page) for page in pages]
    assert [done.raw_page_id for done in together] == list(bodies)
    for chunked, single in zip(together, alone, strict=True):
        assert (chunked.failure is None) == (single.failure is None)
        if chunked.article:
            assert (chunked.article.text, chunked.article.fingerprint.signature.tolist()) == (
                single.article.text, single.article.fingerprint.signature.tolist())
        else:
            assert chunked.failure.error_message == single.failure.error_message
    assert together[0].article and "winter timetable" in together[0].article.text
    assert together[1].failure and together[2].failure
    assert "only repeats its headline" in together[2].failure.error_message
    assert together[4].article and "Tram line 5" in together[4].article.text


@pytest.mark.parametrize("depth", [10_000, 100_000])
def test_deeply_nested_page(depth: int) -> None:
    html = "<html><body>" + "<div>" * depth + "<p>" + "Deep text of an article. " * 20 + "</p>" + "</div>" * depth
    started = time.monotonic()
    done = extract_page(
        {
            "raw_page_id": 1,
            "source_id": 1,
            "url": URL,
            "final_url": URL,
            "html": html,
            "feed_title": None,
            "feed_published": None,
            "source_language": None,
        }
    )
    assert (done.article is None) != (done.failure is None)
    assert time.monotonic() - started < 10


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"<rss><channel><item><title>&#x110000;</title></item></channel></rss>",
        b"<rss><channel><item><title>&#xd800;</title></item></channel></rss>",
    ],
)
def test_feeds_feedparser_chokes_on_are_recorded_errors(body: bytes) -> None:
    found = discover(Source("fuzz", "http://127.0.0.1:8/feed.xml", "rss"), StubFetcher(body, "application/rss+xml"))
    assert found.entries == [] or found.error is None
    assert found.error is None or found.error.startswith(("FeedParseError", "NotAFeed"))
