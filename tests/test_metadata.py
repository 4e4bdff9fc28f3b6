"""Page metadata: titles without site decorations, trusted dates with flags, bylines of people only."""

import gzip
import json
from datetime import UTC, datetime

import pytest
from lxml.html import fromstring
from newsdedup import store
from newsdedup.extract import extract
from newsdedup.metadata import (
    clean_authors,
    learned_affixes,
    read_metadata,
    site_names,
    strip_decorations,
    strip_learned,
)

from tests.conftest import shared_path

KIYI = "https://kiyigazetesi.com.tr/2026/03/vapur.html"
NOW = datetime(2026, 3, 20, 12, 0, tzinfo=UTC)
BODY_EN = "<p>" + "The harbour bridge carried its first buses on Monday after six weeks of repairs. " * 6 + "</p>"
BODY_TR = "<p>" + "Vapur seferleri fırtınanın ardından pazartesi sabahı yeniden başladı, dedi yetkililer. " * 6 + "</p>"


def page(head: str, body: str = BODY_EN, *, lang: str = "en") -> str:
    """An article page with the given <head> content and an <article> around body."""
    return f'<html lang="{lang}"><head>{head}</head><body><article>{body}</article></body></html>'


def ld(**fields: object) -> str:
    """A JSON-LD NewsArticle script."""
    return f'<script type="application/ld+json">{json.dumps({"@type": "NewsArticle", **fields})}</script>'


def meta(html: str, url: str = "https://ledgerdaily.example.com/2026/03/bridge.html"):
    """The page's metadata, read at NOW."""
    return read_metadata(fromstring(html), url, now=NOW)


# --- titles ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "declared", "url", "expected"),
    [
        ("Bridge reopens | Ledger Daily", "Ledger Daily", "https://ledgerdaily.example.com/a", "Bridge reopens"),
        ("Bridge reopens - LEDGER", None, "https://www.ledger.com/a", "Bridge reopens"),
        ("Bridge reopens – DW – 13.06.2023", "DW", "https://www.dw.com/en/a", "Bridge reopens"),
        ("Ledger Daily: Bridge reopens", "Ledger Daily", "https://ledgerdaily.example.com/a", "Bridge reopens"),
        ("Vapur seferleri başladı - Kıyı Gazetesi", None, "https://www.kiyigazetesi.com.tr", "Vapur seferleri başladı"),
        ("KIYI GAZETESİ | Vapur seferleri başladı", None, "https://kiyigazetesi.com.tr/a", "Vapur seferleri başladı"),
        # A separator or colon inside the headline itself stays.
        ("Strike: day two - talks resume | Ledger Daily", "Ledger Daily", "https://x.example/a",
         "Strike: day two - talks resume"),
        ("Ledger Daily", "Ledger Daily", "https://x.example/a", "Ledger Daily"),
    ],
)
def test_site_name_and_decorations_are_stripped(raw: str, declared: str | None, url: str, expected: str) -> None:
    assert strip_decorations(raw, site_names(url, [declared])) == expected


def test_page_title_strips_og_site_name_and_keeps_the_raw_title() -> None:
    html = page('<title>Harbour bridge reopens after storm repairs | Ledger Daily</title>'
                '<meta property="og:site_name" content="Ledger Daily">')
    found = meta(html)
    assert found.title == "Harbour bridge reopens after storm repairs"
    assert found.raw_title == "Harbour bridge reopens after storm repairs | Ledger Daily"


def test_publisher_name_from_json_ld_is_stripped() -> None:
    publisher = {"@type": "Organization", "name": "The Coastal Ledger"}
    html = page("<title>Ferry timetable changes on Monday - The Coastal Ledger</title>"
                + ld(publisher=publisher))
    assert meta(html, "https://coast.example.org/f.html").title == "Ferry timetable changes on Monday"


def test_displayed_headline_beats_a_different_social_title() -> None:
    html = page('<meta property="og:title" content="You will not believe what happened to the bridge">'
                "<title>You will not believe what happened to the bridge | Ledger Daily</title>",
                "<h1>Harbour bridge reopens after six weeks of storm repairs</h1>" + BODY_EN)
    assert meta(html).title == "Harbour bridge reopens after six weeks of storm repairs"


def test_a_logo_or_section_h1_is_not_a_headline() -> None:
    head = '<meta property="og:title" content="Vapur seferleri fırtınanın ardından yeniden başladı">' \
           '<meta property="og:site_name" content="Kıyı Gazetesi">'
    logo = page(head, BODY_TR, lang="tr").replace("<article>", "<header><h1>Kıyı Gazetesi</h1></header><article>")
    section = page(head, "<h1>Gündem</h1>" + BODY_TR, lang="tr")
    for html in (logo, section):
        assert meta(html, KIYI).title == "Vapur seferleri fırtınanın ardından yeniden başladı"


