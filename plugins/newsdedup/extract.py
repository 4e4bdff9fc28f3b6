"""Extract an article record from an HTML page: trafilatura first, BeautifulSoup where it falls short."""

from __future__ import annotations

import json
import logging
import re
import unicodedata
from collections.abc import Iterator
from copy import copy
from dataclasses import asdict, dataclass, field
from functools import cache

import numpy as np
import py3langid
import trafilatura
from bs4 import BeautifulSoup
from lxml.html import HtmlElement
from trafilatura.settings import Extractor
from trafilatura.utils import load_html

from newsdedup.article import ArticleFields
from newsdedup.metadata import PageMetadata, read_metadata, searched_date
from newsdedup.textsafe import plain_line

log = logging.getLogger(__name__)

# Built once: trafilatura's option object costs as much to build per page as a small extraction step.
# The fast pass skips trafilatura's readability/justext comparison, which costs a third more time and
# loses on some pages (bench/extract_quality.py); the full pass runs only where the fast text is suspect.
_FAST = Extractor(output_format="python", fast=True, comments=False, tables=True, with_metadata=False)
_FULL = Extractor(output_format="python", fast=False, comments=False, tables=True, with_metadata=False)
# A fast text is suspect (and the full pass runs) when it holds under this share of the page's main text
# estimate or of its JSON-LD articleBody, or when lines of fewer than _SHORT_LINE_WORDS words (menus)
# carry more than _MENU_SHARE of it.
_TRUNCATED_SHARE = 0.5
_SHORT_LINE_WORDS = 6
_MENU_SHARE = 0.5
_BLOCK_PARAGRAPH_CHARS = 60  # shorter paragraphs (captions, bylines) do not count toward the main text
_LANGID_CHARS = 5000
_JUNK_CATEGORIES = frozenset({"So", "Co", "Cn", "Cs", "Cc"})
_OTHER, _JUNK, _UPPER, _LOWER = range(4)  # character classes counted by garbage_reason


# What a script-rendered page shows without JavaScript ("You need to enable JavaScript to run this app."):
# a text this short that says so is the notice, not an article.
_SCRIPT_NOTICE = re.compile(
    r"\b(enable|activate|turn on|aktivieren|etkinleştir\w*|activer|activa\w*)\b.{0,40}javascript"
    r"|javascript\b.{0,40}\b(required|disabled|is off|deaktiviert|aktivieren|gerekli|kapalı|etkinleştir\w*)",
    re.IGNORECASE | re.DOTALL,
)
_SCRIPT_NOTICE_CHARS = 300


class ExtractionError(ValueError):
    """The page holds no article text that could be extracted."""


@dataclass(kw_only=True)
class ExtractedArticle(ArticleFields):
    """One article as extracted from a page, before cleaning and storage."""

    method: str  # the path that found the text (trafilatura's passes or BeautifulSoup)

    def to_dict(self) -> dict:
        """Return a JSON-ready dict."""
        data = asdict(self)
        for key in ("published_at", "modified_at"):
            data[key] = data[key].isoformat() if data[key] else None
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
    meta: PageMetadata


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
    return ReadPage(html, url, tree, read_metadata(tree, url))


def extract_text(page: ReadPage, *, language_hint: str | None = None) -> ExtractedArticle:
    """The article of a read page: its text by trafilatura (BeautifulSoup when it finds none), then the rest."""
    text, method = _article_text(page)
    if not text:
        raise ExtractionError("no article text found")
    garbage = garbage_reason(text)
    if garbage:
        raise ExtractionError(f"the text is not an article: {garbage}")
    if len(text) < _SCRIPT_NOTICE_CHARS and _SCRIPT_NOTICE.search(text):
        raise ExtractionError(f"the page needs JavaScript, its text is a notice: {text[:120]!r}")
    meta = page.meta
    title = meta.title or text.split("\n", 1)[0][:200]
    return ExtractedArticle(
        url=page.url,
        canonical_url=meta.canonical_url,
        title=plain_line(title),
        text=text,
        author=plain_line(meta.author or "") or None,
        # htmldate's search runs after trafilatura's pass: it may prune the tree.
        published_at=meta.published_at or searched_date(page.tree, page.url),
        language=_language(meta.declared_language, text, language_hint),
        method=method,
        raw_title=meta.raw_title,
        modified_at=meta.modified_at,
        date_issue=meta.date_issue,
    )


