"""Sources: the YAML sources file, and discovery of article URLs from feeds and sitemaps.

Feeds: RSS 0.9x/1.0/2.0 and Atom (feedparser), JSON Feed 1.x (json). Sitemaps: urlset, sitemap
index and Google News sitemaps, plain or gzip (`.xml.gz`), parsed with defusedxml. Every XML
document is checked with defusedxml first: a document that declares entities (entity expansion,
external entities) is refused with a clear error instead of being parsed.
"""

from __future__ import annotations

import calendar
import io
import json
import math
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin

import feedparser
import yaml
from defusedxml import ElementTree
from defusedxml.common import DefusedXmlException

from newsdedup.config import ConfigError
from newsdedup.extract import parse_datetime
from newsdedup.urls import canonicalize

if TYPE_CHECKING:
    from newsdedup.fetch import Fetcher, FetchResult

KINDS = ("rss", "atom", "jsonfeed", "sitemap", "auto")
_FIELDS = {"name", "url", "kind", "language", "enabled", "rate_limit", "max_articles"}
DEFAULT_MAX_ARTICLES = 1000
MAX_RATE_LIMIT = 3600.0
MAX_ARTICLES_LIMIT = 100_000
_SITEMAP_NS = "{http://www.sitemaps.org/schemas/sitemap/0.9}"
_NEWS_NS = "{http://www.google.com/schemas/sitemap-news/0.9}"
MAX_SITEMAP_FILES = 20  # index plus children read per run
MAX_SITEMAP_URLS = 50_000  # the sitemap protocol's own per-file limit
FEED_ACCEPT = (
    "application/rss+xml,application/atom+xml,application/feed+json,application/xml;q=0.9,"
    "text/xml;q=0.9,application/json;q=0.8,application/gzip;q=0.5,*/*;q=0.1"
)
_NAME_RE = re.compile(r"^[^\x00-\x1f\x7f]{1,200}$")
_LANGUAGE_RE = re.compile(r"^[a-z]{2}$")
_ENTITY_DECL = re.compile(r"<!ENTITY", re.IGNORECASE)
_FIRST_ELEMENT = re.compile(r"<[A-Za-z_]")
# Dates further ahead than this are a broken or hostile feed, not news: they would make an
# article look "changed since we fetched it" on every run.
_FUTURE_SLACK = timedelta(days=1)
_EARLIEST = datetime(1990, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Source:
    """One configured feed or sitemap."""

    name: str
    url: str
    kind: str = "auto"
    language: str | None = None
    enabled: bool = True
    rate_limit: float | None = None  # min seconds between requests to this source's hosts
    max_articles: int | None = None  # article pages fetched per run (None: DEFAULT_MAX_ARTICLES)

    @property
    def article_limit(self) -> int:
        """Articles fetched per run at most."""
        return self.max_articles or DEFAULT_MAX_ARTICLES


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
        super().__init__(message)
        self.error_class = error_class
        self.message = message


@dataclass
class Discovery:
    """What one look at a source found."""

    source: Source
    entries: list[FeedEntry] = field(default_factory=list)
    not_modified: bool = False
    error: str | None = None
    fetches: list[FetchResult] = field(default_factory=list)
    # Validators of sitemap children read this time: url -> [etag, last_modified].
    children: dict[str, list[str | None]] = field(default_factory=dict)
    # Something was left unread (a child failed, limits hit): do not trust validators next time.
    incomplete: bool = False


# --------------------------------------------------------------------------- the sources file


def load_sources(path: Path) -> list[Source]:
    """Read and validate a sources YAML file; errors name the source and the field."""
    if not path.is_file():
        raise ConfigError(f"sources file {path} does not exist (set NEWSDEDUP_SOURCES)")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"sources file {path} is not valid YAML: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"sources file {path} is not UTF-8: {exc}") from exc
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
    unknown = sorted(str(k) for k in set(item) - _FIELDS)
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {unknown}; allowed: {sorted(_FIELDS)}")
    for key in ("name", "url"):
        if not isinstance(item.get(key), str) or not item[key].strip():
            raise ConfigError(f"{where}: field '{key}' is required and must be a non-empty string")
    name = item["name"].strip()
    if not _NAME_RE.match(name):
        raise ConfigError(f"{where}: field 'name' must be at most 200 characters without control characters")
    url = item["url"].strip()
    if canonicalize(url) is None:
        raise ConfigError(f"{where}: field 'url' {url!r} is not an http(s) URL")
    if "@" in url.split("//", 1)[-1].split("/", 1)[0]:
        raise ConfigError(f"{where}: field 'url' must not contain credentials")
    kind = item.get("kind", "auto")
    if kind not in KINDS:
        raise ConfigError(f"{where}: field 'kind' is {kind!r}; expected one of {list(KINDS)}")
    language = item.get("language")
    if language is not None:
        if not isinstance(language, str) or not _LANGUAGE_RE.match(language.strip().lower()):
            raise ConfigError(
                f"{where}: field 'language' is {language!r}; expected an ISO 639-1 code such as 'tr' or 'en'"
            )
        language = language.strip().lower()
    enabled = item.get("enabled", True)
    if not isinstance(enabled, bool):
        raise ConfigError(f"{where}: field 'enabled' must be true or false, got {enabled!r}")
    rate_limit = item.get("rate_limit")
    if rate_limit is not None:
        if (
            isinstance(rate_limit, bool)
            or not isinstance(rate_limit, int | float)
            or not math.isfinite(rate_limit)
            or not 0 <= rate_limit <= MAX_RATE_LIMIT
        ):
            raise ConfigError(
                f"{where}: field 'rate_limit' is {rate_limit!r}; expected seconds between requests "
                f"to the source's hosts, a number from 0 to {MAX_RATE_LIMIT:g}"
            )
        rate_limit = float(rate_limit)
    max_articles = item.get("max_articles")
    if max_articles is not None and (
        isinstance(max_articles, bool)
        or not isinstance(max_articles, int)
        or not 1 <= max_articles <= MAX_ARTICLES_LIMIT
    ):
        raise ConfigError(
            f"{where}: field 'max_articles' is {max_articles!r}; expected a whole number of article "
            f"pages per run from 1 to {MAX_ARTICLES_LIMIT}"
        )
    return Source(name, url, kind, language, enabled, rate_limit, max_articles)


# --------------------------------------------------------------------------- discovery


def discover(
    source: Source,
    fetcher: Fetcher,
    *,
    etag: str | None = None,
    last_modified: str | None = None,
    children: dict[str, list[str | None]] | None = None,
) -> Discovery:
    """Fetch a source (conditionally) and list the article URLs it announces; never raises FeedError."""
    result = fetcher.get(
        source.url,
        etag=etag,
        last_modified=last_modified,
        accept=FEED_ACCEPT,
        gunzip=True,
        host_delay=source.rate_limit,
    )
    found = Discovery(source, fetches=[result])
    if result.outcome == "not_modified":
        found.not_modified = True
        found.children = dict(children or {})
        return found
    if not result.ok or result.text is None:
        found.error = f"{result.error_class or result.outcome}: {result.error_message or result.status}"
        return found
    try:
        kind = source.kind if source.kind != "auto" else detect_kind(result.text)
        if kind == "html":
            raise FeedError(
                "NotAFeed",
                f"expected an RSS/Atom/JSON feed or a sitemap, got an HTML page ({result.content_type})",
            )
        if kind == "sitemap":
            _discover_sitemap(found, result, fetcher, children or {})
        elif kind == "jsonfeed":
            found.entries = parse_json_feed(result.text, result.final_url)
        else:
            try:
                found.entries = parse_feed(result.text, result.final_url)
            except FeedError:
                raise
            except (ValueError, UnicodeError, AttributeError) as exc:
                # feedparser raises on hostile bodies (out-of-range or surrogate character references,
                # an empty document): a broken feed, not a crash of the run.
                raise FeedError("FeedParseError", f"the feed could not be parsed: {type(exc).__name__}: {exc}") from exc
    except FeedError as exc:
        _mark_parse_error(result, exc)
        found.error = f"{exc.error_class}: {exc.message}"
        found.entries = []
    return found


def _mark_parse_error(result: FetchResult, exc: FeedError) -> None:
    """Record on a fetched feed or sitemap why it could not be used (it lands in crawl_log)."""
    result.outcome = "parse_error"
    result.error_class = exc.error_class
    result.error_message = exc.message


def detect_kind(text: str) -> str:
    """Tell a sitemap, Atom, RSS or JSON feed (or an HTML page) apart by its start."""
    head = text[:4096].lstrip("\ufeff \t\r\n")
    if head.startswith(("{", "[")):
        return "jsonfeed"
    lower = head.lower()
    if "<urlset" in lower or "<sitemapindex" in lower:
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
        match = _FIRST_ELEMENT.search(text)
        if _ENTITY_DECL.search(text[: match.start()] if match else text):
            raise FeedError(
                "EntitiesForbidden",
                "the document declares XML entities; refused: entity expansion is not parsed",
            ) from None


def parse_feed(text: str, base_url: str) -> list[FeedEntry]:
    """Return the entries of an RSS or Atom feed, with absolute canonical URLs, each once."""
    check_xml_safe(text)
    # A file object, never a str or bytes: feedparser opens those as a URL or a local file name.
    parsed = feedparser.parse(
        io.BytesIO(text.encode("utf-8")),
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
    return list(entries.values())


def parse_json_feed(text: str, base_url: str) -> list[FeedEntry]:
    """Return the items of a JSON Feed (https://jsonfeed.org/version/1.1), each URL once."""
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
    for item in items:
        if not isinstance(item, dict):
            continue
        link = item.get("url") or item.get("external_url")
        published = _json_time(item.get("date_published"))
        updated = _json_time(item.get("date_modified"))
        _add_entry(entries, link, base_url, item.get("title"), published or updated, updated)
    return list(entries.values())


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
    url = canonicalize(urljoin(base_url, link.strip()))
    if not url or url in entries:
        return
    clean_title = " ".join(title.split())[:1000] if isinstance(title, str) else ""
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


# --------------------------------------------------------------------------- sitemaps


def _discover_sitemap(
    found: Discovery, first: FetchResult, fetcher: Fetcher, known: dict[str, list[str | None]]
) -> None:
    """Walk a sitemap or sitemap index (bounded, each file once, children conditionally)."""
    seen = {u for u in (canonicalize(first.url), canonicalize(first.final_url)) if u}
    queue = [first]
    entries: dict[str, FeedEntry] = {}
    while queue:
        result = queue.pop(0)
        try:
            root = _parse_sitemap(result.text or "")
        except FeedError as exc:
            if result is first:
                raise
            _mark_parse_error(result, exc)
            found.incomplete = True
            continue
        if root.tag == f"{_SITEMAP_NS}sitemapindex":
            for loc in root.iter(f"{_SITEMAP_NS}loc"):
                url = canonicalize(urljoin(result.final_url, (loc.text or "").strip()))
                if not url or url in seen:
                    continue  # an index that lists itself (or a cycle) is read once
                if len(seen) >= MAX_SITEMAP_FILES:
                    found.incomplete = True
                    break
                seen.add(url)
                etag, last_modified = (known.get(url) or [None, None])[:2]
                child = fetcher.get(
                    url,
                    etag=etag,
                    last_modified=last_modified,
                    accept=FEED_ACCEPT,
                    gunzip=True,
                    host_delay=found.source.rate_limit,
                )
                found.fetches.append(child)
                if child.outcome == "not_modified":
                    found.children[url] = [child.etag, child.last_modified]
                elif child.ok:
                    found.children[url] = [child.etag, child.last_modified]
                    queue.append(child)
                else:
                    found.incomplete = True
            continue
        for count, node in enumerate(root.iter(f"{_SITEMAP_NS}url")):
            if count >= MAX_SITEMAP_URLS:
                found.incomplete = True
                break
            published = _text(node, f"{_NEWS_NS}news/{_NEWS_NS}publication_date")
            lastmod = _text(node, f"{_SITEMAP_NS}lastmod")
            updated = _plausible(parse_datetime(lastmod)) if lastmod else None
            _add_entry(
                entries,
                _text(node, f"{_SITEMAP_NS}loc"),
                result.final_url,
                _text(node, f"{_NEWS_NS}news/{_NEWS_NS}title"),
                (_plausible(parse_datetime(published)) if published else None) or updated,
                updated,
            )
    found.entries = list(entries.values())


def _parse_sitemap(text: str) -> ElementTree.Element:
    """Parse a sitemap or sitemap index safely; raise FeedError for anything else."""
    try:
        root = ElementTree.fromstring(text, forbid_dtd=False, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        raise FeedError(
            type(exc).__name__,
            f"the sitemap declares XML entities ({exc}); refused: entity expansion and external "
            "entities are not parsed",
        ) from None
    except ElementTree.ParseError as exc:
        raise FeedError("SitemapParseError", f"the sitemap is not well-formed XML: {exc}") from None
    if root.tag not in (f"{_SITEMAP_NS}urlset", f"{_SITEMAP_NS}sitemapindex"):
        raise FeedError("SitemapParseError", f"not a sitemap: root element is <{root.tag}>")
    return root


def _text(node: ElementTree.Element, path: str) -> str | None:
    """Return the stripped text of a child element, or None."""
    child = node.find(path)
    return child.text.strip() if child is not None and child.text and child.text.strip() else None
