"""Reading one fetched feed or sitemap document into the article URLs it lists, refusing unsafe XML.

Feeds: RSS 0.9x/1.0/2.0 and Atom (feedparser), JSON Feed 1.x (json). Sitemaps: urlset, sitemap
index and Google News sitemaps, parsed with defusedxml; their elements are matched by local name,
whatever the namespace. Every XML document is first read by `newsdedup.feedscan`: one nested too
deep is refused before the real parser sees it (`TooDeep`), and of a file listing more entries than
the cap (`NEWSDEDUP_MAX_FEED_ENTRIES`, `NEWSDEDUP_MAX_SITEMAP_URLS`) the newest are read. A document
that declares entities (entity expansion, external entities) is refused with a clear error
instead of being parsed.
"""

from __future__ import annotations

import calendar
import io
import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import feedparser
from defusedxml import ElementTree
from defusedxml.common import DefusedXmlException

from newsdedup.feedscan import (
    DEFAULT_LIMITS,
    FEED_ENTRIES,
    SITEMAP_ENTRIES,
    Bounded,
    ParseLimits,
    TooDeep,
    Uncuttable,
    bound,
)
from newsdedup.textsafe import one_line
from newsdedup.timeparse import parse_datetime
from newsdedup.urls import absolute_url

_ENTITY_DECL = re.compile(r"<!ENTITY", re.IGNORECASE)
_FIRST_ELEMENT = re.compile(r"<[A-Za-z_]")
_SITEMAP_ROOT = re.compile(r"<(?:[\w.-]+:)?(?:urlset|sitemapindex)\b")  # with a namespace prefix or not
# Dates further ahead than this are a broken or hostile feed, not news: they would make an
# article look "changed since we fetched it" on every run.
_FUTURE_SLACK = timedelta(days=1)
_EARLIEST = datetime(1990, 1, 1, tzinfo=UTC)
# sy:updatePeriod (RSS 1.0 syndication module) in seconds; sy:updateFrequency divides it.
_SY_PERIODS = {"hourly": 3600, "daily": 86400, "weekly": 7 * 86400, "monthly": 30 * 86400, "yearly": 365 * 86400}
_MAX_DECLARED = 365 * 86400


@dataclass(frozen=True)
class FeedEntry:
    """An article URL announced by a source, with what the source says about it."""

    url: str
    title: str | None = None
    published_at: datetime | None = None
    updated_at: datetime | None = None


class FeedError(ValueError):
    """A feed or sitemap that was fetched but cannot (or must not) be parsed."""

    def __init__(self, error_class: str, message: str) -> None:
        message = one_line(message)  # it quotes the document (a root tag, a parser error): logged and shown
        super().__init__(message)
        self.error_class = error_class
        self.message = message


@dataclass
class Listing:
    """The entries of one feed or sitemap file that are used, and how many it listed beyond the cap."""

    entries: list[FeedEntry]
    listed: int = 0  # entries the file lists
    dropped: int = 0  # of those, left out: the oldest
    what: str = "feed"
    cap_setting: str = "NEWSDEDUP_MAX_FEED_ENTRIES"
    declared_seconds: int | None = None  # how often the feed says it changes: <ttl>, sy:updatePeriod



def parse_listing(kind: str, text: str, base_url: str, limits: ParseLimits = DEFAULT_LIMITS) -> Listing:
    """Entries of an RSS, Atom or JSON feed; an HTML page or broken feed raises FeedError."""
    if kind == "html":
        raise FeedError("NotAFeed", "expected an RSS/Atom/JSON feed or a sitemap, got an HTML page")
    if kind == "jsonfeed":
        return parse_json_feed(text, base_url, limits.max_feed_entries)
    try:
        return parse_feed(text, base_url, limits)
    except FeedError:
        raise
    except (ValueError, UnicodeError, AttributeError) as exc:
        # feedparser raises on hostile bodies (out-of-range or surrogate character references,
        # an empty document): a broken feed, not a crash of the run.
        raise FeedError("FeedParseError", f"the feed could not be parsed: {type(exc).__name__}: {exc}") from exc



def detect_kind(text: str) -> str:
    """Tell a sitemap, Atom, RSS or JSON feed (or an HTML page) apart by its start."""
    head = text[:4096].lstrip("\ufeff \t\r\n")
    if head.startswith(("{", "[")):
        return "jsonfeed"
    lower = head.lower()
    if _SITEMAP_ROOT.search(lower):
        return "sitemap"
    if "<feed" in lower:
        return "atom"
    if "<rss" in lower or "<rdf:rdf" in lower or "<channel" in lower:
        return "rss"
    if lower.startswith("<!doctype html") or "<html" in lower:
        return "html"
    return "rss"  # let the feed parser decide, and say why it could not