def test_suffix_learned_from_a_sources_own_titles() -> None:
    titles = ["Bridge reopens :: Harbour desk", "Ferry strike ends :: Harbour desk", "Rain warning :: Harbour desk",
              "Market opens late"]
    affixes = learned_affixes(titles)
    assert affixes == ("", "Harbour desk")
    assert strip_learned("New pier opens :: Harbour desk", affixes) == "New pier opens"
    assert learned_affixes(["Bridge reopens - Town", "Ferry - strike ends"]) == ("", "")



def test_the_processing_step_strips_a_suffix_its_sources_pages_share() -> None:
    """page_extraction.extract_pages learns the suffix from one source's pages in a chunk, not across sources."""
    from newsdedup.page_extraction import extract_pages

    def raw(i: int, source: int, title: str) -> dict:
        html = page(f"<title>{title}</title>", f"<p>Story {i}. " + BODY_EN[3:])
        return {"raw_page_id": i, "source_id": source, "url": f"https://ledger.example/{i}",
                "final_url": f"https://ledger.example/{i}", "html": html, "feed_title": None,
                "feed_published": None, "source_language": "en"}

    pages = [raw(0, 1, "Bridge reopens :: Harbour desk"), raw(1, 1, "Ferry strike ends :: Harbour desk"),
             raw(2, 2, "Rain warning :: Harbour desk")]
    titles = [result.article.title for result in extract_pages(pages)]
    assert titles == ["Bridge reopens", "Ferry strike ends", "Rain warning :: Harbour desk"]


# --- dates -------------------------------------------------------------------------------------------------


def test_timestamp_beats_a_date_only_print_edition_tag() -> None:
    html = page('<meta name="date" content="2026-03-13">' + ld(datePublished="2026-03-12T21:45:00+01:00"))
    assert meta(html).published_at == datetime(2026, 3, 12, 20, 45, tzinfo=UTC)


def test_date_only_tag_is_used_when_nothing_better() -> None:
    assert meta(page('<meta name="date" content="2026-03-13">')).published_at == datetime(2026, 3, 13, tzinfo=UTC)


def test_modified_time_is_kept() -> None:
    html = page('<meta property="article:published_time" content="2026-03-12T08:00:00Z">'
                '<meta property="article:modified_time" content="2026-03-12T10:30:00Z">')
    found = meta(html)
    assert (found.published_at, found.modified_at) == (datetime(2026, 3, 12, 8, tzinfo=UTC),
                                                      datetime(2026, 3, 12, 10, 30, tzinfo=UTC))
    assert found.date_issue is None
    from_ld = meta(page(ld(datePublished="2026-03-12T08:00:00Z", dateModified="2026-03-14T09:00:00Z")))
    assert from_ld.modified_at == datetime(2026, 3, 14, 9, tzinfo=UTC)


def test_future_date_is_skipped_and_flagged() -> None:
    html = page('<meta property="article:published_time" content="2031-01-01T00:00:00Z">'
                + ld(datePublished="2026-03-11T07:00:00Z"))
    found = meta(html)
    assert found.published_at == datetime(2026, 3, 11, 7, tzinfo=UTC)
    assert found.date_issue == "future"
    # Within the clock-skew tolerance a time ahead is accepted.
    soon = meta(page('<meta property="article:published_time" content="2026-03-20T12:30:00Z">'))
    assert soon.published_at == datetime(2026, 3, 20, 12, 30, tzinfo=UTC) and soon.date_issue is None


def test_placeholder_before_1990_is_skipped_and_flagged() -> None:
    placeholder = "0001-01-01T00:00:00Z"
    found = meta(page(ld(datePublished=placeholder, dateModified=placeholder), BODY_TR, lang="tr"))
    assert found.published_at is None and found.modified_at is None
    assert found.date_issue == "before_1990"