def _article_text(page: ReadPage) -> tuple[str, str]:
    """The page's article text and the path that produced it.

    trafilatura's fast pass; its full pass where the fast text is suspect (empty, a menu, or much shorter
    than the page's main text), kept when it is better; BeautifulSoup where trafilatura finds nothing.
    """
    text, method = _trafilatura_text(page, _FAST), "trafilatura"
    expected = _expected_chars(page.tree)
    if _suspicion(text, expected):
        full = _trafilatura_text(page, _FULL)
        if _full_is_better(full, text, expected):
            text, method = full, "trafilatura-full"
    if not text:
        return _soup_text(page.html), "beautifulsoup"
    return text, method


def _trafilatura_text(page: ReadPage, base: Extractor) -> str:
    """trafilatura's text of the page with the given options ("" when it finds none)."""
    options = copy(base)
    options.url = options.source = page.url
    doc = trafilatura.bare_extraction(page.tree, url=page.url, options=options)  # works on a copy of the tree
    return ((doc.text if doc is not None else None) or "").strip()


def _suspicion(text: str, expected: int) -> str | None:
    """Why an extracted text looks like a failed extraction (None when it looks like a whole article)."""
    if not text:
        return "empty"
    lines = [line for line in text.splitlines() if line.strip()]
    menu = sum(len(line) for line in lines if len(line.split()) < _SHORT_LINE_WORDS)
    if menu > _MENU_SHARE * sum(map(len, lines)):
        return "menu"
    if len(text) < _TRUNCATED_SHARE * expected:
        return "truncated"
    return None


def _full_is_better(full: str, fast: str, expected: int) -> bool:
    """Whether the full pass's text replaces a suspect fast one: it is not suspect, or longer and no menu."""
    if not full:
        return False
    suspicion = _suspicion(full, expected)
    return suspicion is None or (suspicion != "menu" and len(full) > len(fast))


def _expected_chars(tree: HtmlElement) -> int:
    """A cheap estimate of the article's length: its JSON-LD articleBody, else the page's main paragraphs."""
    return max(_json_ld_body_chars(tree), _main_block_chars(tree))


def _main_block_chars(tree: HtmlElement) -> int:
    """Characters in the paragraphs of the element holding the most paragraph text (the main column)."""
    by_parent: dict[HtmlElement, int] = {}
    for paragraph in tree.iter("p"):
        chars = len(paragraph.text_content())  # unnormalised: half the cost, the same pages suspect on AEB
        parent = paragraph.getparent()
        if chars >= _BLOCK_PARAGRAPH_CHARS and parent is not None:
            by_parent[parent] = by_parent.get(parent, 0) + chars
    return max(by_parent.values(), default=0)


def _json_ld_body_chars(tree: HtmlElement) -> int:
    """Length of the longest JSON-LD articleBody of the page (0 when it has none)."""
    longest = 0
    for script in tree.iter("script"):  # half the cost of the XPath look-up
        raw = script.text or ""
        if script.get("type") != "application/ld+json" or '"articleBody"' not in raw:
            continue  # most pages: no JSON parse at all
        try:
            data = json.loads(raw)
        except (json.JSONDecodeError, TypeError):
            continue
        longest = max(longest, *map(len, _article_bodies(data)), 0)
    return longest


def _article_bodies(data: object) -> Iterator[str]:
    """Every articleBody string in a JSON-LD value, at any depth."""
    if isinstance(data, dict):
        body = data.get("articleBody")
        if isinstance(body, str):
            yield " ".join(body.split())
        for value in data.values():
            if isinstance(value, dict | list):
                yield from _article_bodies(value)
    elif isinstance(data, list):
        for item in data:
            yield from _article_bodies(item)


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


def _soup_text(html: str) -> str:
    """Paragraph text from <article> (or the whole body) with BeautifulSoup, where trafilatura finds none."""
    soup = BeautifulSoup(html, "lxml")
    for junk in soup(["script", "style", "nav", "header", "footer", "aside", "form", "noscript"]):
        junk.decompose()
    root = soup.find("article") or soup.find("main") or soup.body or soup
    blocks = [n.get_text(" ", strip=True) for n in root.find_all(["p", "h2", "h3", "li"])]
    return "\n".join(b for b in blocks if b)


def _language(declared: str | None, text: str, hint: str | None) -> str | None:
    """Return an ISO 639-1 code: declared by the page, else detected from the text, else the source's hint."""
    if declared:
        return declared
    if len(text) >= 200:
        return py3langid.classify(text[:_LANGID_CHARS])[0]
    return hint
