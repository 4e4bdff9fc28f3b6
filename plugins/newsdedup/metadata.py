"""What a page's markup says about its article: canonical URL, language, title, dates and authors."""

from __future__ import annotations

import json
import logging
import re
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from htmldate import find_date
from lxml.html import HtmlElement
from trafilatura.json_metadata import extract_json, extract_json_parse_error, normalize_json
from trafilatura.metadata import JSON_MINIFY, examine_meta, extract_metainfo, normalize_authors
from trafilatura.settings import Document, set_date_params
from trafilatura.xpaths import AUTHOR_XPATHS

from newsdedup.timeparse import parse_datetime
from newsdedup.urls import absolute_url, canonicalize, host_key, site

log = logging.getLogger(__name__)

# Publication time: tags that name it, in order of trust (a date-only one loses to a timestamp, see _best_date).
_PUBLISHED_META = (
    ("property", "article:published_time"),
    ("name", "article:published_time"),
    ("itemprop", "datepublished"),
    ("name", "pubdate"),
    ("name", "publishdate"),
    ("name", "date"),
    ("name", "dc.date"),
    ("name", "dcterms.date"),
)
_MODIFIED_META = (
    ("property", "article:modified_time"),
    ("name", "article:modified_time"),
    ("itemprop", "datemodified"),
    ("property", "og:updated_time"),
)
_AUTHOR_META = (("name", "author"), ("property", "article:author"), ("name", "byl"))
_SITE_META = (("property", "og:site_name"), ("name", "application-name"), ("name", "apple-mobile-web-app-title"))
# Same tolerance as quality_checks.FUTURE_TOLERANCE: a time further ahead is a data error, not clock skew.
FUTURE_SKEW = timedelta(hours=1)
EARLIEST = datetime(1990, 1, 1, tzinfo=UTC)
_HAS_TIME = re.compile(r"\d[T ]?\d{1,2}:\d{2}")
# " | ", " - ", " – ", " — ", " · ", " • ", " :: ", " // ", " » " between a headline and a site name.
_TITLE_SEPARATOR = re.compile(r"\s+(?:[|\-–—·•»/]{1,2}|::)\s+|\s*\|\s*")
_TITLE_SEPARATOR_KEPT = re.compile(f"({_TITLE_SEPARATOR.pattern})")
_COLON_PREFIX = re.compile(r"^([^:]{2,60}?)\s*:\s+(\S.*)$")
_DATE_SEGMENT = re.compile(
    r"^(\d{1,2}[./-]\d{1,2}[./-]\d{2,4}|\d{4}-\d{2}-\d{2}|\d{1,2}\.? \w+ \d{4}|\w+\.? \d{1,2},? \d{4})$"
)
_GENERIC_HOST_LABELS = frozenset({"www", "m", "amp", "com", "co", "org", "net", "gov", "ac", "edu"})
_BYLINE_PREFIX = re.compile(
    r"^(?:(?:written|reported|posted|text|words|story|analysis|opinion|commentary|column)\s+by|by|von|por|par|door|av|di|yazan)"
    r"\s*[:\-–]?\s+",
    re.IGNORECASE,
)
# "and" in several languages; the one-letter ones only in lower case ("Sarah E Needleman" is one person).
_AUTHOR_SPLIT = re.compile(
    r"\s*(?:;|,|/|\||&|\+|\s[-–—]\s)\s*|\s+(?:(?i:and|und|ve|et|en|og|och)|e|y|i)\s+"
)
# Roles and desks that bylines carry next to (or instead of) names; compared in lower case.
_ROLES = frozenset({
    "staff", "staff writer", "staff reporter", "reporter", "correspondent", "editor", "senior editor",
    "contributor", "contributing writer", "columnist", "writer", "journalist", "news desk", "newsdesk",
    "web desk", "desk", "editorial", "editorial staff", "editorial board", "redaktion", "red", "online-redaktion",
    "nachrichtenredaktion", "redakteur", "redakteurin", "korrespondent", "korrespondentin", "redacción",
    "redaccion", "rédaction", "redazione", "haber merkezi", "muhabir", "muhabiri", "editör", "admin",
    "administrator", "news", "staff and agencies", "agencies", "wires", "wire", "team", "bureau", "sport",
    "sports", "online", "digital", "newsroom", "editors", "reporters", "muhabirleri", "servisi",
    "staff reports", "ms", "md", "rd", "rdn", "phd", "mph",
})
# Last words that make a byline part a role, not a name.
_ROLE_ENDINGS = frozenset({
    "writer", "reporter", "correspondent", "editor", "editor-at-large", "columnist", "contributor", "staff",
})
_EMAIL = re.compile(r"\S+@\S+\.\w+|@\w+|https?://\S+")
_DIGITS = re.compile(r"\d")
_HANDLE = re.compile(r"^[a-z0-9_.]+$")  # "jdadmin": a login, not a name


