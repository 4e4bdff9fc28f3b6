"""Sources: the YAML sources file, and discovery of article URLs from feeds and sitemaps.

Feeds: RSS 0.9x/1.0/2.0 and Atom (feedparser), JSON Feed 1.x (json). Sitemaps: urlset, sitemap
index and Google News sitemaps, plain or gzip (`.xml.gz`), parsed with defusedxml; their elements
are matched by local name, whatever the namespace. A site's home page (`kind: auto`) leads to its
feeds (`<link rel="alternate">`) and to the sitemaps its robots.txt names. Every XML document is
checked with defusedxml first: a document that declares entities (entity expansion, external
entities) is refused with a clear error instead of being parsed. Every XML document is first read by
`newsdedup.feedscan`: one nested too deep is refused before the real parser sees it (`TooDeep`), and of a
feed or sitemap file listing more entries than the cap (`NEWSDEDUP_MAX_FEED_ENTRIES`,
`NEWSDEDUP_MAX_SITEMAP_URLS`) the newest are read and the fetch is recorded as `truncated`.
"""

from __future__ import annotations

import calendar
import io
import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args
from urllib.parse import urljoin

import feedparser
import yaml
from defusedxml import ElementTree
from defusedxml.common import DefusedXmlException
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_core import ErrorDetails

from newsdedup.config import ConfigError
from newsdedup.extract import parse_datetime
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
from newsdedup.urls import canonicalize

if TYPE_CHECKING:
    from newsdedup.fetch import Fetcher, FetchResult

Kind = Literal["rss", "atom", "jsonfeed", "sitemap", "auto"]
KINDS: tuple[str, ...] = get_args(Kind)
DEFAULT_MAX_ARTICLES = 1000
MAX_RATE_LIMIT = 3600.0
MAX_ARTICLES_LIMIT = 100_000
MAX_SITEMAP_FILES = 20  # files read per run: a sitemap index and its children, or a home page's feeds and sitemaps
MAX_HOME_FEEDS = 5  # feeds a home page links to that are read (the main one comes first)
FEED_ACCEPT = (
    "application/rss+xml,application/atom+xml,application/feed+json,application/xml;q=0.9,"
    "text/xml;q=0.9,application/json;q=0.8,application/gzip;q=0.5,*/*;q=0.1"
)
_NAME_RE = re.compile(r"^[^\x00-\x1f\x7f]{1,200}$")
_LANGUAGE_RE = re.compile(r"^[a-z]{2}$")
_ENTITY_DECL = re.compile(r"<!ENTITY", re.IGNORECASE)
_FIRST_ELEMENT = re.compile(r"<[A-Za-z_]")
_SITEMAP_ROOT = re.compile(r"<(?:[\w.-]+:)?(?:urlset|sitemapindex)\b")  # with a namespace prefix or not
_FEED_LINK_TYPES = frozenset({"application/rss+xml", "application/atom+xml", "application/feed+json"})
_LINKED = "linked"  # third element of a child_validators entry: a file a home page led to
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


