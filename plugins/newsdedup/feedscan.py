"""Bounded reading of XML feeds and sitemaps: one cheap streaming pass before the real parser.

feedparser and ElementTree build every element they meet: a document nested a million levels deep
keeps them busy for many seconds, and one of 200,000 entries fills the memory. `bound()` reads the
document once with lxml's pull parser (no entity expansion, no network, libxml2's own limits on),
refuses it as soon as it is nested deeper than `max_depth`, and keeps only the `cap` newest entries
(by their date element, undated ones last in document order): entries beyond the cap are removed
from the tree as soon as they are outranked, so memory stays bounded by the cap.
"""

from __future__ import annotations

import heapq
import re
from dataclasses import dataclass
from typing import Any

from lxml import etree

from newsdedup import settings
from newsdedup.timeparse import parse_datetime

FEED_ENTRIES = frozenset({"item", "entry"})  # RSS 0.9x/1.0/2.0 items, Atom entries
SITEMAP_ENTRIES = frozenset({"url"})
# Child elements (local names) whose text dates an entry, in order of preference.
DATE_NAMES = ("published", "pubDate", "date", "issued", "updated", "modified", "lastmod", "publication_date")
_CHUNK = 1 << 20
_TAG = re.compile(rb"<(/?)([A-Za-z_][\w.:-]*)[^<>]*?(/?)>")
_HIDDEN = re.compile(rb"<!\[CDATA\[.*?\]\]>|<!--.*?-->", re.DOTALL)
# HTML elements that have no end tag: a lenient parser does not nest into them.
_VOID = frozenset(b"area base br col embed hr img input meta param source track wbr".split())


@dataclass(frozen=True)
class ParseLimits(settings.FromSettings):
    """How deep a feed or sitemap may nest and how many of its entries are read."""

    max_depth: int = settings.setting("max_xml_depth")
    max_feed_entries: int = settings.setting("max_feed_entries")
    max_sitemap_urls: int = settings.setting("max_sitemap_urls")


DEFAULT_LIMITS = ParseLimits()


class TooDeep(ValueError):
    """The document nests elements deeper than allowed."""


class Uncuttable(ValueError):
    """A document that is not well-formed lists more entries than the cap: it cannot be cut safely."""


@dataclass
class Bounded:
    """A document after the bounded pass: `data` is None when it is used as it was (within the cap)."""

    entries: int  # entries the document lists
    kept: int  # entries left in data
    data: bytes | None = None  # the document with only the kept entries, UTF-8


def _local(tag: object) -> str:
    """An element's name without its namespace."""
    return tag.rpartition("}")[2] if isinstance(tag, str) else ""


def _date_key(entry: Any) -> float:
    """The entry's date (from its child elements) as a timestamp, or -inf when it has none that parses."""
    texts = {_local(child.tag): child.text for child in entry.iterchildren()}
    for name in DATE_NAMES:
        text = (texts.get(name) or "").strip()
        value = parse_datetime(text) if text else None
        if value is not None:
            return value.timestamp()
    return float("-inf")


def _parser() -> etree.XMLPullParser:
    """A pull parser that expands no entity, loads nothing and keeps libxml2's own size limits."""
    return etree.XMLPullParser(
        events=("start", "end"),
        encoding="utf-8",
        recover=True,  # not well-formed is the real parser's verdict, not this pass's
        huge_tree=False,
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        remove_comments=True,
        remove_pis=True,
    )


def bound(data: bytes, entry_names: frozenset[str], cap: int, max_depth: int) -> Bounded:
    """Refuse (TooDeep) a document nested deeper than max_depth; keep its `cap` newest entries."""
    parser = _parser()
    depth = in_entry = 0  # in_entry: depth of the entry being read (entries inside entries are not counted)
    newest = _Newest(cap)
    for start in range(0, len(data), _CHUNK):
        parser.feed(data[start : start + _CHUNK])
        for event, element in parser.read_events():
            if event == "start":
                depth += 1
                if depth > max_depth:
                    raise TooDeep(f"elements are nested deeper than {max_depth} levels")
                if not in_entry and _local(element.tag) in entry_names:
                    in_entry = depth
                continue
            if depth == in_entry:
                in_entry = 0
                newest.add(element)
            depth -= 1
    entries = newest.seen
    try:
        root = parser.close()
    except etree.XMLSyntaxError:
        root = None
    if root is None or parser.error_log:
        # Not well-formed: lxml may have given up early, but feedparser's lenient parser reads on.
        listed = _rough_scan(data, max_depth, entry_names)
        if listed > cap and listed > entries:
            raise Uncuttable(f"the document is not well-formed and lists about {listed} entries, more than {cap}")
    if entries <= cap or root is None:
        return Bounded(entries, min(entries, cap))
    return Bounded(entries, cap, etree.tostring(root, encoding="utf-8", xml_declaration=True))


def _rough_scan(data: bytes, max_depth: int, entry_names: frozenset[str]) -> int:
    """Entry start tags, counting nesting as a lenient parser would (TooDeep past max_depth)."""
    depth = entries = 0
    names = {name.encode() for name in entry_names}
    for match in _TAG.finditer(_HIDDEN.sub(b"", data)):
        name = match.group(2).rpartition(b":")[2]
        if match.group(1):
            depth = max(depth - 1, 0)
            continue
        entries += name in names
        if not match.group(3) and name.lower() not in _VOID:
            depth += 1
            if depth > max_depth:
                raise TooDeep(f"elements are nested deeper than {max_depth} levels")
    return entries


class _Newest:
    """The `cap` newest entries seen so far; the others are removed from the tree as soon as they are outranked."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.seen = 0
        self.heap: list[tuple[float, int, Any]] = []  # (date, -position, entry): the oldest first

    def add(self, entry: Any) -> None:
        """Keep entry if it is among the newest; dates are read only once the cap is passed."""
        self.seen += 1
        if self.seen <= self.cap:
            self.heap.append((0.0, -self.seen, entry))
            return
        if self.seen == self.cap + 1:
            self.heap = [(_date_key(kept), order, kept) for _, order, kept in self.heap]
            heapq.heapify(self.heap)
        # Among equal dates a later entry ranks lower: feeds list the newest first.
        _drop(heapq.heappushpop(self.heap, (_date_key(entry), -self.seen, entry))[2])


def _drop(element: Any) -> None:
    """Remove an element from its tree (its memory goes with it)."""
    parent = element.getparent()
    if parent is not None:
        parent.remove(element)