@dataclass
class PageMetadata:
    """What a page says about its article, after cleaning."""

    canonical_url: str
    declared_language: str | None
    title: str  # "" when the page names none
    raw_title: str | None  # the page's <title> (else og:title) as it is
    author: str | None  # people, "; "-separated (trafilatura's form), never the outlet
    published_at: datetime | None
    modified_at: datetime | None
    date_issue: str | None  # why a date the page gives was not used: "future" or "before_1990"


def read_metadata(tree: HtmlElement, url: str, *, now: datetime | None = None) -> PageMetadata:
    """Read and clean a parsed page's metadata; `now` bounds plausible dates (default: the current time)."""
    meta = PageMeta(tree)
    doc = _trafilatura_meta(tree)
    names = site_names(url, [*meta.all(_SITE_META), doc.sitename, *meta.publisher_names()])
    raw_title = meta.tag_title() or meta.social_title()
    title = choose_title(meta.social_title() or meta.headline() or meta.tag_title(), meta.h1(), names)
    author = clean_authors(doc.author or _first_byline(tree) or meta.author(), names)
    dates = PageDates.read(meta, now or datetime.now(UTC))
    published = dates.published
    return PageMetadata(
        canonical_url=_canonical(meta, url),
        declared_language=meta.language(),
        title=title,
        raw_title=raw_title or None,
        author="; ".join(author) or None,
        published_at=published,
        modified_at=dates.modified if dates.modified and (not published or dates.modified >= published) else None,
        date_issue=dates.issue,
    )


# --- titles ---------------------------------------------------------------------------------------------


def site_names(url: str, declared: Iterable[str | None]) -> list[str]:
    """Comparison keys of the outlet's names: declared ones (og:site_name, publisher) and the host's labels."""
    host = host_key(url).removeprefix("www.")
    # The registrable label ("bbc" of news.bbc.co.uk), not subdomains such as "news" or "blog".
    labels = [label for label in host.split(".")[:-1] if label not in _GENERIC_HOST_LABELS and len(label) > 1]
    keys = [_key(name) for name in declared if name] + labels[-1:] + [_key(host)]
    return list(dict.fromkeys(k for k in keys if k))


def strip_decorations(title: str, names: Sequence[str]) -> str:
    """The headline without the site name, date or learned affix outlets add before or after it."""
    tokens = _TITLE_SEPARATOR_KEPT.split(" ".join(title.split()))  # segment, separator, segment, ...
    while len(tokens) > 1 and (is_site_name(tokens[-1], names) or _DATE_SEGMENT.match(tokens[-1])):
        del tokens[-2:]
    while len(tokens) > 1 and is_site_name(tokens[0], names):
        del tokens[:2]
    title = "".join(tokens)
    prefix = _COLON_PREFIX.match(title)
    if prefix and is_site_name(prefix[1], names, loose=False):
        title = prefix[2]
    return title.strip()


