"""Sources: the YAML sources file, and discovery of article URLs from feeds and sitemaps."""

from __future__ import annotations

import calendar
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import feedparser
import yaml
from defusedxml import ElementTree
from defusedxml.common import DefusedXmlException

from newsdedup.config import ConfigError
from newsdedup.extract import parse_datetime
from newsdedup.urls import canonicalize

if TYPE_CHECKING:
    from newsdedup.fetch import Fetcher, FetchResult

KINDS = ("rss", "atom", "sitemap", "auto")
_FIELDS = {"name", "url", "kind", "language", "enabled"}
_SITEMAP_NS = "{http://www.sitemaps.org/schemas/sitemap/0.9}"
_NEWS_NS = "{http://www.google.com/schemas/sitemap-news/0.9}"
_MAX_SITEMAP_FILES = 20


@dataclass(frozen=True)
class Source:
    """One configured feed or sitemap."""

    name: str
    url: str
    kind: str = "auto"
    language: str | None = None
    enabled: bool = True


@dataclass(frozen=True)
class FeedEntry:
    """An article URL announced by a source, with what the source says about it."""

    url: str
    title: str | None = None
    published_at: datetime | None = None
    updated_at: datetime | None = None


@dataclass
class Discovery:
    """What one look at a source found."""

    source: Source
    entries: list[FeedEntry] = field(default_factory=list)
    not_modified: bool = False
    error: str | None = None
    fetches: list[FetchResult] = field(default_factory=list)


def load_sources(path: Path) -> list[Source]:
    """Read and validate a sources YAML file; errors name the source and the field."""
    if not path.is_file():
        raise ConfigError(f"sources file {path} does not exist (set NEWSDEDUP_SOURCES)")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"sources file {path} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict) or set(data) != {"sources"} or not isinstance(data["sources"], list):
        raise ConfigError(f"sources file {path}: expected a single top-level key 'sources:' with a list")
    sources: list[Source] = []
    for index, item in enumerate(data["sources"]):
        sources.append(_parse_source(path, index, item))
    names = [s.name for s in sources]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigError(f"sources file {path}: duplicate source names {duplicates}")
    return sources


def _parse_source(path: Path, index: int, item: object) -> Source:
    """Validate one entry of the sources list."""
    where = f"sources file {path}, source #{index + 1}"
    if not isinstance(item, dict):
        raise ConfigError(f"{where}: expected a mapping with name, url, kind")
    if isinstance(item.get("name"), str):
        where += f" ({item['name']!r})"
    unknown = sorted(set(item) - _FIELDS)
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {unknown}; allowed: {sorted(_FIELDS)}")
    for key in ("name", "url"):
        if not isinstance(item.get(key), str) or not item[key].strip():
            raise ConfigError(f"{where}: field '{key}' is required and must be a non-empty string")
    if canonicalize(item["url"]) is None:
        raise ConfigError(f"{where}: field 'url' {item['url']!r} is not an http(s) URL")
    kind = item.get("kind", "auto")
    if kind not in KINDS:
        raise ConfigError(f"{where}: field 'kind' is {kind!r}; expected one of {list(KINDS)}")
    language = item.get("language")
    if language is not None and not (isinstance(language, str) and language.isalpha()):
        raise ConfigError(f"{where}: field 'language' must be a language code such as 'tr' or 'en'")
    enabled = item.get("enabled", True)
    if not isinstance(enabled, bool):
        raise ConfigError(f"{where}: field 'enabled' must be true or false")
    return Source(item["name"].strip(), item["url"].strip(), kind, language, enabled)


def discover(
    source: Source, fetcher: Fetcher, *, etag: str | None = None, last_modified: str | None = None
) -> Discovery:
    """Fetch a source (conditionally) and list the article URLs it announces."""
    result = fetcher.get(source.url, etag=etag, last_modified=last_modified)
    found = Discovery(source, fetches=[result])
    if result.outcome == "not_modified":
        found.not_modified = True
        return found
    if not result.ok or result.text is None:
        found.error = f"{result.error_class or result.outcome}: {result.error_message or result.status}"
        return found
    kind = source.kind if source.kind != "auto" else detect_kind(result.text)
    if kind == "sitemap":
        _discover_sitemap(found, result, fetcher)
    else:
        found.entries = parse_feed(result.text, result.final_url)
        if not found.entries and feedparser.parse(result.text).bozo:
            found.error = "FeedParseError: the feed could not be parsed and lists no entries"
    return found


def detect_kind(text: str) -> str:
    """Tell a sitemap from a feed by its root element."""
    head = text[:2048]
    if "<urlset" in head or "<sitemapindex" in head:
        return "sitemap"
    return "atom" if "<feed" in head else "rss"


def parse_feed(text: str, base_url: str) -> list[FeedEntry]:
    """Return the entries of an RSS or Atom feed, with absolute canonical URLs, each once."""
    parsed = feedparser.parse(text, response_headers={"content-location": base_url})
    entries: dict[str, FeedEntry] = {}
    for item in parsed.entries:
        link = item.get("link") or next(
            (lnk.get("href") for lnk in item.get("links", []) if lnk.get("href")), None
        )
        url = canonicalize(link or "")
        if not url or url in entries:
            continue
        # dict.get skips feedparser's deprecated updated -> published key aliasing.
        updated = _feed_time(dict.get(item, "updated_parsed"))
        published = _feed_time(dict.get(item, "published_parsed")) or updated
        entries[url] = FeedEntry(url, (item.get("title") or "").strip() or None, published, updated)
    return list(entries.values())


def _feed_time(stamp: time.struct_time | None) -> datetime | None:
    """Convert feedparser's UTC struct_time to an aware datetime; invalid dates become None."""
    if not stamp:
        return None
    try:
        return datetime.fromtimestamp(calendar.timegm(stamp), UTC)
    except (OverflowError, ValueError, OSError):
        return None


def _discover_sitemap(found: Discovery, first: FetchResult, fetcher: Fetcher) -> None:
    """Walk a sitemap or sitemap index (bounded, each file once) and collect its URLs."""
    seen: set[str] = set()
    queue = [first]
    entries: dict[str, FeedEntry] = {}
    while queue and len(seen) < _MAX_SITEMAP_FILES:
        result = queue.pop(0)
        seen.add(result.url)
        try:
            root = ElementTree.fromstring((result.text or "").encode("utf-8"))
        except (ElementTree.ParseError, DefusedXmlException) as exc:
            found.error = f"SitemapParseError: {result.url}: {exc}"
            continue
        if root.tag == f"{_SITEMAP_NS}sitemapindex":
            for loc in root.iter(f"{_SITEMAP_NS}loc"):
                url = canonicalize((loc.text or "").strip())
                if url and url not in seen:
                    seen.add(url)
                    child = fetcher.get(url)
                    found.fetches.append(child)
                    if child.ok:
                        queue.append(child)
            continue
        for node in root.iter(f"{_SITEMAP_NS}url"):
            url = canonicalize(_text(node, f"{_SITEMAP_NS}loc") or "")
            if url and url not in entries:
                published = _text(node, f"{_NEWS_NS}news/{_NEWS_NS}publication_date") or _text(
                    node, f"{_SITEMAP_NS}lastmod"
                )
                entries[url] = FeedEntry(
                    url,
                    _text(node, f"{_NEWS_NS}news/{_NEWS_NS}title"),
                    parse_datetime(published) if published else None,
                )
    found.entries = list(entries.values())


def _text(node: ElementTree.Element, path: str) -> str | None:
    """Return the stripped text of a child element, or None."""
    child = node.find(path)
    return child.text.strip() if child is not None and child.text and child.text.strip() else None
