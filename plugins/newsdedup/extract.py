"""Extract an article record from an HTML page: trafilatura first, BeautifulSoup where it falls short."""

from __future__ import annotations

import json
import logging
import unicodedata
from collections.abc import Iterator
from copy import copy
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from functools import cache
from urllib.parse import urljoin, urlsplit

import numpy as np
import py3langid
import trafilatura
from bs4 import BeautifulSoup
from htmldate import find_date
from lxml.html import HtmlElement
from trafilatura.json_metadata import extract_json, extract_json_parse_error, normalize_json
from trafilatura.metadata import JSON_MINIFY, examine_meta, extract_metainfo, extract_title, normalize_authors
from trafilatura.settings import Document, Extractor, set_date_params
from trafilatura.utils import load_html
from trafilatura.xpaths import AUTHOR_XPATHS

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
# Built once: trafilatura's option object costs as much to build per page as a small extraction step.
# fast=True skips the readability/justext comparison: on the 181 real pages of the extraction benchmark
# it scored a token F1 of 0.956 against 0.954 with it, and takes about 20 % less time.
_OPTIONS = Extractor(output_format="python", fast=True, comments=False, tables=False, with_metadata=False)
_LANGID_CHARS = 5000
_JUNK_CATEGORIES = frozenset({"So", "Co", "Cn", "Cs", "Cc"})
_OTHER, _JUNK, _UPPER, _LOWER = range(4)  # character classes counted by garbage_reason


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
    return extract_text(read_page(html, url), language_hint=language_hint)


@dataclass
class ReadPage:
    """A page parsed once, with what its markup says about it: the first of extraction's two steps."""

    html: str
    url: str
    tree: HtmlElement = field(repr=False)
    meta: _PageMeta = field(repr=False)
    canonical_url: str
    published_at: datetime | None
    declared_language: str | None
    title: str  # by trafilatura's metadata rules, "" when they find none
    author: str | None


def read_page(html: str, url: str) -> ReadPage:
    """Parse a page and read its metadata (canonical URL, date, language, title, author)."""
    if not html or not html.strip():
        raise ExtractionError("empty page")
    # One lxml parse serves the metadata look-ups and trafilatura (BeautifulSoup's parse costs more
    # than the extraction itself); the read-only look-ups run first because trafilatura prunes a copy
    # of the tree and the date search of extract_text may prune the tree itself.
    tree = load_html(html)
    if tree is None:
        raise ExtractionError("the page could not be parsed as HTML")
    meta = _PageMeta(tree)
    # trafilatura's own metadata step (with_metadata=True) cost more than the text extraction: its
    # title and author rules are used here without the date search (htmldate, only as a fallback),
    # the site name, categories, tags and licence look-ups.
    title, author = _trafilatura_title_author(tree)
    return ReadPage(html, url, tree, meta, _canonical(meta, url), meta.published(), meta.language(), title, author)


def extract_text(page: ReadPage, *, language_hint: str | None = None) -> ExtractedArticle:
    """The article of a read page: its text by trafilatura (BeautifulSoup when it finds none), then the rest."""
    options = copy(_OPTIONS)
    options.url = options.source = page.url
    doc = trafilatura.bare_extraction(page.tree, url=page.url, options=options)
    text = ((doc.text if doc is not None else None) or "").strip()
    title = page.title
    method = "trafilatura"
    if not text:
        text = _soup_text(page.html)
        method = "beautifulsoup"
    if not title:
        title = page.meta.title()
        method = "trafilatura+lxml-title" if method == "trafilatura" else method
    if not text:
        raise ExtractionError("no article text found")
    garbage = garbage_reason(text)
    if garbage:
        raise ExtractionError(f"the text is not an article: {garbage}")
    if not title:
        title = text.split("\n", 1)[0][:200]
    return ExtractedArticle(
        url=page.url,
        canonical_url=page.canonical_url,
        title=" ".join(title.split()),
        text=text,
        author=page.author or _normalized_author(page.meta.author()),
        published_at=page.published_at or _searched_date(page.tree, page.url),
        language=_language(page.declared_language, text, language_hint),
        method=method,
    )


def _trafilatura_title_author(tree: HtmlElement) -> tuple[str, str | None]:
    """Title and author by trafilatura's meta-tag, JSON-LD and markup rules (read-only on the tree)."""
    try:
        meta = examine_meta(tree)
        if meta.author and " " not in meta.author:
            meta.author = None  # a single token is a handle or a site name, as trafilatura judges it
        meta = _meta_json(tree, meta)
        title = meta.title or extract_title(tree) or ""
        author = meta.author
        if not author:
            # Only the specific byline rule: the generic ones scan every element and cost 5 ms a page.
            found = extract_metainfo(tree, AUTHOR_XPATHS[:1], len_limit=120)
            author = normalize_authors(None, found) if found else None
    except Exception:  # noqa: BLE001 - metadata is best effort; the page's own look-ups remain
        log.debug("trafilatura metadata failed", exc_info=True)
        return "", None
    return (title or "").strip(), (author or "").strip() or None