def is_site_name(text: str, names: Sequence[str], *, loose: bool = True) -> bool:
    """Whether a title segment or byline names the outlet (by its declared names or host).

    Exact (case, accents, spaces and punctuation aside) or by initials ("Deutsche Welle" for dw.com);
    loose also takes a short segment holding a name ("BBC News" for bbc.co.uk, "Reuters.com").
    """
    key = _key(text)
    if not key:
        return False
    if key in names or _initials(text) in names:
        return True
    return loose and len(text.split()) <= 4 and any(len(n) >= 3 and n in key for n in names)


def choose_title(social: str, displayed: str, names: Sequence[str]) -> str:
    """The displayed headline (<h1>) when plausible, else the social/meta title, without decorations."""
    title = strip_decorations(social, names) if social else ""
    shown = strip_decorations(displayed, names) if displayed else ""
    if shown and _plausible_headline(shown, names):
        return shown
    return title or shown


def _plausible_headline(text: str, names: Sequence[str]) -> bool:
    """Whether an <h1> reads as a headline, not the site's logo, a section name or a paragraph."""
    words = len(text.split())
    spaceless = words == 1 and len(text) >= 8 and not text.isascii()  # CJK or Thai headlines
    return (3 <= words <= 40 or spaceless) and len(text) <= 300 and not is_site_name(text, names)


def learned_affixes(titles: Sequence[str], *, min_share: float = 0.5) -> tuple[str, str]:
    """A prefix and suffix (each after a separator) that at least half of one source's titles share."""
    if len(titles) < 2:
        return "", ""
    heads, tails = {}, {}
    for title in titles:
        parts = _TITLE_SEPARATOR.split(" ".join(title.split()))
        if len(parts) > 1:
            heads[parts[0]] = heads.get(parts[0], 0) + 1
            tails[parts[-1]] = tails.get(parts[-1], 0) + 1
    need = max(2, min_share * len(titles))
    head = max(heads, key=heads.get, default="")
    tail = max(tails, key=tails.get, default="")
    return (head if heads.get(head, 0) >= need else ""), (tail if tails.get(tail, 0) >= need else "")


def strip_learned(title: str, affixes: tuple[str, str]) -> str:
    """A title without the source's learned prefix and suffix (see learned_affixes)."""
    names = [_key(a) for a in affixes if a]
    return strip_decorations(title, names) if names else title


def _key(text: str) -> str:
    """Case- and accent-folded letters and digits only: how names are compared."""
    folded = unicodedata.normalize("NFKD", text.casefold().replace("ı", "i"))
    return "".join(c for c in folded if c.isalnum())


def _initials(text: str) -> str:
    """Initials of a multi-word name ("Deutsche Welle" -> "dw"), "" for one word."""
    words = text.split()
    return _key("".join(w[0] for w in words)) if len(words) > 1 else ""


# --- authors --------------------------------------------------------------------------------------------


def clean_authors(raw: str | None, names: Sequence[str]) -> list[str]:
    """People named by a byline: split, without "By", roles, dates, numbers, e-mails or the outlet's name."""
    if not raw or raw.startswith(("http://", "https://")):
        return []
    found: list[str] = []
    for part in _AUTHOR_SPLIT.split(_EMAIL.sub(" ", raw)):
        name = _BYLINE_PREFIX.sub("", " ".join(part.split()).strip(" .:-–—()[]\"'")).strip(" .:-–—")
        name = _BYLINE_PREFIX.sub("", name)  # "Text: By ..."
        name = " ".join(w for w in name.split() if not _DIGITS.search(w))  # dates, phone numbers, ids
        name = _without_outlet(name, names)
        if not name or _HANDLE.match(name) or _is_role(name):
            continue
        if len(name) > 60 or len(name.split()) > 5:
            continue  # a sentence, not a name
        if name not in found:
            found.append(name)
    return [n for n in found if not any(n != m and n in m for m in found)]


