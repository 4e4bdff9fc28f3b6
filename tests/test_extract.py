"""Extraction of title, text, author, date, language and canonical URL."""

import gzip
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from newsdedup.extract import ExtractionError, extract
from newsdedup.timeparse import parse_datetime

from tests.conftest import shared_path

PAGES = Path(__file__).parent / "fixtures" / "pages"


def test_wire_story_fields() -> None:
    html = (PAGES / "wire_story.html").read_text(encoding="utf-8")
    article = extract(html, "https://ledger.example.com/2026/03/harbour-bridge-reopens.html")
    assert article.title == "Harbour bridge reopens after storm repairs"
    assert article.author == "Dana Whitlock"
    assert article.published_at == datetime(2026, 3, 14, 7, 30, tzinfo=UTC)
    assert article.language == "en"
    assert article.canonical_url == "https://ledger.example.com/2026/03/harbour-bridge-reopens.html"
    assert "six weeks after a winter storm" in article.text
    assert "spliced rather than replaced" in article.text
    assert "All rights reserved" not in article.text
    assert "Sport" not in article.text.split("\n")


def test_control_characters_never_reach_a_stored_title_or_author() -> None:
    html = (PAGES / "wire_story.html").read_text(encoding="utf-8")
    hostile = "Harbour bridge\x1b[2J reopens\u2028after\x07 storm\x9b repairs"
    html = html.replace("<h1>Harbour bridge reopens after storm repairs</h1>", f"<h1>{hostile}</h1>")
    html = html.replace('content="Dana Whitlock"', 'content="Dana\x1b]0;pwned\x07 Whitlock"')
    article = extract(html, "https://ledger.example.com/2026/03/harbour-bridge-reopens.html")
    assert article.title == "Harbour bridge[2J reopens after storm repairs"  # the parser drops ESC itself
    assert article.author and "Whitlock" in article.author
    assert not any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in article.title + article.author)


def test_canonical_to_another_host_is_ignored() -> None:
    html = (PAGES / "wire_story.html").read_text(encoding="utf-8")
    article = extract(html, "https://mirror.example.org/copy.html?utm_medium=x")
    assert article.canonical_url == "https://mirror.example.org/copy.html"


def test_broken_canonical_link_is_ignored() -> None:
    html = (PAGES / "wire_story.html").read_text(encoding="utf-8")
    url = "https://ledger.example.com/2026/03/harbour-bridge-reopens.html"
    html = html.replace('href="https://ledger.example.com/', 'href="https://[ledger.example.com/')
    assert 'href="https://[ledger' in html  # found by the fuzzer: urljoin raises on an unclosed bracket
    assert extract(html, url).canonical_url == url


def test_minimal_page_falls_back_and_detects_turkish() -> None:
    html = (PAGES / "haber_minimal.html").read_text(encoding="utf-8")
    article = extract(html, "https://kiyi.example.com/vapur.html")
    assert article.language == "tr"
    assert "vapur hattı" in article.text
    assert article.title


def test_empty_page_is_an_error() -> None:
    with pytest.raises(ExtractionError):
        extract("   ", "https://example.com/")
    with pytest.raises(ExtractionError):
        extract("<html><body><script>var a = 1;</script></body></html>", "https://example.com/")


def test_parse_datetime() -> None:
    assert parse_datetime("2026-03-14") == datetime(2026, 3, 14, tzinfo=UTC)
    assert parse_datetime("2026-03-14T10:00:00Z") == datetime(2026, 3, 14, 10, tzinfo=UTC)
    assert parse_datetime("yesterday") is None


def test_benchmark_corpus_pages() -> None:
    """Every page of the shared extraction benchmark yields a title and text that overlap the truth."""
    corpus = shared_path("corpora", "article-extraction-benchmark")
    truth = json.loads((corpus / "ground-truth.json").read_text(encoding="utf-8"))
    pages = sorted((corpus / "html").glob("*.html.gz"))[:40]
    hits = 0
    for page in pages:
        html = gzip.decompress(page.read_bytes()).decode("utf-8", errors="replace")
        expected = truth[page.name.split(".")[0]]
        article = extract(html, expected["url"])
        assert article.title, page.name
        first_words = " ".join(expected["articleBody"].split()[:6])
        hits += first_words in " ".join(article.text.split())
    assert hits >= 0.8 * len(pages)