# --- authors -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "url", "declared", "expected"),
    [
        ("By Jane Doe and John Roe, Staff Writer", "https://ledger.example.com/a", None, ["Jane Doe", "John Roe"]),
        ("Sarah E Needleman", "https://ledger.example.com/a", None, ["Sarah E Needleman"]),
        ("Deutsche Welle", "https://www.dw.com/en/a", None, []),
        ("Lesotho Times", "https://www.lestimes.example/a", "Lesotho Times", []),
        ("Orf At", "https://orf.at/stories/1", None, []),
        ("Mbl Is", "https://www.mbl.is/frettir/1", None, []),
        ("Dana Whitlock Ledger Daily", "https://ledgerdaily.example.com/a", "Ledger Daily", ["Dana Whitlock"]),
        ("Jane Doe; AP Sports Writer", "https://ledger.example.com/a", None, ["Jane Doe"]),
        ("Von Anna Berg und Max Roth, Redaktion", "https://ledger.example.de/a", None, ["Anna Berg", "Max Roth"]),
        ("Por María López y Juan Pérez", "https://ledger.example.es/a", None, ["María López", "Juan Pérez"]),
        ("Yazan: Ayşe Yılmaz ve Mehmet Demir - Haber Merkezi", KIYI, None,
         ["Ayşe Yılmaz", "Mehmet Demir"]),
        ("Mehmet Demir mehmet@kiyigazetesi.com.tr 12.03.2026 14:05", KIYI, None,
         ["Mehmet Demir"]),
        ("12345", "https://ledger.example.com/a", None, []),
        ("https://ledger.example.com/authors/jane", "https://ledger.example.com/a", None, []),
    ],
)
def test_bylines_name_people_only(raw: str, url: str, declared: str | None, expected: list[str]) -> None:
    assert clean_authors(raw, site_names(url, [declared])) == expected


def test_outlet_as_json_ld_author_is_dropped_and_people_are_split() -> None:
    outlet = page('<meta property="og:site_name" content="Kıyı Gazetesi">'
                  + ld(author={"@type": "Organization", "name": "Kıyı Gazetesi"}), BODY_TR, lang="tr")
    assert meta(outlet, KIYI).author is None
    people = page(ld(author=[{"@type": "Person", "name": "Dana Whitlock"}, {"@type": "Person", "name": "Lee Park"}]))
    assert meta(people).author == "Dana Whitlock; Lee Park"


# --- through extraction and storage --------------------------------------------------------------------------


def test_extracted_article_carries_the_new_fields() -> None:
    html = page('<title>Harbour bridge reopens after storm repairs | Ledger Daily</title>'
                '<meta property="og:site_name" content="Ledger Daily">'
                '<meta property="article:published_time" content="2026-03-12T08:00:00Z">'
                '<meta property="article:modified_time" content="2026-03-12T10:30:00Z">'
                '<meta name="author" content="By Dana Whitlock, Staff Writer">')
    article = extract(html, "https://ledgerdaily.example.com/2026/03/bridge.html")
    assert article.title == "Harbour bridge reopens after storm repairs"
    assert article.raw_title.endswith("| Ledger Daily")
    assert article.author == "Dana Whitlock"
    assert article.modified_at == datetime(2026, 3, 12, 10, 30, tzinfo=UTC)
    assert article.to_dict()["modified_at"] == "2026-03-12T10:30:00+00:00"


@pytest.mark.integration
def test_new_columns_are_stored_and_queryable(db_url: str) -> None:
    row = store.ArticleRow(
        source_id=None, url="https://x.example/a", canonical_url="https://x.example/a", title="Bridge reopens",
        text="The bridge reopened.", author="Dana Whitlock; Lee Park", published_at=None, language="en",
        fetched_at=NOW, raw_title="Bridge reopens | X", modified_at=datetime(2026, 3, 12, tzinfo=UTC),
        date_issue="future",
    )
    with store.connect(db_url) as conn:
        store.upsert_articles(conn, [row])
        with conn.cursor() as cur:
            cur.execute("SELECT raw_title, modified_at, date_issue, string_to_array(author, '; ') FROM articles "
                        "WHERE date_issue IS NOT NULL")
            assert cur.fetchall() == [("Bridge reopens | X", datetime(2026, 3, 12, tzinfo=UTC), "future",
                                       ["Dana Whitlock", "Lee Park"])]


# --- the shared benchmark pages ------------------------------------------------------------------------------


def test_benchmark_pages_keep_few_site_decorations_and_outlet_authors() -> None:
    """On the real pages (read in place): titles rarely end in the site's name, authors are rarely the outlet."""
    corpus = shared_path("corpora", "article-extraction-benchmark")
    truth = json.loads((corpus / "ground-truth.json").read_text(encoding="utf-8"))
    pages = sorted((corpus / "html").glob("*.html.gz"))
    decorated = outlet = 0
    for path in pages:
        url = truth[path.name.split(".")[0]]["url"]
        tree = fromstring(gzip.decompress(path.read_bytes()).decode("utf-8", "replace").encode())
        found = read_metadata(tree, url)
        names = site_names(url, [])
        decorated += found.title != strip_decorations(found.title, names)
        outlet += bool(found.author) and any(clean_authors(a, names) == [] for a in found.author.split("; "))
    assert decorated <= 0.02 * len(pages)
    assert outlet == 0