def _without_outlet(name: str, names: Sequence[str]) -> str:
    """A byline part without the outlet: "" when it is the outlet (or its desk), else the name before it."""
    words = name.split()
    for cut in range(len(words) - 1, -1, -1):  # the shortest tail that names the outlet
        if is_site_name(" ".join(words[cut:]), names):
            # "Jane Doe Sputnik International" -> "Jane Doe"; "Prefeitura Municipal de <Town>" -> nothing
            return " ".join(words[:cut]) if cut > 1 and words[cut - 1][:1].isupper() else ""
    while words and words[-1].casefold() in _ROLES:
        words.pop()  # "News Nation Bureau", "Telegraph Sport": the outlet's desk
    return "" if words and is_site_name(" ".join(words), names) else name


def _is_role(name: str) -> bool:
    """Whether a byline part is a role or desk ("Staff Writer", "AP Auto Writer", "Redaktion")."""
    words = name.casefold().split()
    return name.casefold() in _ROLES or (len(words) > 1 and words[-1] in _ROLE_ENDINGS)


def _first_byline(tree: HtmlElement) -> str | None:
    """The page's byline by trafilatura's specific byline rule (the generic ones scan every element)."""
    try:
        return extract_metainfo(tree, AUTHOR_XPATHS[:1], len_limit=120) or None
    except Exception:  # noqa: BLE001 - a byline is best effort
        log.debug("byline look-up failed", exc_info=True)
        return None


def _trafilatura_meta(tree: HtmlElement) -> Document:
    """trafilatura's meta-tag and JSON-LD reading (read-only on the tree); an empty Document on failure."""
    try:
        meta = examine_meta(tree)
        if meta.author and " " not in meta.author:
            meta.author = None  # a single token is a handle or a site name, as trafilatura judges it
        meta = meta_json(tree, meta)
        if meta.author:
            meta.author = normalize_authors(None, meta.author) or meta.author
        return meta
    except Exception:  # noqa: BLE001 - metadata is best effort; the page's own look-ups remain
        log.debug("trafilatura metadata failed", exc_info=True)
        return Document()


def meta_json(tree: HtmlElement, meta: Document) -> Document:
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


# --- dates ----------------------------------------------------------------------------------------------


@dataclass
class PageDates:
    """The publication and modification times a page declares, implausible ones left out and named."""

    published: datetime | None
    modified: datetime | None
    issue: str | None
    now: datetime

    @classmethod
    def read(cls, meta: PageMeta, now: datetime) -> PageDates:
        """Pick the best plausible declared times: a timestamp beats a date-only value of equal standing."""
        dates = cls(None, None, None, now)
        dates.published = (
            dates.best(meta.published_candidates())
            or dates.best(meta.all((("property", "og:updated_time"),)))
            or dates.best(meta.tree.xpath("//time/@datetime")[:1])
        )
        dates.modified = dates.best([*meta.all(_MODIFIED_META), *meta.json_ld_values("dateModified")])
        return dates

    def best(self, raws: Iterable[str]) -> datetime | None:
        """The first plausible timestamp among raws, else the first plausible date-only value."""
        date_only = None
        for raw in raws:
            value = self.plausible(parse_datetime(raw))
            if value and _HAS_TIME.search(raw):
                return value
            date_only = date_only or value
        return date_only

    def plausible(self, value: datetime | None) -> datetime | None:
        """The value when it lies between 1990 and now (plus clock skew); else None, recording why."""
        if value is None:
            return None
        if value > self.now + FUTURE_SKEW:
            self.issue = self.issue or "future"
            return None
        if value < EARLIEST:
            self.issue = self.issue or "before_1990"
            return None
        return value


def searched_date(tree: HtmlElement, url: str) -> datetime | None:
    """Publication date found by htmldate's search of the page (which may prune the tree: run it last)."""
    try:
        found = find_date(tree, url=url, **set_date_params(True))  # between 1995 and today, per call
    except Exception:  # noqa: BLE001 - a date is best effort
        log.debug("htmldate failed", exc_info=True)
        return None
    return parse_datetime(found) if found else None


# --- the page's markup ----------------------------------------------------------------------------------