def test_canonical_on_another_port_is_ignored() -> None:
    html = '<html><head><link rel="canonical" href="http://127.0.0.1:9001/a.html"></head><body><p>x</p></body></html>'
    html = html.replace("<p>x</p>", "<article><p>" + "A sentence of the story. " * 30 + "</p></article>")
    assert extract(html, "http://127.0.0.1:9002/b.html").canonical_url == "http://127.0.0.1:9002/b.html"
    assert extract(html, "http://127.0.0.1:9001/c.html").canonical_url == "http://127.0.0.1:9001/a.html"


# Replacement, emoji, private use (plane 15), mathematical capital (plane 1), a lone surrogate, Turkish I.
ODD_CHARACTERS = st.sampled_from("\ufffd\U0001f600\U000f0000\U0001d400\ud800İı")


@settings(max_examples=300)
@given(st.text(alphabet=st.characters(codec="utf-8") | ODD_CHARACTERS, max_size=300)
       | st.text(alphabet=st.characters(codec="latin-1"), max_size=300))
def test_garbage_check_counts_what_unicode_categories_count(text: str) -> None:
    """The class tables (Latin-1 bytes, then numpy over the BMP) against unicodedata, astral planes included."""
    import unicodedata
    from collections import Counter

    from newsdedup import extract as module

    categories = Counter(map(unicodedata.category, text))
    expected = (sum(categories[c] for c in module._JUNK_CATEGORIES), categories["Lu"], categories["Ll"])
    assert module._class_counts(text) == expected


def test_garbage_check_tells_binary_from_text() -> None:
    from newsdedup import extract as module

    base64ish = "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5ejAxMjM0NTY3ODk" * 5
    assert "capitals" in (module.garbage_reason(base64ish) or "")
    assert module.garbage_reason("The ferry leaves at nine. " * 20) is None


def test_json_ld_look_up_equals_trafilaturas_on_real_pages() -> None:
    """_meta_json skips trafilatura's minifying regex; titles and authors must come out the same."""
    from lxml.html import fromstring
    from newsdedup.metadata import meta_json as _meta_json
    from trafilatura.metadata import examine_meta, extract_meta_json

    corpus = shared_path("corpora", "article-extraction-benchmark")
    pages = [gzip.decompress(p.read_bytes()).decode("utf-8", "replace") for p in sorted(corpus.glob("html/*.html.gz"))]
    pages += [p.read_text(encoding="utf-8") for p in sorted((Path(__file__).parent / "fixtures" / "pages").glob("*"))]
    pages.append('<html><head><script type="application/ld+json">{"headline": "Broken &amp; <b>cut</b>",</script>'
                 '</head><body><p>x</p></body></html>')
    with_json = 0
    for html in pages:
        tree = fromstring(html.encode())
        with_json += bool(tree.xpath('//script[@type="application/ld+json"]'))
        ours, theirs = _meta_json(tree, examine_meta(tree)), extract_meta_json(tree, examine_meta(tree))
        assert (ours.title, ours.author) == (theirs.title, theirs.author)
    assert with_json > 50


def test_article_table_is_kept() -> None:
    """News has tables: a standings table is part of the article's text, row by row."""
    html = (PAGES / "league_table.html").read_text(encoding="utf-8")
    article = extract(html, "https://ledger.example.com/sport/2026/03/title-race.html")
    lines = article.text.split("\n")
    assert any("Lighthouse Wanderers" in line and "46" in line for line in lines)
    assert any("Northbank Swifts" in line and "-44" in line for line in lines)
    assert "travel to Saltmarsh United next weekend" in article.text