def check_xml_safe(text: str) -> None:
    """Refuse XML that declares entities (billion laughs, external entities); raise FeedError."""
    try:
        ElementTree.fromstring(text, forbid_dtd=False, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        raise FeedError(
            type(exc).__name__,
            f"the document declares XML entities ({exc}); refused: entity expansion and external "
            "entities are not parsed",
        ) from None
    except ElementTree.ParseError:
        # Not well-formed: feedparser's lenient parser may still read it, and that parser expands
        # the entities it finds in the prolog, so look there ourselves.
        _refuse_prolog_entities(text)


def _refuse_prolog_entities(text: str) -> None:
    """Refuse a document whose prolog (where a DTD lives) declares entities; raise FeedError."""
    match = _FIRST_ELEMENT.search(text)
    if _ENTITY_DECL.search(text[: match.start()] if match else text):
        raise FeedError(
            "EntitiesForbidden",
            "the document declares XML entities; refused: entity expansion is not parsed",
        ) from None


def bounded_xml(text: str, entry_names: frozenset[str], cap: int, max_depth: int) -> tuple[bytes, Bounded]:
    """The document as UTF-8, cut to its `cap` newest entries; FeedError when nested too deep or unsafe.

    Checked before any tree of the whole document is built: nesting (cheap streaming pass), then
    entity declarations (on the whole document when it is used as it is, else on its prolog: the
    cut document is re-serialised without its DTD).
    """
    data = text.encode("utf-8")
    try:
        scan = bound(data, entry_names, cap, max_depth)
    except TooDeep as exc:
        raise FeedError("TooDeep", f"{exc} (NEWSDEDUP_MAX_XML_DEPTH); refused before parsing") from None
    except Uncuttable as exc:
        raise FeedError("TooManyEntries", f"{exc}; refused: only a well-formed document is cut") from None
    if scan.data is None:
        check_xml_safe(text)
        return data, scan
    _refuse_prolog_entities(text)
    return scan.data, scan


def parse_feed(text: str, base_url: str, limits: ParseLimits = DEFAULT_LIMITS) -> Listing:
    """Return the entries of an RSS or Atom feed (the newest within the cap), absolute and canonical, each once."""
    data, scan = bounded_xml(text, FEED_ENTRIES, limits.max_feed_entries, limits.max_depth)
    # A file object, never a str or bytes: feedparser opens those as a URL or a local file name.
    parsed = feedparser.parse(
        io.BytesIO(data),
        response_headers={"content-location": base_url, "content-type": "application/xml; charset=utf-8"},
        sanitize_html=False,
        resolve_relative_uris=False,
    )
    if not parsed.entries and not parsed.version:
        reason = parsed.get("bozo_exception") or "no RSS or Atom root element"
        raise FeedError("FeedParseError", f"not an RSS or Atom feed: {reason}")
    entries: dict[str, FeedEntry] = {}
    for item in parsed.entries:
        link = item.get("link") or next(
            (lnk.get("href") for lnk in item.get("links", []) if lnk.get("href")), None
        )
        # dict.get skips feedparser's deprecated updated -> published key aliasing.
        updated = _feed_time(dict.get(item, "updated_parsed"))
        published = _feed_time(dict.get(item, "published_parsed")) or updated
        _add_entry(entries, link, base_url, item.get("title"), published, updated)
    listing = Listing(list(entries.values()), scan.entries, scan.entries - scan.kept)
    listing.declared_seconds = declared_interval(parsed.feed)
    return listing


def declared_interval(channel: Any) -> int | None:
    """Seconds between updates a feed declares: RSS `<ttl>` (minutes) or sy:updatePeriod / sy:updateFrequency.

    The longer of the two when both are given; None when neither is a usable positive number.
    """
    ttl = _positive_int(channel.get("ttl"))
    period = _SY_PERIODS.get(str(channel.get("sy_updateperiod", "")).strip().lower())
    frequency = _positive_int(channel.get("sy_updatefrequency", "1"))
    declared = [s for s in (ttl and ttl * 60, period and frequency and period // frequency) if s]
    return min(max(declared), _MAX_DECLARED) if declared else None


def _positive_int(value: Any) -> int | None:
    """A whole number above zero written as text, else None."""
    text = str(value).strip() if value is not None else ""
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 9 and int(text) > 0 else None


def parse_json_feed(text: str, base_url: str, cap: int = ParseLimits.max_feed_entries) -> Listing:
    """Return the items of a JSON Feed (https://jsonfeed.org/version/1.1), the newest `cap`, each URL once."""
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise FeedError("FeedParseError", f"not valid JSON: {str(exc)[:200]}") from None
    version = data.get("version") if isinstance(data, dict) else None
    if not isinstance(version, str) or not version.startswith("https://jsonfeed.org/version/"):
        raise FeedError("FeedParseError", "not a JSON Feed: no 'version' of https://jsonfeed.org/version/1.x")
    items = data.get("items")
    if not isinstance(items, list):
        raise FeedError("FeedParseError", "JSON Feed without an 'items' list")
    entries: dict[str, FeedEntry] = {}
    items = [item for item in items if isinstance(item, dict)]
    dropped = max(len(items) - cap, 0)
    if dropped:
        items = _newest(items, cap)
    for item in items:
        link = item.get("url") or item.get("external_url")
        published = _json_time(item.get("date_published"))
        updated = _json_time(item.get("date_modified"))
        _add_entry(entries, link, base_url, item.get("title"), published or updated, updated)
    return Listing(list(entries.values()), len(items) + dropped, dropped)


def _newest(items: list[dict], cap: int) -> list[dict]:
    """The `cap` newest JSON Feed items, in feed order; undated ones rank last, earlier before later."""
    def key(index: int) -> tuple[float, int]:
        item = items[index]
        when = _json_time(item.get("date_published")) or _json_time(item.get("date_modified"))
        return (when.timestamp() if when else float("-inf"), -index)

    chosen = sorted(range(len(items)), key=key, reverse=True)[:cap]
    return [items[i] for i in sorted(chosen)]


def _add_entry(
    entries: dict[str, FeedEntry],
    link: Any,
    base_url: str,
    title: Any,
    published: datetime | None,
    updated: datetime | None,
) -> None:
    """Add an entry under its absolute canonical URL unless the link is unusable or already listed."""
    if not isinstance(link, str) or not link.strip():
        return
    url = absolute_url(base_url, link.strip())
    if not url or url in entries:
        return
    clean_title = one_line(" ".join(title.split()), 1000) if isinstance(title, str) else ""
    entries[url] = FeedEntry(url, clean_title or None, published, updated)


def _plausible(value: datetime | None) -> datetime | None:
    """Drop dates before 1990 or more than a day in the future."""
    if value is None or value < _EARLIEST or value > datetime.now(UTC) + _FUTURE_SLACK:
        return None
    return value


def _feed_time(stamp: time.struct_time | None) -> datetime | None:
    """Convert feedparser's UTC struct_time to an aware datetime; invalid dates become None."""
    if not stamp:
        return None
    try:
        return _plausible(datetime.fromtimestamp(calendar.timegm(stamp), UTC))
    except (OverflowError, ValueError, OSError, TypeError):
        return None


def _json_time(value: Any) -> datetime | None:
    """Parse an RFC 3339 date of a JSON Feed; anything else becomes None."""
    return _plausible(parse_datetime(value)) if isinstance(value, str) and value.strip() else None



def parse_sitemap(
    text: str, base_url: str, limits: ParseLimits = DEFAULT_LIMITS
) -> tuple[Listing, list[str] | None]:
    """A sitemap's entries (the newest within the cap) and, of a sitemap index, the absolute URLs it lists.

    FeedError for anything but a sitemap or sitemap index, or one that is unsafe.
    """
    data, scan = bounded_xml(text, SITEMAP_ENTRIES, limits.max_sitemap_urls, limits.max_depth)
    try:
        root = ElementTree.fromstring(data, forbid_dtd=False, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        raise FeedError(
            type(exc).__name__,
            f"the sitemap declares XML entities ({exc}); refused: entity expansion and external "
            "entities are not parsed",
        ) from None
    except ElementTree.ParseError as exc:
        raise FeedError("SitemapParseError", f"the sitemap is not well-formed XML: {exc}") from None
    # Elements are matched by local name: sitemaps without xmlns, or with the https:// variant, are common.
    if _local(root.tag) not in ("urlset", "sitemapindex"):
        raise FeedError("SitemapParseError", f"not a sitemap: root element is <{root.tag}>")
    entries: dict[str, FeedEntry] = {}
    for node in _children(root, "url"):
        published = _text(node, "news", "publication_date")
        lastmod = _text(node, "lastmod")
        updated = _plausible(parse_datetime(lastmod)) if lastmod else None
        _add_entry(
            entries,
            _text(node, "loc"),
            base_url,
            _text(node, "news", "title"),
            (_plausible(parse_datetime(published)) if published else None) or updated,
            updated,
        )
    dropped = scan.entries - scan.kept
    listing = Listing(list(entries.values()), scan.entries, dropped, "sitemap", "NEWSDEDUP_MAX_SITEMAP_URLS")
    if _local(root.tag) != "sitemapindex":
        return listing, None
    index = [absolute_url(base_url, _text(node, "loc") or "") for node in _children(root, "sitemap")]
    return listing, [url for url in index if url]


def _local(tag: object) -> str:
    """An element's name without its namespace ('{http://...}url' -> 'url')."""
    return tag.rpartition("}")[2] if isinstance(tag, str) else ""


def _children(node: ElementTree.Element, name: str) -> Iterator[ElementTree.Element]:
    """The direct children of node with this local name, whatever their namespace."""
    return (child for child in node if _local(child.tag) == name)


def _text(node: ElementTree.Element, *path: str) -> str | None:
    """The stripped text of the first descendant along path (local names), or None."""
    for name in path:
        node = next(_children(node, name), None)
        if node is None:
            return None
    text = (node.text or "").strip()
    return text or None