class PageMeta:
    """Metadata look-ups on a parsed page: meta tags, links, JSON-LD, headings, <time>."""

    def __init__(self, tree: HtmlElement) -> None:
        """Index the page's meta tags once."""
        self.tree = tree
        self.meta: dict[tuple[str, str], list[str]] = {}
        for node in tree.iter("meta"):
            content = (node.get("content") or "").strip()
            if not content:
                continue
            for attr in ("name", "property", "itemprop", "http-equiv"):
                key = (node.get(attr) or "").strip().lower()
                if key:
                    self.meta.setdefault((attr, key), []).append(content)
        self._ld: list[dict] | None = None

    def first(self, pairs: tuple[tuple[str, str], ...]) -> str | None:
        """The first meta content found among (attribute, value) pairs."""
        return next(self.all(pairs), None)

    def all(self, pairs: tuple[tuple[str, str], ...]) -> Iterator[str]:
        """Every meta content of these (attribute, value) pairs, in their order."""
        for pair in pairs:
            yield from self.meta.get(pair, ())

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

    def json_ld_values(self, key: str) -> list[str]:
        """The string values of one key across the page's JSON-LD objects."""
        return [str(item[key]) for item in self.json_ld() if isinstance(item.get(key), str | int) and item[key]]

    def published_candidates(self) -> list[str]:
        """Declared publication times: meta tags, then JSON-LD datePublished."""
        return [*self.all(_PUBLISHED_META), *self.json_ld_values("datePublished")]

    def publisher_names(self) -> list[str]:
        """Names of the JSON-LD publisher and of WebSite/Organization/NewsMediaOrganization objects."""
        found = []
        for item in self.json_ld():
            publisher = item.get("publisher")
            for entry in publisher if isinstance(publisher, list) else [publisher]:
                if isinstance(entry, dict) and isinstance(entry.get("name"), str):
                    found.append(entry["name"])
            kind = item.get("@type")
            if kind in ("WebSite", "Organization", "NewsMediaOrganization") and isinstance(item.get("name"), str):
                found.append(item["name"])
        return found

    def canonical_links(self) -> list[str]:
        """Candidate canonical URLs: <link rel=canonical>, then og:url."""
        links = [
            (node.get("href") or "").strip()
            for node in self.tree.iter("link")
            if "canonical" in (node.get("rel") or "").lower().split()
        ]
        og = self.first((("property", "og:url"),))
        return [h for h in [*links, og] if h]

    def social_title(self) -> str:
        """og:title or twitter:title."""
        return self.first((("property", "og:title"), ("name", "twitter:title"), ("property", "twitter:title"))) or ""

    def headline(self) -> str:
        """JSON-LD headline."""
        return next(iter(self.json_ld_values("headline")), "")

    def tag_title(self) -> str:
        """The <title> element's text."""
        nodes = self.tree.xpath("//head/title|//title")
        return " ".join(nodes[0].text_content().split()) if nodes else ""

    def h1(self) -> str:
        """The displayed headline: the first non-empty <h1> of the article (or main), else of the page."""
        for path in ("//article//h1", "//main//h1", "//h1"):
            for node in self.tree.xpath(path)[:3]:
                text = " ".join(node.text_content().split())
                if text:
                    return text
        return ""

    def author(self) -> str | None:
        """The byline from meta tags or JSON-LD."""
        found = self.first(_AUTHOR_META)
        if found:
            return found
        for item in self.json_ld():
            author = item.get("author")
            authors = author if isinstance(author, list) else [author]
            named = [a.get("name") if isinstance(a, dict) else a for a in authors]
            named = [n.strip() for n in named if isinstance(n, str) and n.strip()]
            if named:
                return "; ".join(named)
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


def _canonical(page: PageMeta, url: str) -> str:
    """Return the page's canonical URL (link rel=canonical, then og:url, then the URL itself)."""
    for href in page.canonical_links():
        if href == url:  # the page names itself (most do): nothing to resolve or compare
            break
        candidate = absolute_url(url, href)
        # A canonical link to another host is ignored: a page must not claim another site's URL.
        if candidate and site(candidate) == site(url):
            return candidate
    return canonicalize(url) or url