def test_menu_bigger_than_the_article_is_not_taken_for_it() -> None:
    """A council site's menus outweigh its short news item: the fast pass returns the menu, the full pass
    the article."""
    html = (PAGES / "belediye_menu_heavy.html").read_text(encoding="utf-8")
    article = extract(html, "https://kiyi.example.com/haber/semt-pazari.html")
    assert "güvenlik şeridiyle kapattı" in article.text
    assert "çatı kaplamasının tamamen yenilenmesine" in article.text
    assert "Park ve Bahçeler Duyurular" not in article.text
    assert len(article.text) < 1000  # the menus alone are 4,000 characters
    assert article.method == "trafilatura-full"


def test_suspect_fast_texts() -> None:
    """A menu, a lead far shorter than the page's main paragraphs or its JSON-LD body are suspect."""
    from newsdedup.extract import _expected_chars, _suspicion
    from trafilatura.utils import load_html

    sentence = "The ferry service resumes on Monday after the harbour wall was repaired. "
    paragraphs = "".join(f"<p>{sentence * 2}</p>" for _ in range(8))
    page = load_html(f"<html><body><div>{paragraphs}</div></body></html>")
    assert _suspicion(sentence * 16, _expected_chars(page)) is None
    assert _suspicion(sentence * 2, _expected_chars(page)) == "truncated"
    assert _suspicion("\n".join(["Home", "News", "Sport", "Weather", "Contact us"] * 20), 0) == "menu"
    assert _suspicion("", 0) == "empty"
    body = json.dumps({"@type": "NewsArticle", "articleBody": sentence * 20})
    linked = load_html(f'<html><head><script type="application/ld+json">{body}</script></head>'
                       f"<body><p>{sentence}</p></body></html>")
    assert _suspicion(sentence * 4, _expected_chars(linked)) == "truncated"


def test_benchmark_bodies_match_bare_trafilatura_or_better() -> None:
    """Issue 12's targets on the real AEB pages: mean body F1 at least bare trafilatura's (defaults) + 0.005,
    no page under 0.5 where bare trafilatura is over 0.8, none recovering under half its ground-truth words,
    and a text under half of bare trafilatura's length only where it scores better (bare took in junk)."""
    import logging
    import statistics

    import trafilatura

    from bench.extract_quality import aeb_pages, f1, recovered

    pages = aeb_pages(shared_path("corpora", "article-extraction-benchmark"))
    assert len(pages) > 150
    logging.disable(logging.WARNING)  # trafilatura warns about every page it discards
    try:
        rows = []
        for page in pages:
            bare = trafilatura.extract(page.html, url=page.url) or ""
            ours = extract(page.html, page.url).text
            rows.append((page.key, bare, ours, f1(bare, page.truth), f1(ours, page.truth), page.truth))
    finally:
        logging.disable(logging.NOTSET)
    assert statistics.mean(r[4] for r in rows) >= statistics.mean(r[3] for r in rows) + 0.005
    assert [key for key, _, _, b, o, _ in rows if o < 0.5 and b > 0.8] == []
    assert [key for key, b, o, _, _, truth in rows if recovered(o, truth) < 0.5 * recovered(b, truth)] == []
    assert [key for key, b, o, bf, of, _ in rows if len(o) < 0.5 * len(b) and of <= bf] == []


@pytest.mark.parametrize(
    "notice",
    [
        "You need to enable JavaScript to run this app.",
        "Bitte aktivieren Sie JavaScript, um diese Seite zu sehen.",
        "Bu sayfayı görüntülemek için JavaScript'i etkinleştirin.",
        "JavaScript is required to view this site.",
    ],
)
def test_a_script_rendered_shell_is_not_an_article(notice: str) -> None:
    html = (
        f'<html><head><title>App</title></head><body><noscript>{notice}</noscript><div id="root"></div>'
        '<script src="/static/main.js"></script></body></html>'
    )
    with pytest.raises(ExtractionError, match="needs JavaScript"):
        extract(html, "https://app.example.com/story/1")


def test_an_article_about_javascript_is_kept() -> None:
    paragraph = (
        "Browser makers said on Tuesday that sites which require JavaScript to show plain text will be "
        "flagged in search results, a change publishers have opposed for months. "
    )
    html = f"<html><head><title>Browsers</title></head><body><article><p>{paragraph * 3}</p></article></body></html>"
    assert "require JavaScript" in extract(html, "https://news.example.com/a").text
