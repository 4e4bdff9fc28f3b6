"""Extract an article record from an HTML page: trafilatura first, BeautifulSoup where it falls short."""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from urllib.parse import urljoin, urlsplit

import py3langid
import trafilatura
from bs4 import BeautifulSoup
from lxml.html import HtmlElement
from trafilatura.utils import load_html

from newsdedup.urls import canonicalize

log = logging.getLogger(__name__)

# Meta tags that carry the publication time, in order of trust.
_DATE_META = (
    ("property", "article:published_time"),
    ("name", "article:published_time"),
    ("itemprop", "datepublished"),
    ("name", "pubdate"),
    ("name", "date"),
    ("property", "og:updated_time"),
)
_AUTHOR_META = (("name", "author"), ("property", "article:author"), ("name", "byl"))


class ExtractionError(ValueError):
    """The page holds no article text that could be extracted."""


@dataclass
class ExtractedArticle:
    """One article as extracted from a page, before cleaning and storage."""

    url: str
    canonical_url: str
    title: str
    text: str
    author: str | None
    published_at: datetime | None
    language: str | None
    method: str

    def to_dict(self) -> dict:
        """Return a JSON-ready dict."""
        data = asdict(self)
        data["published_at"] = self.published_at.isoformat() if self.published_at else None
        return data


def extract(html: str, url: str, *, language_hint: str | None = None) -> ExtractedArticle:
    """Extract title, text, author, date, language and canonical URL from one page."""
    if not html or not html.strip():
        raise ExtractionError("empty page")
    # One lxml parse serves the metadata look-ups and trafilatura (BeautifulSoup's parse costs more
    # than the extraction itself); the look-ups run first because trafilatura prunes the tree.
    tree = load_html(html)
    if tree is None:
        raise ExtractionError("the page could not be parsed as HTML")
    page = _PageMeta(tree)
    canonical, author, published = _canonical(page, url), page.author(), page.published()
    declared_language, head_title = page.language(), page.title()
    doc = trafilatura.bare_extraction(tree, url=url, with_metadata=True, include_comments=False, include_tables=False)
    traf = doc.as_dict() if doc is not None else {}
    text = (traf.get("text") or "").strip()
    title = (traf.get("title") or "").strip()
    method = "trafilatura"
    if not text:
        text = _soup_text(html)
        method = "beautifulsoup"
    if not title:
        title = head_title
        method = "trafilatura+lxml-title" if method == "trafilatura" else method
    if not text:
        raise ExtractionError("no article text found")
    if not title:
        title = text.split("\n", 1)[0][:200]
    return ExtractedArticle(
        url=url,
        canonical_url=canonical,
        title=" ".join(title.split()),
        text=text,
        author=(traf.get("author") or "").strip() or author,
        published_at=published or (parse_datetime(traf["date"]) if traf.get("date") else None),
        language=_language(declared_language, text, language_hint),
        method=method,
    )


