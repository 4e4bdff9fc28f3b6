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

from newsdedup.urls import canonicalize

log = logging.getLogger(__name__)

# Meta tags that carry the publication time, in order of trust.
_DATE_META = (
    ("property", "article:published_time"),
    ("name", "article:published_time"),
    ("itemprop", "datePublished"),
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
    soup = BeautifulSoup(html, "lxml")
    doc = trafilatura.bare_extraction(
        html, url=url, with_metadata=True, include_comments=False, include_tables=False
    )
    traf = doc.as_dict() if doc is not None else {}
    text = (traf.get("text") or "").strip()
    title = (traf.get("title") or "").strip()
    method = "trafilatura"
    if not text:
        text = _soup_text(soup)
        method = "beautifulsoup"
    if not title:
        title = _soup_title(soup)
        method = "trafilatura+bs4-title" if method == "trafilatura" else method
    if not text:
        raise ExtractionError("no article text found")
    if not title:
        title = text.split("\n", 1)[0][:200]
    return ExtractedArticle(
        url=url,
        canonical_url=_canonical(soup, url),
        title=" ".join(title.split()),
        text=text,
        author=_author(soup, traf.get("author")),
        published_at=_published(soup, traf.get("date")),
        language=_language(soup, text, language_hint),
        method=method,
    )


def _canonical(soup: BeautifulSoup, url: str) -> str:
    """Return the page's canonical URL (link rel=canonical, then og:url, then the URL itself)."""
    for tag, attrs, key in (
        ("link", {"rel": "canonical"}, "href"),
        ("meta", {"property": "og:url"}, "content"),
    ):
        node = soup.find(tag, attrs=attrs)
        if node and node.get(key):
            candidate = canonicalize(urljoin(url, node[key].strip()))
            # A canonical link to another host is ignored: a page must not claim another site's URL.
            if candidate and _host(candidate) == _host(url):
                return candidate
    return canonicalize(url) or url


def _host(url: str) -> str:
    """Return the host of a URL without a leading www."""
    host = (urlsplit(url).hostname or "").lower()
    return host.removeprefix("www.")


def _soup_title(soup: BeautifulSoup) -> str:
    """Return the best title BeautifulSoup can find."""
    for attrs in ({"property": "og:title"}, {"name": "twitter:title"}):
        node = soup.find("meta", attrs=attrs)
        if node and node.get("content", "").strip():
            return node["content"].strip()
    for node in (soup.find("h1"), soup.title):
        if node and node.get_text(strip=True):
            return node.get_text(" ", strip=True)
    return ""


def _soup_text(soup: BeautifulSoup) -> str:
    """Return paragraph text from <article> (or the whole body) when trafilatura finds nothing."""
    for junk in soup(["script", "style", "nav", "header", "footer", "aside", "form", "noscript"]):
        junk.decompose()
    root = soup.find("article") or soup.find("main") or soup.body or soup
    blocks = [n.get_text(" ", strip=True) for n in root.find_all(["p", "h2", "h3", "li"])]
    return "\n".join(b for b in blocks if b)


def _author(soup: BeautifulSoup, traf_author: str | None) -> str | None:
    """Return the author from trafilatura, meta tags or JSON-LD."""
    if traf_author:
        return traf_author.strip()
    for attr, value in _AUTHOR_META:
        node = soup.find("meta", attrs={attr: value})
        if node and node.get("content", "").strip():
            return node["content"].strip()
    for item in _json_ld(soup):
        author = item.get("author")
        if isinstance(author, list) and author:
            author = author[0]
        if isinstance(author, dict):
            author = author.get("name")
        if isinstance(author, str) and author.strip():
            return author.strip()
    return None


def _published(soup: BeautifulSoup, traf_date: str | None) -> datetime | None:
    """Return the publication time, as precise as the page gives it, in UTC."""
    candidates: list[str] = []
    for attr, value in _DATE_META:
        node = soup.find("meta", attrs={attr: value})
        if node and node.get("content"):
            candidates.append(node["content"])
    candidates += [str(item["datePublished"]) for item in _json_ld(soup) if item.get("datePublished")]
    node = soup.find("time", attrs={"datetime": True})
    if node:
        candidates.append(node["datetime"])
    if traf_date:
        candidates.append(traf_date)
    for raw in candidates:
        parsed = parse_datetime(raw)
        if parsed:
            return parsed
    return None


def parse_datetime(raw: str) -> datetime | None:
    """Parse an ISO 8601 date or datetime; naive values are taken as UTC."""
    try:
        value = datetime.fromisoformat(raw.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _language(soup: BeautifulSoup, text: str, hint: str | None) -> str | None:
    """Return an ISO 639-1 code from <html lang>, meta tags, the text itself or the source's hint."""
    html = soup.find("html")
    declared = html.get("lang") if html else None
    if not declared:
        node = soup.find("meta", attrs={"http-equiv": "content-language"}) or soup.find(
            "meta", attrs={"property": "og:locale"}
        )
        declared = node.get("content") if node else None
    if declared:
        code = declared.strip().replace("_", "-").split("-")[0].lower()
        if len(code) == 2 and code.isalpha():
            return code
    if len(text) >= 200:
        return py3langid.classify(text[:5000])[0]
    return hint


def _json_ld(soup: BeautifulSoup) -> list[dict]:
    """Return the JSON-LD objects of the page, flattened, ignoring broken ones."""
    items: list[dict] = []
    for node in soup.find_all("script", attrs={"type": "application/ld+json"}):
        try:
            data = json.loads(node.string or "")
        except (json.JSONDecodeError, TypeError):
            continue
        stack = data if isinstance(data, list) else [data]
        for item in stack:
            if isinstance(item, dict):
                items.extend(item.get("@graph", [item]))
    return [i for i in items if isinstance(i, dict)]
