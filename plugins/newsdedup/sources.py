"""Sources: the YAML sources file, and discovery of the article URLs a source announces.

A source is a feed or sitemap (read by `newsdedup.feeds`), or a site's home page (`kind: auto`),
which leads to its feeds (`<link rel="alternate">`) and to the sitemaps its robots.txt names.
Discovery fetches conditionally, follows sitemap indexes within a per-run file budget, and records
on each fetch why a file could not be used (`parse_error`) or was cut to its newest entries
(`truncated`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import TYPE_CHECKING, Literal, get_args
from urllib.parse import urljoin

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_core import ErrorDetails

from newsdedup.config import ConfigError
from newsdedup.feeds import FeedEntry, FeedError, Listing, detect_kind, parse_listing, parse_sitemap
from newsdedup.feedscan import ParseLimits
from newsdedup.outcomes import FetchResult, Outcome
from newsdedup.urls import absolute_url, canonicalize

if TYPE_CHECKING:
    from newsdedup.fetch import Fetcher

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
_DURATION_RE = re.compile(r"^\s*([0-9]{1,6})\s*([smhd])\s*$")
_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
POLL_LIMITS = (60, 30 * 86400)  # poll_every, poll_min, poll_max: from a minute to 30 days
_FEED_LINK_TYPES = frozenset({"application/rss+xml", "application/atom+xml", "application/feed+json"})
_LINKED = "linked"  # third element of a child_validators entry: a file a home page led to


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
    poll_every: int | None = None  # seconds: a fixed poll interval instead of a learned one
    poll_min: int | None = None  # seconds: bounds of the learned interval (None: the settings)
    poll_max: int | None = None

    @property
    def article_limit(self) -> int:
        """Articles fetched per run at most."""
        return self.max_articles or DEFAULT_MAX_ARTICLES


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
    declared_seconds: int | None = None  # the feed's <ttl> / sy:updatePeriod (newsdedup.polling)


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
    poll_every: int | None = Field(None, description="a duration such as '30m', '2h' or '1d', from 1m to 30d")
    poll_min: int | None = Field(None, description="a duration such as '15m' or '1h', from 1m to 30d")
    poll_max: int | None = Field(None, description="a duration such as '6h' or '2d', from 1m to 30d")

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

    @field_validator("poll_every", "poll_min", "poll_max", mode="before")
    @classmethod
    def _duration(cls, value: object) -> int | None:
        """A duration as text ('30m', '2h', '1d', '90s') in seconds, within POLL_LIMITS."""
        if value is None:
            return None
        match = _DURATION_RE.match(value) if isinstance(value, str) else None
        seconds = int(match[1]) * _DURATION_UNITS[match[2]] if match else None
        if seconds is None or not POLL_LIMITS[0] <= seconds <= POLL_LIMITS[1]:
            raise ValueError(f"is {value!r}; expected a duration such as '30m', '2h' or '1d', from 1m to 30d")
        return seconds


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
    if entry.poll_every is not None and (entry.poll_min is not None or entry.poll_max is not None):
        raise ConfigError(f"{where}: poll_every fixes the interval: give it alone, or poll_min / poll_max")
    if entry.poll_min is not None and entry.poll_max is not None and entry.poll_min > entry.poll_max:
        raise ConfigError(f"{where}: poll_min ({item['poll_min']!r}) is longer than poll_max ({item['poll_max']!r})")
    return Source(entry.name, entry.url, entry.kind, entry.language, entry.enabled, entry.rate_limit,
                  entry.max_articles, entry.poll_every, entry.poll_min, entry.poll_max)


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
    if result.outcome == Outcome.NOT_MODIFIED and not home:
        found.not_modified = True
        found.children = dict(known)
        return found
    if result.outcome != Outcome.NOT_MODIFIED and (not result.ok or result.text is None):
        found.error = f"{result.error_class or result.outcome}: {result.error_message or result.status}"
        return found
    try:
        kind = "html" if result.outcome == Outcome.NOT_MODIFIED else source.kind
        kind = detect_kind(result.text or "") if kind == "auto" else kind
        if kind == "html":  # only detected for kind: auto
            _discover_home(found, result, fetcher, known, limits)
        elif kind == "sitemap":
            _Walk(found, fetcher, known, _urls_of(result), limits).read(result)
        else:
            listing = parse_listing(kind, result.text or "", result.final_url, limits)
            found.entries = listing.entries
            found.declared_seconds = listing.declared_seconds
            _note_dropped(found, result, listing)
    except FeedError as exc:
        _mark_parse_error(result, exc)
        found.error = f"{exc.error_class}: {exc.message}"
        found.entries = []
    return found



def _mark_parse_error(result: FetchResult, exc: FeedError) -> None:
    """Record on a fetched feed or sitemap why it could not be used (it lands in crawl_log)."""
    result.outcome = Outcome.PARSE_ERROR
    result.error_class = exc.error_class
    result.error_message = exc.message


def _note_dropped(found: Discovery, result: FetchResult, listing: Listing) -> None:
    """Record on a feed or sitemap that listed more entries than its cap that only the newest were read."""
    if not listing.dropped:
        return
    result.outcome = Outcome.TRUNCATED
    result.error_class = "TooManyEntries"
    result.error_message = (
        f"the {listing.what} lists {listing.listed} entries, more than {listing.cap_setting}: the newest "
        f"{listing.listed - listing.dropped} were read"
    )
    found.incomplete = True  # the validators are not kept: the next run reads the file again



# --------------------------------------------------------------------------- home pages and sitemaps


def _discover_home(
    found: Discovery, page: FetchResult, fetcher: Fetcher, known: dict[str, list[str | None]], limits: ParseLimits
) -> None:
    """Read the feeds a home page links to and the sitemaps its robots.txt names (on a 304: the last ones)."""
    if page.outcome == Outcome.NOT_MODIFIED:
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
    unchanged = [r for r in found.fetches if r.outcome == Outcome.NOT_MODIFIED]
    if page.outcome == Outcome.NOT_MODIFIED and len(unchanged) == len(found.fetches):
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
        if child.outcome == Outcome.NOT_MODIFIED or child.ok:
            self.found.children[url] = [child.etag, child.last_modified, *([_LINKED] if linked else [])]
        if child.ok and child.text is not None:
            self.queue.append((child, kind))
        elif child.outcome != Outcome.NOT_MODIFIED:
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
            listing, index = parse_sitemap(text, result.final_url, self.limits)
            if index is not None:
                self.read_files += 1
                for url in index:
                    self.fetch(url, "sitemap")
                return
        self.read_files += 1
        _note_dropped(self.found, result, listing)
        for entry in listing.entries:
            self.entries.setdefault(entry.url, entry)