class _PageMeta:
    """Metadata look-ups on a parsed page: meta tags, links, JSON-LD, <time>."""

    def __init__(self, tree: HtmlElement) -> None:
        """Index the page's meta tags once."""
        self.tree = tree
        self.meta: dict[tuple[str, str], str] = {}
        for node in tree.iter("meta"):
            content = (node.get("content") or "").strip()
            if not content:
                continue
            for attr in ("name", "property", "itemprop", "http-equiv"):
                key = (node.get(attr) or "").strip().lower()
                if key:
                    self.meta.setdefault((attr, key), content)
        self._ld: list[dict] | None = None

    def first(self, pairs: tuple[tuple[str, str], ...]) -> str | None:
        """The first meta content found among (attribute, value) pairs."""
        return next((self.meta[p] for p in pairs if p in self.meta), None)

    def json_ld(self) -> list[dict]:
        """The page's JSON-LD objects, flattened; broken ones are ignored."""
        if self._ld is None:
            self._ld = []
            for raw in self.tree.xpath('//script[@type="application/ld+json"]/text()'):
                try:
                    data = json.loads(raw)
                except (json.JSONDecodeError, TypeError):
                    continue
                for item in data if isinstance(data, list) else [data]:
                    if isinstance(item, dict):
                        self._ld.extend(i for i in item.get("@graph", [item]) if isinstance(i, dict))
        return self._ld

    def canonical_links(self) -> list[str]:
        """Candidate canonical URLs: <link rel=canonical>, then og:url."""
        links = [h.strip() for h in self.tree.xpath('//link[contains(concat(" ", @rel, " "), " canonical ")]/@href')]
        og = self.meta.get(("property", "og:url"))
        return [h for h in [*links, og] if h]

    def title(self) -> str:
        """The best title from meta tags, <h1> or <title>."""
        found = self.first((("property", "og:title"), ("name", "twitter:title")))
        if found:
            return found
        for path in ("//h1", "//title"):
            nodes = self.tree.xpath(path)
            if nodes and nodes[0].text_content().strip():
                return " ".join(nodes[0].text_content().split())
        return ""

    def author(self) -> str | None:
        """The byline from meta tags or JSON-LD."""
        found = self.first(_AUTHOR_META)
        if found:
            return found
        for item in self.json_ld():
            author = item.get("author")
            if isinstance(author, list) and author:
                author = author[0]
            if isinstance(author, dict):
                author = author.get("name")
            if isinstance(author, str) and author.strip():
                return author.strip()
        return None

    def published(self) -> datetime | None:
        """The publication time, as precise as the page gives it, in UTC."""
        candidates = [self.meta[p] for p in _DATE_META if p in self.meta]
        candidates += [str(item["datePublished"]) for item in self.json_ld() if item.get("datePublished")]
        candidates += self.tree.xpath("//time/@datetime")[:1]
        for raw in candidates:
            parsed = parse_datetime(raw)
            if parsed:
                return parsed
        return None

    def language(self) -> str | None:
        """The declared language: <html lang>, Content-Language or og:locale."""
        declared = self.tree.get("lang") if self.tree.tag == "html" else None
        declared = declared or self.first((("http-equiv", "content-language"), ("property", "og:locale")))
        if declared:
            code = declared.strip().replace("_", "-").split("-")[0].lower()
            if len(code) == 2 and code.isalpha():
                return code
        return None


def _canonical(page: _PageMeta, url: str) -> str:
    """Return the page's canonical URL (link rel=canonical, then og:url, then the URL itself)."""
    for href in page.canonical_links():
        candidate = canonicalize(urljoin(url, href))
        # A canonical link to another host is ignored: a page must not claim another site's URL.
        if candidate and _host(candidate) == _host(url):
            return candidate
    return canonicalize(url) or url


def _host(url: str) -> str:
    """Return the host of a URL without a leading www."""
    host = (urlsplit(url).hostname or "").lower()
    return host.removeprefix("www.")


def _soup_text(html: str) -> str:
    """Paragraph text from <article> (or the whole body) with BeautifulSoup, where trafilatura finds none."""
    soup = BeautifulSoup(html, "lxml")
    for junk in soup(["script", "style", "nav", "header", "footer", "aside", "form", "noscript"]):
        junk.decompose()
    root = soup.find("article") or soup.find("main") or soup.body or soup
    blocks = [n.get_text(" ", strip=True) for n in root.find_all(["p", "h2", "h3", "li"])]
    return "\n".join(b for b in blocks if b)


def parse_datetime(raw: str) -> datetime | None:
    """Parse an ISO 8601 date or datetime; naive values are taken as UTC."""
    try:
        value = datetime.fromisoformat(raw.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _language(declared: str | None, text: str, hint: str | None) -> str | None:
    """Return an ISO 639-1 code: declared by the page, else detected from the text, else the source's hint."""
    if declared:
        return declared
    if len(text) >= 200:
        return py3langid.classify(text[:5000])[0]
    return hint