class SourceEntry(BaseModel):
    """One entry of the sources file: types, bounds and what each field expects (its description)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    name: str = Field(description="a non-empty string of at most 200 characters without control characters")
    url: str = Field(description="an http(s) URL without credentials")
    kind: Kind = Field("auto", description=f"one of {list(KINDS)}")
    language: str | None = Field(None, description="an ISO 639-1 code such as 'tr' or 'en'")
    enabled: bool = Field(True, description="true or false")
    rate_limit: float | None = Field(
        None, ge=0, le=MAX_RATE_LIMIT, allow_inf_nan=False,
        description=f"seconds between requests to the source's hosts, a number from 0 to {MAX_RATE_LIMIT:g}",
    )
    max_articles: int | None = Field(
        None, ge=1, le=MAX_ARTICLES_LIMIT,
        description=f"a whole number of article pages per run from 1 to {MAX_ARTICLES_LIMIT}",
    )

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        """Trimmed, non-empty, one line."""
        value = value.strip()
        if not _NAME_RE.match(value):
            raise ValueError(f"is {value!r}; expected {cls.model_fields['name'].description}")
        return value

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        """An http(s) URL; a password in it would be stored and logged, so none is allowed."""
        value = value.strip()
        if not value:
            raise ValueError("is required and must be a non-empty string")
        if canonicalize(value) is None:
            raise ValueError(f"{value!r} is not an http(s) URL")
        if "@" in value.split("//", 1)[-1].split("/", 1)[0]:
            raise ValueError("must not contain credentials")
        return value

    @field_validator("language")
    @classmethod
    def _language(cls, value: str | None) -> str | None:
        """Two lower-case letters."""
        if value is not None and not _LANGUAGE_RE.match(value.strip().lower()):
            raise ValueError(f"is {value!r}; expected {cls.model_fields['language'].description}")
        return value and value.strip().lower()


def _parse_source(path: Path, index: int, item: object) -> Source:
    """Validate one entry of the sources list; the error names its position, its name and the field."""
    where = f"sources file {path}, source #{index + 1}"
    if not isinstance(item, dict):
        raise ConfigError(f"{where}: expected a mapping with name, url, kind")
    if isinstance(item.get("name"), str):
        where += f" ({item['name']!r})"
    item = {str(key): value for key, value in item.items()}
    try:
        entry = SourceEntry.model_validate(item)
    except ValidationError as exc:
        raise ConfigError(f"{where}: {_entry_problem(exc.errors(), item)}") from None
    return Source(entry.name, entry.url, entry.kind, entry.language, entry.enabled, entry.rate_limit,
                  entry.max_articles)


def _entry_problem(errors: list[ErrorDetails], item: dict[str, object]) -> str:
    """Unknown fields, else each bad field with its value and what it expects, on one line."""
    fields = SourceEntry.model_fields
    unknown = sorted(str(e["loc"][0]) for e in errors if e["type"] == "extra_forbidden")
    if unknown:
        return f"unknown field(s) {unknown}; allowed: {sorted(fields)}"
    problems = []
    for error in errors:
        name = str(error["loc"][0])
        if error["type"] == "value_error":
            problems.append(f"field '{name}' {error['ctx']['error']}")
        elif error["type"] == "missing" or (name in ("name", "url") and not item.get(name)):
            problems.append(f"field '{name}' is required and must be {fields[name].description}")
        else:
            problems.append(f"field '{name}' is {item[name]!r}; expected {fields[name].description}")
    return "; ".join(dict.fromkeys(problems))


# --------------------------------------------------------------------------- discovery


def discover(
    source: Source,
    fetcher: Fetcher,
    *,
    etag: str | None = None,
    last_modified: str | None = None,
    children: dict[str, list[str | None]] | None = None,
    limits: ParseLimits | None = None,
) -> Discovery:
    """Fetch a source (conditionally) and list the article URLs it announces; never raises FeedError.

    A `kind: auto` source that is a site's home page (an HTML page) leads to its feeds
    (`<link rel="alternate">`) and to the sitemaps its robots.txt names; those are read instead.
    limits: depth and entry caps (default: from the environment).
    """
    known = children or {}
    limits = limits or ParseLimits.from_env()
    result = fetcher.get(
        source.url,
        etag=etag,
        last_modified=last_modified,
        accept=FEED_ACCEPT,
        gunzip=True,
        host_delay=source.rate_limit,
    )
    found = Discovery(source, fetches=[result])
    home = source.kind == "auto" and any(_is_linked(v) for v in known.values())
    if result.outcome == "not_modified" and not home:
        found.not_modified = True
        found.children = dict(known)
        return found
    if result.outcome != "not_modified" and (not result.ok or result.text is None):
        found.error = f"{result.error_class or result.outcome}: {result.error_message or result.status}"
        return found
    try:
        kind = "html" if result.outcome == "not_modified" else source.kind
        kind = detect_kind(result.text or "") if kind == "auto" else kind
        if kind == "html":  # only detected for kind: auto
            _discover_home(found, result, fetcher, known, limits)
        elif kind == "sitemap":
            _Walk(found, fetcher, known, _urls_of(result), limits).read(result)
        else:
            listing = parse_listing(kind, result.text or "", result.final_url, limits)
            found.entries = listing.entries
            _note_dropped(found, result, listing)
    except FeedError as exc:
        _mark_parse_error(result, exc)
        found.error = f"{exc.error_class}: {exc.message}"
        found.entries = []
    return found


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


def _mark_parse_error(result: FetchResult, exc: FeedError) -> None:
    """Record on a fetched feed or sitemap why it could not be used (it lands in crawl_log)."""
    result.outcome = "parse_error"
    result.error_class = exc.error_class
    result.error_message = exc.message


def _note_dropped(found: Discovery, result: FetchResult, listing: Listing) -> None:
    """Record on a feed or sitemap that listed more entries than its cap that only the newest were read."""
    if not listing.dropped:
        return
    result.outcome = "truncated"
    result.error_class = "TooManyEntries"
    result.error_message = (
        f"the {listing.what} lists {listing.listed} entries, more than {listing.cap_setting}: the newest "
        f"{listing.listed - listing.dropped} were read"
    )
    found.incomplete = True  # the validators are not kept: the next run reads the file again


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
    return Listing(list(entries.values()), scan.entries, scan.entries - scan.kept)


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


def absolute_url(base_url: str, link: str) -> str | None:
    """The canonical absolute form of a link found in a document, or None when it is unusable."""
    try:
        return canonicalize(urljoin(base_url, link))
    except ValueError:  # "http://[::1" and the like: a broken link, not a broken source
        return None


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


# --------------------------------------------------------------------------- home pages and sitemaps


def _discover_home(
    found: Discovery, page: FetchResult, fetcher: Fetcher, known: dict[str, list[str | None]], limits: ParseLimits
) -> None:
    """Read the feeds a home page links to and the sitemaps its robots.txt names (on a 304: the last ones)."""
    if page.outcome == "not_modified":
        links = [url for url, validators in known.items() if _is_linked(validators)]
    else:
        feeds = feed_links(page.text or "", page.final_url)[:MAX_HOME_FEEDS]
        links = list(dict.fromkeys(feeds + _robots_sitemaps(fetcher, page)))
    if not links:
        raise FeedError(
            "NotAFeed",
            f"expected an RSS/Atom/JSON feed or a sitemap, got an HTML page ({page.content_type}) that links "
            'to no feed (<link rel="alternate">) on a site whose robots.txt names no sitemap',
        )
    walk = _Walk(found, fetcher, known, _urls_of(page), limits)
    for url in links:
        walk.fetch(url, linked=True)
    walk.run()
    unchanged = [r for r in found.fetches if r.outcome == "not_modified"]
    if page.outcome == "not_modified" and len(unchanged) == len(found.fetches):
        found.not_modified = True
        found.children = dict(known)
    elif walk.read_files + len(unchanged) == 0:
        raise FeedError(
            "NoReadableFeed",
            f"none of the {len(links)} feeds and sitemaps this home page leads to could be read (see crawl_log)",
        )


def feed_links(html: str, base_url: str) -> list[str]:
    """Absolute URLs of the feeds a page announces with <link rel="alternate" type="...">, in page order."""
    parser = _FeedLinks()
    parser.feed(html)
    parser.close()
    urls = (absolute_url(base_url, href) for href in parser.hrefs)
    return list(dict.fromkeys(url for url in urls if url))


class _FeedLinks(HTMLParser):
    """Collect the hrefs of feed <link> elements (the stdlib parser: no entities, no network)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag != "link":
            return
        values = {name: (value or "").strip() for name, value in attrs}
        rels = values.get("rel", "").lower().split()
        media_type = values.get("type", "").lower().split(";")[0].strip()
        href = values.get("href", "")
        # WordPress and others also announce a comments feed: comments are not articles.
        comments = "comment" in values.get("title", "").lower() or "/comments/" in href.lower()
        if "alternate" in rels and media_type in _FEED_LINK_TYPES and href and not comments:
            self.hrefs.append(href)

    handle_startendtag = handle_starttag