def _meta_json(tree: HtmlElement, meta: Document) -> Document:
    """trafilatura's extract_meta_json without its minifying regex, which costs more than the rest of it.

    Whitespace outside JSON strings does not change what json.loads returns, so the script text is
    normalised as trafilatura normalises the minified one and parsed; broken JSON takes trafilatura's path.
    """
    for elem in tree.xpath('.//script[@type="application/ld+json" or @type="application/settings+json"]'):
        if not elem.text:
            continue
        try:
            meta = extract_json(json.loads(normalize_json(elem.text), strict=False), meta)
        except json.JSONDecodeError:
            meta = extract_json_parse_error(normalize_json(JSON_MINIFY.sub(r"\1", elem.text)), meta)
    return meta


def _normalized_author(raw: str | None) -> str | None:
    """A byline from meta tags or JSON-LD in trafilatura's form ("By A and B, Agency" -> "A; B; Agency")."""
    if not raw or raw.startswith(("http://", "https://")):
        return None
    try:
        return normalize_authors(None, raw) or raw
    except Exception:  # noqa: BLE001 - keep the raw byline
        return raw


def _searched_date(tree: HtmlElement, url: str) -> datetime | None:
    """Publication date found by htmldate's search of the page, when meta tags have none."""
    try:
        found = find_date(tree, url=url, **set_date_params(True))  # max_date: today, per call
    except Exception:  # noqa: BLE001 - a date is best effort
        log.debug("htmldate failed", exc_info=True)
        return None
    return parse_datetime(found) if found else None


def garbage_reason(text: str, sample: int = 4000) -> str | None:
    """Why a text looks like binary data decoded as text (None when it reads like language).

    Binary bytes decoded as UTF-8 are mostly U+FFFD; decoded with a single-byte charset they give as
    many capitals as small letters in space-free runs. Real text has few symbols and few capitals.
    """
    head = text[:sample]
    if len(head) < 200:
        return None
    symbols, upper, lower = _class_counts(head)
    if symbols > 0.15 * len(head):
        return f"{symbols * 100 // len(head)} % replacement, control or symbol characters"
    spaces = head.count(" ") + head.count("\n")
    if upper + lower >= 100 and 0.3 < upper / (upper + lower) < 0.7 and spaces < 0.05 * len(head):
        return f"{upper * 100 // (upper + lower)} % capitals in {len(head) // max(spaces, 1)}-character runs"
    return None


def _class_counts(text: str) -> tuple[int, int, int]:
    """How many characters of text are _JUNK, _UPPER and _LOWER."""
    try:
        # Latin-1 text (English among it) is classed by bytes.translate: in the pipeline, between
        # extractions that evict numpy's code and table from the caches, a quarter of the numpy path's time.
        classes = text.encode("latin-1").translate(_latin1_classes())
    except UnicodeEncodeError:
        return _unicode_class_counts(text)
    return classes.count(_JUNK), classes.count(_UPPER), classes.count(_LOWER)


def _unicode_class_counts(text: str) -> tuple[int, int, int]:
    """_class_counts for any text, through a numpy table of the BMP."""
    codes = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    astral = codes[codes > 0xFFFF].tolist() if len(codes) and codes.max() > 0xFFFF else []
    classes = _bmp_classes().take(codes[codes <= 0xFFFF] if astral else codes)
    counts = {wanted: int(np.count_nonzero(classes == wanted)) for wanted in (_JUNK, _UPPER, _LOWER)}
    for code in astral:
        kind = _char_class(chr(code))
        if kind in counts:
            counts[kind] += 1
    return counts[_JUNK], counts[_UPPER], counts[_LOWER]


@cache
def _latin1_classes() -> bytes:
    """The class of every code point below U+0100, as a bytes.translate table."""
    return bytes(map(_char_class, map(chr, range(0x100))))


@cache
def _bmp_classes() -> np.ndarray:
    """The class of every code point below U+10000, built once (a numpy look-up per character is several
    times cheaper than a category look-up per character in Python)."""
    return np.fromiter(map(_char_class, map(chr, range(0x10000))), dtype=np.uint8, count=0x10000)


def _char_class(char: str) -> int:
    """_JUNK for replacement, control, private-use, unassigned and symbol characters; _UPPER, _LOWER, _OTHER."""
    category = unicodedata.category(char)
    if category in _JUNK_CATEGORIES:
        return _JUNK
    return _UPPER if category == "Lu" else _LOWER if category == "Ll" else _OTHER


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
        links = [
            (node.get("href") or "").strip()
            for node in self.tree.iter("link")
            if "canonical" in (node.get("rel") or "").lower().split()
        ]
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
        def candidates() -> Iterator[str]:
            """In order of trust, each looked up only when the ones before gave no date."""
            yield from (self.meta[p] for p in _DATE_META if p in self.meta)
            yield from (str(item["datePublished"]) for item in self.json_ld() if item.get("datePublished"))
            yield from self.tree.xpath("//time/@datetime")[:1]

        return next((parsed for raw in candidates() if (parsed := parse_datetime(raw))), None)

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
        if href == url:  # the page names itself (most do): nothing to resolve or compare
            break
        candidate = canonicalize(urljoin(url, href))
        # A canonical link to another host is ignored: a page must not claim another site's URL.
        if candidate and _host(candidate) == _host(url):
            return candidate
    return canonicalize(url) or url


def _host(url: str) -> str:
    """Return host and port of a URL, without a leading www: two ports of one host are two sites."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower().removeprefix("www.")
    try:
        port = parts.port or {"http": 80, "https": 443}.get(parts.scheme, 0)
    except ValueError:
        port = 0
    return f"{host}:{port}"


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
        return py3langid.classify(text[:_LANGID_CHARS])[0]
    return hint