def _robots_sitemaps(fetcher: Fetcher, page: FetchResult) -> list[str]:
    """Sitemap URLs named by the robots.txt of the page's origin, news sitemaps first."""
    rules, fetched = fetcher.robots.rules_and_fetch(page.final_url)
    if fetched is not None:
        page.robots.append(fetched)  # logged in crawl_log with the home page's request
    robots_url = urljoin(page.final_url, "/robots.txt")
    urls = [u for u in (absolute_url(robots_url, s) for s in rules.sitemaps()) if u]
    # A site's news sitemap lists today's articles; its full index may not fit the per-run file budget.
    return sorted(dict.fromkeys(urls), key=lambda url: "news" not in url.lower())


def _is_linked(validators: list[str | None]) -> bool:
    """True for a child_validators entry of a file a home page led to (re-checked when the page is unchanged)."""
    return validators[2:3] == [_LINKED]


def _urls_of(result: FetchResult) -> set[str]:
    """The canonical requested and final URL of a fetch."""
    return {u for u in (canonicalize(result.url), canonicalize(result.final_url)) if u}


@dataclass
class _Walk:
    """One bounded read of the files a source leads to: each file once, fetched conditionally."""

    found: Discovery
    fetcher: Fetcher
    known: dict[str, list[str | None]]
    seen: set[str]
    limits: ParseLimits
    entries: dict[str, FeedEntry] = field(default_factory=dict)
    queue: list[tuple[FetchResult, str | None]] = field(default_factory=list)
    read_files: int = 0

    def fetch(self, url: str, kind: str | None = None, *, linked: bool = False) -> None:
        """Fetch a file (conditionally when known) and queue it; kind None: detected from the body."""
        if url in self.seen:
            return  # an index that lists itself (or a cycle) is read once
        if len(self.seen) >= MAX_SITEMAP_FILES:
            self.found.incomplete = True
            return
        self.seen.add(url)
        etag, last_modified = (self.known.get(url) or [None, None])[:2]
        child = self.fetcher.get(
            url,
            etag=etag,
            last_modified=last_modified,
            accept=FEED_ACCEPT,
            gunzip=True,
            host_delay=self.found.source.rate_limit,
        )
        self.found.fetches.append(child)
        if child.outcome == "not_modified" or child.ok:
            self.found.children[url] = [child.etag, child.last_modified, *([_LINKED] if linked else [])]
        if child.ok and child.text is not None:
            self.queue.append((child, kind))
        elif child.outcome != "not_modified":
            self.found.incomplete = True

    def run(self) -> None:
        """Read every queued file; a file that cannot be parsed is recorded and skipped."""
        while self.queue:
            result, kind = self.queue.pop(0)
            try:
                self._read_one(result, kind)
            except FeedError as exc:
                _mark_parse_error(result, exc)
                self.found.incomplete = True
        self.found.entries = list(self.entries.values())

    def read(self, first: FetchResult) -> None:
        """Read a source's sitemap and everything it leads to; its own parse errors raise."""
        self._read_one(first, "sitemap")
        self.run()

    def _read_one(self, result: FetchResult, kind: str | None) -> None:
        """Add a file's entries (a feed's or a sitemap's) or fetch the children of a sitemap index."""
        text = result.text or ""
        kind = kind or detect_kind(text)
        if kind != "sitemap":
            listing = parse_listing(kind, text, result.final_url, self.limits)
        else:
            root, listing = _parse_sitemap(text, result.final_url, self.limits)
            if _local(root.tag) == "sitemapindex":
                self.read_files += 1
                for node in _children(root, "sitemap"):
                    url = absolute_url(result.final_url, _text(node, "loc") or "")
                    if url:
                        self.fetch(url, "sitemap")
                return
        self.read_files += 1
        _note_dropped(self.found, result, listing)
        for entry in listing.entries:
            self.entries.setdefault(entry.url, entry)


def _parse_sitemap(text: str, base_url: str, limits: ParseLimits) -> tuple[ElementTree.Element, Listing]:
    """Parse a sitemap or sitemap index safely (the newest URLs within the cap); FeedError for anything else."""
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
    return root, Listing(list(entries.values()), scan.entries, dropped, "sitemap", "NEWSDEDUP_MAX_SITEMAP_URLS")


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
