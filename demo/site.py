"""Demo news website: several outlets with feeds and article pages, served on 127.0.0.1 for demos/tests."""

from __future__ import annotations

import argparse
import email.utils
import hashlib
import html
import json
import logging
import os
import re
import signal
import string
import sys
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit
from xml.sax.saxutils import escape as xml_escape
from xml.sax.saxutils import quoteattr

import yaml

log = logging.getLogger("demo.site")

DEMO_DIR = Path(__file__).resolve().parent
ARTICLES_DIR = DEMO_DIR / "articles"
TEMPLATES_DIR = DEMO_DIR / "templates"
FALLBACK_SEED_FILE = ARTICLES_DIR / "fallback_seed.txt"
SHARED_DIR_ENV = "NEWSDEDUP_SHARED_DIR"
SEED_STORY = "seed"
FEED_KINDS = ("rss", "atom")
DERIVE_KINDS = ("whole", "shortened", "reheadlined", "copyedit", "update")

_TR_MONTHS = (
    "Ocak", "Şubat", "Mart", "Nisan", "Mayıs", "Haziran",
    "Temmuz", "Ağustos", "Eylül", "Ekim", "Kasım", "Aralık",
)  # fmt: skip
_TR_ASCII = str.maketrans("çğıöşüÇĞİÖŞÜâîûÂÎÛ", "cgiosuCGIOSUaiuAIU")
_PHOTO_SVG = (
    '<svg xmlns="http://www.w3.org/2000/svg" width="640" height="360" viewBox="0 0 640 360">'
    '<rect width="640" height="360" fill="#9aa7b1"/><circle cx="500" cy="90" r="40" fill="#f4d35e"/>'
    '<path d="M0 300 L180 160 L320 260 L440 190 L640 320 L640 360 L0 360 Z" fill="#52606d"/></svg>'
)

Block = tuple[str, str]  # (kind, text) with kind in {"p", "h2", "caption"}


# --------------------------------------------------------------------------- data model


@dataclass(frozen=True)
class Outlet:
    """One news outlet served under its own path prefix."""

    name: str
    title: str
    language: str
    tagline: str
    feeds: tuple[str, ...]
    jsonld: bool
    rich_meta: bool
    share_in_article: bool
    sections: tuple[str, ...]
    labels: dict[str, str]
    raw: dict[str, Any] = field(repr=False, compare=False)

    def home(self) -> str:
        """Return the path of the outlet's index page."""
        return f"/{self.name}/"

    def feed_path(self, kind: str) -> str:
        """Return the path of the outlet's feed of the given kind."""
        return f"/{self.name}/{kind}.xml"


@dataclass(frozen=True)
class Article:
    """One article page, original or syndicated copy."""

    outlet: str
    slug: str
    story: str
    title: str
    author: str
    published: datetime
    language: str
    section: str
    blocks: tuple[Block, ...]
    derive_kind: str = "original"
    derived_from: str | None = None
    updated: datetime | None = None
    hard_negative: str | None = None

    @property
    def path(self) -> str:
        """Return the article's URL path: /<outlet>/<yyyy>/<mm>/<slug>.html."""
        return f"/{self.outlet}/{self.published:%Y}/{self.published:%m}/{self.slug}.html"

    @property
    def paragraphs(self) -> list[str]:
        """Return the body paragraphs (not headings or captions)."""
        return [text for kind, text in self.blocks if kind == "p"]

    def word_count(self) -> int:
        """Return the number of words in the body paragraphs."""
        return sum(len(p.split()) for p in self.paragraphs)


@dataclass(frozen=True)
class Corpus:
    """All outlets and articles, with where the seed article came from."""

    outlets: tuple[Outlet, ...]
    articles: tuple[Article, ...]
    seed_source: str
    seed_path: str

    def outlet(self, name: str) -> Outlet:
        """Return the outlet with this name."""
        return next(o for o in self.outlets if o.name == name)

    def articles_of(self, outlet: str) -> list[Article]:
        """Return an outlet's articles, newest first."""
        return sorted((a for a in self.articles if a.outlet == outlet), key=lambda a: a.published, reverse=True)


# --------------------------------------------------------------------------- seed article


def shared_dir() -> Path:
    """Return the shared directory (env NEWSDEDUP_SHARED_DIR, else ../shared next to the repo)."""
    override = os.environ.get(SHARED_DIR_ENV)
    return Path(override) if override else Path(__file__).resolve().parents[1].parent / "shared"


def seed_file() -> Path | None:
    """Return the first seed text file in the shared dir, or None when there is none."""
    folder = shared_dir() / "seed"
    if not folder.is_dir():
        return None
    return next((p for p in sorted(folder.glob("*.txt")) if p.is_file() and _usable_seed(p)), None)


def _usable_seed(path: Path) -> bool:
    """Tell whether a seed file has a headline and at least one body paragraph."""
    try:
        _, blocks = parse_seed_text(path.read_text("utf-8", errors="replace"))
    except (OSError, ValueError):
        return False
    return any(kind == "p" for kind, _ in blocks)


def seed_source() -> str:
    """Tell which seed article will be served: "shared" (the seed file) or "fallback" (our own)."""
    return "shared" if seed_file() is not None else "fallback"


def parse_seed_text(text: str) -> tuple[str, list[Block]]:
    """Split a seed text into its headline (first non-empty line) and body blocks, one per line."""
    lines = [" ".join(line.split()) for line in text.lstrip("\ufeff").splitlines()]
    lines = [line for line in lines if line]
    if not lines:
        raise ValueError("seed text is empty")
    blocks: list[Block] = [("h2" if line.isupper() else "p", line) for line in lines[1:]]
    return lines[0], blocks


def _read_seed() -> tuple[str, str]:
    """Return (source, text) of the seed article, logging a notice when falling back."""
    path = seed_file()
    if path is not None:
        return "shared", path.read_text("utf-8", errors="replace")
    log.warning(
        "demo site: no seed text in %s; serving the built-in fallback Turkish article instead",
        shared_dir() / "seed",
    )
    return "fallback", FALLBACK_SEED_FILE.read_text("utf-8")


# --------------------------------------------------------------------------- loading and derivation


def slugify(text: str, max_len: int = 80) -> str:
    """Return a lower-case ASCII slug (Turkish letters transliterated), cut at a word boundary."""
    ascii_text = re.sub(r"['’]", "", text).translate(_TR_ASCII).lower()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text).strip("-")
    if len(slug) > max_len:
        slug = slug[:max_len].rsplit("-", 1)[0]
    return slug or "haber"


def _parse_time(value: object, where: str) -> datetime:
    """Parse an ISO 8601 timestamp that must carry a timezone."""
    stamp = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    if stamp.tzinfo is None:
        raise ValueError(f"{where}: timestamp {value!r} has no timezone")
    return stamp


def _blocks_from_entry(entry: dict[str, Any], where: str) -> list[Block]:
    """Build body blocks from an entry's paragraphs and optional headings {index: heading}."""
    paragraphs = entry.get("paragraphs") or []
    headings = {int(k): str(v) for k, v in (entry.get("headings") or {}).items()}
    if not paragraphs or not all(isinstance(p, str) and p.strip() for p in paragraphs):
        raise ValueError(f"{where}: 'paragraphs' must be a list of non-empty strings")
    blocks: list[Block] = []
    for index, para in enumerate(paragraphs):
        if index in headings:
            blocks.append(("h2", headings[index]))
        blocks.append(("p", " ".join(para.split())))
    return blocks


def _shorten(blocks: list[Block], keep: float) -> list[Block]:
    """Keep the first `keep` share of the paragraphs (with their headings), dropping a dangling heading."""
    total = sum(1 for kind, _ in blocks if kind == "p")
    wanted = max(1, round(total * keep))
    out: list[Block] = []
    seen = 0
    for kind, text in blocks:
        if seen >= wanted:
            break
        out.append((kind, text))
        seen += kind == "p"
    while out and out[-1][0] != "p":
        out.pop()
    return out


def _requote(text: str, style: str) -> str:
    """Change the quotation marks of a paragraph to straight or curly ones."""
    if style == "straight":
        return text.translate(str.maketrans({"“": '"', "”": '"', "„": '"', "‘": "'", "’": "'"}))
    if style == "curly":
        return re.sub(r'"([^"]*)"', "“\\1”", text)
    raise ValueError(f"unknown quote style {style!r}")


def _derive(source: Article, spec: dict[str, Any], where: str) -> list[Block]:
    """Apply a syndication recipe (shorten, replace, requote, dateline, caption, append, credit)."""
    blocks = list(source.blocks)
    if "keep" in spec:
        keep = float(spec["keep"])
        if not 0.6 <= keep <= 0.85:
            raise ValueError(f"{where}: keep={keep} outside 0.6-0.85")
        blocks = _shorten(blocks, keep)
    for old, new in spec.get("replace", []):
        if not any(old in text for _, text in blocks):
            raise ValueError(f"{where}: replace target {old!r} not found in {source.path}")
        blocks = [(kind, text.replace(old, new)) for kind, text in blocks]
    if "quotes" in spec:
        blocks = [(kind, _requote(text, spec["quotes"])) for kind, text in blocks]
    if "dateline" in spec:
        first = next(i for i, (kind, _) in enumerate(blocks) if kind == "p")
        blocks[first] = ("p", f"{spec['dateline']} {blocks[first][1]}")
    if "caption" in spec:
        after = int(spec["caption"]["after"])
        para_indexes = [i for i, (kind, _) in enumerate(blocks) if kind == "p"]
        blocks.insert(para_indexes[after] + 1, ("caption", str(spec["caption"]["text"])))
    blocks.extend(("p", " ".join(str(p).split())) for p in spec.get("append", []))
    if "credit" in spec:
        blocks.append(("p", str(spec["credit"])))
    return blocks


def _load_outlet(data: dict[str, Any], where: str) -> Outlet:
    """Build an Outlet from the `outlet:` mapping of a data file."""
    info = data["outlet"]
    feeds = tuple(info["feeds"])
    if not feeds or any(kind not in FEED_KINDS for kind in feeds):
        raise ValueError(f"{where}: feeds must be a non-empty subset of {FEED_KINDS}")
    return Outlet(
        name=info["name"],
        title=info["title"],
        language=info["language"],
        tagline=info["tagline"],
        feeds=feeds,
        jsonld=bool(info.get("jsonld", False)),
        rich_meta=bool(info.get("rich_meta", True)),
        share_in_article=bool(info.get("share_in_article", False)),
        sections=tuple(info["sections"]),
        labels={str(k): str(v) for k, v in info["labels"].items()},
        raw=info,
    )


def load_corpus() -> Corpus:
    """Load all outlets and articles from demo/articles, resolve syndicated copies and add the seed."""
    outlets: list[Outlet] = []
    originals: list[Article] = []
    pending: list[tuple[Outlet, dict[str, Any], str]] = []
    seed_specs: list[tuple[Outlet, dict[str, Any]]] = []
    for path in sorted(ARTICLES_DIR.glob("*.yaml")):
        data = yaml.safe_load(path.read_text("utf-8"))
        outlet = _load_outlet(data, path.name)
        outlets.append(outlet)
        if "seed" in data:
            seed_specs.append((outlet, data["seed"]))
        for index, entry in enumerate(data.get("articles", [])):
            where = f"{path.name} article #{index + 1} ({entry.get('slug')})"
            if "derive" in entry:
                pending.append((outlet, entry, where))
                continue
            originals.append(
                Article(
                    outlet=outlet.name,
                    slug=entry["slug"],
                    story=entry["story"],
                    title=" ".join(entry["title"].split()),
                    author=entry["author"],
                    published=_parse_time(entry["published"], where),
                    language=outlet.language,
                    section=entry["section"],
                    blocks=tuple(_blocks_from_entry(entry, where)),
                    hard_negative=entry.get("hard_negative"),
                )
            )
    by_story = {a.story: a for a in originals}
    if len(by_story) != len(originals):
        raise ValueError("two original articles share one story id; copies must use 'derive'")
    articles = list(originals)
    for outlet, entry, where in pending:
        spec = entry["derive"]
        source = by_story[spec["from"]]
        if spec.get("kind") not in DERIVE_KINDS:
            raise ValueError(f"{where}: derive.kind must be one of {DERIVE_KINDS}")
        articles.append(
            Article(
                outlet=outlet.name,
                slug=entry["slug"],
                story=source.story,
                title=" ".join(entry.get("title", source.title).split()),
                author=entry.get("author", source.author),
                published=_parse_time(entry["published"], where),
                language=outlet.language,
                section=entry.get("section", source.section),
                blocks=tuple(_derive(source, spec, where)),
                derive_kind=spec["kind"],
                derived_from=source.path,
                updated=_parse_time(entry["updated"], where) if "updated" in entry else None,
            )
        )
    source_name, text = _read_seed()
    articles.extend(_seed_articles(text, seed_specs))
    paths = [a.path for a in articles]
    if len(set(paths)) != len(paths):
        raise ValueError("two articles share one URL path")
    seed_path = next(a.path for a in articles if a.story == SEED_STORY and a.derive_kind == "original")
    return Corpus(tuple(outlets), tuple(articles), source_name, seed_path)


def _seed_articles(text: str, specs: list[tuple[Outlet, dict[str, Any]]]) -> list[Article]:
    """Render the seed text as the original article of one outlet and as shortened copies elsewhere."""
    headline, blocks = parse_seed_text(text)
    slug = slugify(headline)
    out: list[Article] = []
    original_path = ""
    for outlet, spec in sorted(specs, key=lambda item: "keep" in item[1]):
        body = _shorten(blocks, float(spec["keep"])) if "keep" in spec else blocks
        article = Article(
            outlet=outlet.name,
            slug=slug,
            story=SEED_STORY,
            title=headline,
            author=spec["author"],
            published=_parse_time(spec["published"], f"{outlet.name} seed"),
            language=outlet.language,
            section=spec["section"],
            blocks=tuple(body),
            derive_kind="shortened" if "keep" in spec else "original",
            derived_from=original_path or None,
        )
        original_path = original_path or article.path
        out.append(article)
    if sum(a.derive_kind == "original" for a in out) != 1:
        raise ValueError("exactly one outlet must host the seed article without 'keep'")
    return out


def ground_truth() -> dict[str, str]:
    """Return the intended duplicate groups: URL path -> story id (copies share their original's id)."""
    return {a.path: a.story for a in load_corpus().articles}


def hard_negatives() -> list[tuple[str, str]]:
    """Return pairs of URL paths of different stories that share a quoted background paragraph."""
    return _hard_negative_pairs(load_corpus().articles)


def _hard_negative_pairs(articles: tuple[Article, ...]) -> list[tuple[str, str]]:
    """Pair up the articles that carry the same hard_negative label."""
    groups: dict[str, list[str]] = {}
    for article in articles:
        if article.hard_negative:
            groups.setdefault(article.hard_negative, []).append(article.path)
    return [(paths[0], other) for paths in groups.values() for other in paths[1:]]


# --------------------------------------------------------------------------- rendering


def esc(text: str) -> str:
    """Escape text for HTML element content and attribute values."""
    return html.escape(text, quote=True)


def _template(name: str) -> string.Template:
    """Read one of the outlet page shells from demo/templates."""
    return string.Template((TEMPLATES_DIR / f"{name}.html").read_text("utf-8"))


def _human_date(stamp: datetime, style: str) -> str:
    """Format a timestamp the way the outlet prints it in bylines."""
    if style == "tr_long":
        return f"{stamp.day} {_TR_MONTHS[stamp.month - 1]} {stamp.year}, {stamp:%H:%M}"
    if style == "tr_numeric":
        return f"{stamp:%d.%m.%Y - %H:%M}"
    if style == "en_wire":
        return f"{stamp.astimezone(UTC):%b %d, %Y %H:%M} UTC"
    return f"{stamp.day} {stamp:%B %Y}, {stamp:%H:%M}"


class Renderer:
    """Turns the corpus into pages with absolute URLs for one base URL."""

    def __init__(self, corpus: Corpus, base_url: str) -> None:
        """Remember the corpus, the base URL and each outlet's page shell."""
        self.corpus = corpus
        self.base_url = base_url.rstrip("/")
        self.shells = {o.name: _template(o.name) for o in corpus.outlets}

    def url(self, path: str) -> str:
        """Return the absolute URL of a path on this server."""
        return self.base_url + path

    # -- HTML pages

    def _page(self, outlet: Outlet, title: str, head: str, main: str, body_class: str) -> str:
        """Wrap page content in the outlet's shell (header, nav, cookie notice, footer)."""
        labels = outlet.labels
        nav = "\n".join(
            f'<li><a href="{esc(self._section_path(outlet, s))}">{esc(s)}</a></li>' for s in outlet.sections
        )
        alternates = "\n".join(
            f'<link rel="alternate" type="application/{k}+xml" title="{esc(outlet.title)} {k.upper()}" '
            f'href="{esc(self.url(outlet.feed_path(k)))}">'
            for k in outlet.feeds
        )
        return self.shells[outlet.name].substitute(
            lang=outlet.language,
            title=esc(title),
            head=head + "\n" + alternates,
            body_class=body_class,
            home=esc(outlet.home()),
            site_title=esc(outlet.title),
            tagline=esc(outlet.tagline),
            nav=nav,
            main=main,
            year="2026",
            cookie_text=esc(labels["cookie_text"]),
            cookie_button=esc(labels["cookie_button"]),
            rss=esc(self.url(outlet.feed_path(outlet.feeds[0]))),
        )

    @staticmethod
    def _section_path(outlet: Outlet, section: str) -> str:
        """Return the path of one section page of an outlet."""
        return f"{outlet.home()}{slugify(section)}/"

    def article_page(self, article: Article) -> str:
        """Render one article page with metadata, boilerplate and related stories."""
        outlet = self.corpus.outlet(article.outlet)
        labels = outlet.labels
        canonical = self.url(article.path)
        published = article.published.isoformat()
        lead = article.paragraphs[0]
        shown = _human_date(article.published, labels["date_style"])
        head = [
            f'<link rel="canonical" href="{esc(canonical)}">',
            f'<meta name="author" content="{esc(article.author)}">',
            f'<meta property="article:published_time" content="{esc(published)}">',
            f'<meta property="og:title" content="{esc(article.title)}">',
        ]
        if outlet.rich_meta:
            head += [
                f'<meta name="description" content="{esc(_teaser(lead, 40))}">',
                '<meta property="og:type" content="article">',
                f'<meta property="og:url" content="{esc(canonical)}">',
                f'<meta property="og:site_name" content="{esc(outlet.title)}">',
                f'<meta property="og:description" content="{esc(_teaser(lead, 40))}">',
                f'<meta property="og:locale" content="{"tr_TR" if outlet.language == "tr" else "en_GB"}">',
                f'<meta property="article:section" content="{esc(article.section)}">',
                '<meta name="twitter:card" content="summary_large_image">',
            ]
            if article.updated:
                head.append(f'<meta property="article:modified_time" content="{esc(article.updated.isoformat())}">')
        if outlet.jsonld:
            head.append(self._jsonld(article, outlet, canonical))
        byline = (
            f'<div class="byline"><span class="author">{esc(labels["by"])} {esc(article.author)}</span> '
            + (
                f'<time datetime="{esc(published)}">{esc(shown)}</time>'
                if outlet.rich_meta
                else f'<span class="date">{esc(shown)}</span>'
            )
            + (
                f' <span class="updated">{esc(labels["updated"])} '
                f"{esc(_human_date(article.updated, labels['date_style']))}</span>"
                if article.updated
                else ""
            )
            + "</div>"
        )
        share = self._share(outlet, article, canonical)
        body = "\n".join(self._block(kind, text) for kind, text in article.blocks)
        inside = share if outlet.share_in_article else ""
        outside = "" if outlet.share_in_article else share
        main = (
            f'<nav class="breadcrumb"><a href="{esc(outlet.home())}">{esc(labels["home"])}</a> &rsaquo; '
            f'<a href="{esc(self._section_path(outlet, article.section))}">{esc(article.section)}</a></nav>\n'
            f'<article class="story">\n<header class="story-head">\n<h1>{esc(article.title)}</h1>\n{byline}\n'
            + (inside + "\n" if inside else "")
            + f'</header>\n<div class="story-body">\n{body}\n</div>\n</article>\n'
            + (outside + "\n" if outside else "")
            + self._related(outlet, article)
        )
        return self._page(outlet, f"{article.title} | {outlet.title}", "\n".join(head), main, "article-page")

    @staticmethod
    def _block(kind: str, text: str) -> str:
        """Render one body block."""
        if kind == "h2":
            return f"<h2>{esc(text)}</h2>"
        if kind == "caption":
            return (
                f'<figure class="photo"><img src="/static/photo.svg" alt="{esc(text)}" width="640" '
                'height="360">'
                f"<figcaption>{esc(text)}</figcaption></figure>"
            )
        return f"<p>{esc(text)}</p>"

    def _jsonld(self, article: Article, outlet: Outlet, canonical: str) -> str:
        """Return a schema.org NewsArticle JSON-LD script element."""
        data = {
            "@context": "https://schema.org",
            "@type": "NewsArticle",
            "headline": article.title,
            "mainEntityOfPage": {"@type": "WebPage", "@id": canonical},
            "url": canonical,
            "datePublished": article.published.isoformat(),
            "dateModified": (article.updated or article.published).isoformat(),
            "author": [{"@type": "Person", "name": article.author}],
            "publisher": {"@type": "Organization", "name": outlet.title, "url": self.url(outlet.home())},
            "articleSection": article.section,
            "inLanguage": outlet.language,
            "description": _teaser(article.paragraphs[0], 40),
        }
        payload = json.dumps(data, ensure_ascii=False, indent=1).replace("<", "\\u003c")
        return f'<script type="application/ld+json">\n{payload}\n</script>'

    @staticmethod
    def _share(outlet: Outlet, article: Article, canonical: str) -> str:
        """Return the row of share buttons."""
        target = quote(canonical, safe="")
        text = quote(article.title, safe="")
        links = [
            ("facebook", "Facebook", f"https://www.facebook.com/sharer/sharer.php?u={target}"),
            ("x", "X", f"https://x.com/intent/post?url={target}&text={text}"),
            ("whatsapp", "WhatsApp", f"https://api.whatsapp.com/send?text={text}%20{target}"),
            ("email", outlet.labels["email"], f"mailto:?subject={text}&body={target}"),
        ]
        buttons = " ".join(
            f'<a class="share-{cls}" href="{esc(href)}" rel="nofollow">{esc(label)}</a>' for cls, label, href in links
        )
        return f'<div class="share-bar"><span>{esc(outlet.labels["share"])}</span> {buttons}</div>'

    def _related(self, outlet: Outlet, article: Article) -> str:
        """Return the "related stories" aside: same section first, then the newest."""
        others = [a for a in self.corpus.articles_of(outlet.name) if a.path != article.path]
        others.sort(key=lambda a: a.section != article.section)
        items = "\n".join(f'<li><a href="{esc(self.url(a.path))}">{esc(a.title)}</a></li>' for a in others[:4])
        heading = esc(outlet.labels["related"])
        return f'<aside class="related">\n<h3>{heading}</h3>\n<ul>\n{items}\n</ul>\n</aside>'

    def index_page(self, outlet: Outlet, section: str | None = None) -> str:
        """Render the outlet's front page or one section page."""
        articles = self.corpus.articles_of(outlet.name)
        if section is not None:
            articles = [a for a in articles if a.section == section]
        items = "\n".join(
            f'<li class="teaser"><h2><a href="{esc(self.url(a.path))}">{esc(a.title)}</a></h2>'
            f'<span class="section">{esc(a.section)}</span> &middot; '
            f'<span class="date">{esc(_human_date(a.published, outlet.labels["date_style"]))}</span>'
            f"<p>{esc(_teaser(a.paragraphs[0], 30))}</p></li>"
            for a in articles
        )
        heading = section or outlet.labels["latest"]
        main = f'<section class="latest">\n<h1>{esc(heading)}</h1>\n<ul class="teasers">\n{items}\n</ul>\n</section>'
        path = outlet.home() + (slugify(section) + "/" if section else "")
        head = f'<link rel="canonical" href="{esc(self.url(path))}">'
        title = f"{section} | {outlet.title}" if section else f"{outlet.title} - {outlet.tagline}"
        return self._page(outlet, title, head, main, "index-page")

    def root_page(self) -> str:
        """Render the server's root page listing the outlets."""
        items = "\n".join(
            f'<li><a href="{esc(self.url(o.home()))}">{esc(o.title)}</a> ({esc(o.language)}) &ndash; '
            + ", ".join(f'<a href="{esc(self.url(o.feed_path(k)))}">{k.upper()}</a>' for k in o.feeds)
            + "</li>"
            for o in self.corpus.outlets
        )
        return (
            '<!DOCTYPE html>\n<html lang="en">\n<head><meta charset="utf-8"><title>newsdedup demo news sites'
            "</title></head>\n<body>\n<h1>newsdedup demo news sites</h1>\n"
            f"<ul>\n{items}\n</ul>\n</body>\n</html>\n"
        )

    # -- feeds

    def rss(self, outlet: Outlet) -> str:
        """Render the outlet's RSS 2.0 feed."""
        articles = self.corpus.articles_of(outlet.name)
        items = []
        for a in articles:
            link = self.url(a.path)
            items.append(
                "<item>\n"
                f"<title>{xml_escape(a.title)}</title>\n"
                f"<link>{xml_escape(link)}</link>\n"
                f'<guid isPermaLink="true">{xml_escape(link)}</guid>\n'
                f"<pubDate>{email.utils.format_datetime(a.published)}</pubDate>\n"
                f"<dc:creator>{xml_escape(a.author)}</dc:creator>\n"
                f"<category>{xml_escape(a.section)}</category>\n"
                f"<description>{xml_escape(_teaser(a.paragraphs[0], 45))}</description>\n"
                "</item>"
            )
        newest = max(a.published for a in articles)
        return (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            '<rss version="2.0" xmlns:atom="http://www.w3.org/2005/Atom" '
            'xmlns:dc="http://purl.org/dc/elements/1.1/">\n<channel>\n'
            f"<title>{xml_escape(outlet.title)}</title>\n"
            f"<link>{xml_escape(self.url(outlet.home()))}</link>\n"
            f"<description>{xml_escape(outlet.tagline)}</description>\n"
            f"<language>{outlet.language}</language>\n"
            f"<lastBuildDate>{email.utils.format_datetime(newest)}</lastBuildDate>\n"
            f'<atom:link href={quoteattr(self.url(outlet.feed_path("rss")))} rel="self" '
            'type="application/rss+xml"/>\n' + "\n".join(items) + "\n</channel>\n</rss>\n"
        )

    def atom(self, outlet: Outlet) -> str:
        """Render the outlet's Atom 1.0 feed."""
        articles = self.corpus.articles_of(outlet.name)
        entries = []
        for a in articles:
            link = self.url(a.path)
            entries.append(
                "<entry>\n"
                f"<id>tag:{outlet.name}.demo,{a.published:%Y-%m-%d}:{a.slug}</id>\n"
                f'<title type="text">{xml_escape(a.title)}</title>\n'
                f'<link rel="alternate" type="text/html" href={quoteattr(link)}/>\n'
                f"<published>{a.published.isoformat()}</published>\n"
                f"<updated>{(a.updated or a.published).isoformat()}</updated>\n"
                f"<author><name>{xml_escape(a.author)}</name></author>\n"
                f"<category term={quoteattr(a.section)}/>\n"
                f'<summary type="text">{xml_escape(_teaser(a.paragraphs[0], 45))}</summary>\n'
                "</entry>"
            )
        newest = max((a.updated or a.published) for a in articles)
        self_url = self.url(outlet.feed_path("atom"))
        return (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f'<feed xmlns="http://www.w3.org/2005/Atom" xml:lang="{outlet.language}">\n'
            f"<id>tag:{outlet.name}.demo,2026:feed</id>\n"
            f"<title>{xml_escape(outlet.title)}</title>\n"
            f"<subtitle>{xml_escape(outlet.tagline)}</subtitle>\n"
            f"<updated>{newest.isoformat()}</updated>\n"
            f'<link rel="self" type="application/atom+xml" href={quoteattr(self_url)}/>\n'
            f'<link rel="alternate" type="text/html" href={quoteattr(self.url(outlet.home()))}/>\n'
            + "\n".join(entries)
            + "\n</feed>\n"
        )

    def sitemap(self, outlet: Outlet) -> str:
        """Render the outlet's Google News sitemap."""
        urls = "\n".join(
            f"<url><loc>{xml_escape(self.url(a.path))}</loc>"
            f"<lastmod>{(a.updated or a.published).isoformat()}</lastmod>"
            f"<news:news><news:publication><news:name>{xml_escape(outlet.title)}</news:name>"
            f"<news:language>{outlet.language}</news:language></news:publication>"
            f"<news:publication_date>{a.published.isoformat()}</news:publication_date>"
            f"<news:title>{xml_escape(a.title)}</news:title></news:news></url>"
            for a in self.corpus.articles_of(outlet.name)
        )
        return (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            '<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9" '
            'xmlns:news="http://www.google.com/schemas/sitemap-news/0.9">\n' + urls + "\n</urlset>\n"
        )

    def robots(self) -> str:
        """Render robots.txt: everything allowed except /private/, with the sitemaps listed."""
        maps = "\n".join(f"Sitemap: {self.url(f'/{o.name}/sitemap.xml')}" for o in self.corpus.outlets)
        return f"User-agent: *\nDisallow: /private/\nAllow: /\n\n{maps}\n"


def _teaser(text: str, words: int) -> str:
    """Return the first `words` words of a paragraph, with an ellipsis when cut."""
    parts = text.split()
    return text if len(parts) <= words else " ".join(parts[:words]) + " …"


# --------------------------------------------------------------------------- HTTP server


@dataclass(frozen=True)
class Page:
    """One prepared response body."""

    content_type: str
    body: bytes
    last_modified: datetime
    status: int = HTTPStatus.OK

    @property
    def etag(self) -> str:
        """Return a strong ETag derived from the body."""
        return '"' + hashlib.sha1(self.body, usedforsecurity=False).hexdigest()[:20] + '"'


def build_pages(corpus: Corpus, base_url: str) -> dict[str, Page]:
    """Render every page, feed and auxiliary file of the site for one base URL."""
    r = Renderer(corpus, base_url)
    html_type = "text/html; charset=utf-8"
    started = datetime.now(UTC).replace(microsecond=0)
    pages: dict[str, Page] = {
        "/": Page(html_type, r.root_page().encode(), started),
        "/robots.txt": Page("text/plain; charset=utf-8", r.robots().encode(), started),
        "/static/photo.svg": Page("image/svg+xml", _PHOTO_SVG.encode(), started),
        "/private/": Page(
            html_type,
            b"<!DOCTYPE html><title>Forbidden</title><p>Staff only.</p>",
            started,
            HTTPStatus.FORBIDDEN,
        ),
    }
    for outlet in corpus.outlets:
        articles = corpus.articles_of(outlet.name)
        newest = max((a.updated or a.published) for a in articles)
        pages[outlet.home()] = Page(html_type, r.index_page(outlet).encode(), newest)
        for section in sorted({a.section for a in articles} | set(outlet.sections)):
            pages[outlet.home() + slugify(section) + "/"] = Page(
                html_type, r.index_page(outlet, section).encode(), newest
            )
        if "rss" in outlet.feeds:
            pages[outlet.feed_path("rss")] = Page("application/rss+xml; charset=utf-8", r.rss(outlet).encode(), newest)
        if "atom" in outlet.feeds:
            pages[outlet.feed_path("atom")] = Page(
                "application/atom+xml; charset=utf-8", r.atom(outlet).encode(), newest
            )
        pages[f"/{outlet.name}/sitemap.xml"] = Page(
            "application/xml; charset=utf-8", r.sitemap(outlet).encode(), newest
        )
        for article in articles:
            pages[article.path] = Page(
                html_type, r.article_page(article).encode(), article.updated or article.published
            )
    return pages


class _Server(ThreadingHTTPServer):
    """Threading HTTP server holding the prepared pages."""

    daemon_threads = True
    pages: dict[str, Page]


class _Handler(BaseHTTPRequestHandler):
    """Serves prepared pages with ETag / Last-Modified and 304 answers to conditional requests."""

    server: _Server
    server_version = "newsdedup-demo/1.0"

    def do_HEAD(self) -> None:
        """Answer a HEAD request."""
        self._respond(head=True)

    def do_GET(self) -> None:
        """Answer a GET request."""
        self._respond(head=False)

    def _respond(self, head: bool) -> None:
        """Look the path up and send the page, a redirect, a 304 or a 404."""
        path = urlsplit(self.path).path
        pages = self.server.pages
        page = pages.get(path)
        if page is None and path.startswith("/private/"):
            page = pages["/private/"]
        if page is None and path + "/" in pages:
            self.send_response(HTTPStatus.MOVED_PERMANENTLY)
            self.send_header("Location", path + "/")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if page is None:
            body = b'<!DOCTYPE html><html lang="en"><title>404 Not Found</title><h1>Not Found</h1></html>'
            page = Page("text/html; charset=utf-8", body, datetime.now(UTC), HTTPStatus.NOT_FOUND)
        elif page.status == HTTPStatus.OK and self._not_modified(page):
            self.send_response(HTTPStatus.NOT_MODIFIED)
            self.send_header("ETag", page.etag)
            self.end_headers()
            return
        self.send_response(page.status)
        self.send_header("Content-Type", page.content_type)
        self.send_header("Content-Length", str(len(page.body)))
        if page.status == HTTPStatus.OK:
            self.send_header("ETag", page.etag)
            self.send_header("Last-Modified", email.utils.format_datetime(page.last_modified.astimezone(UTC), True))
            self.send_header("Cache-Control", "max-age=60")
        self.end_headers()
        if not head:
            self.wfile.write(page.body)

    def _not_modified(self, page: Page) -> bool:
        """Tell whether the request's validators match the page."""
        if_none_match = self.headers.get("If-None-Match")
        if if_none_match is not None:
            return page.etag in [tag.strip() for tag in if_none_match.split(",")] or if_none_match.strip() == "*"
        since = self.headers.get("If-Modified-Since")
        if since:
            try:
                stamp = email.utils.parsedate_to_datetime(since)
            except (TypeError, ValueError):
                return False
            if stamp.tzinfo is None:
                stamp = stamp.replace(tzinfo=UTC)
            return page.last_modified.replace(microsecond=0) <= stamp
        return False

    def log_message(self, format: str, *args: Any) -> None:
        """Send access log lines to the module logger at debug level."""
        log.debug("%s - %s", self.address_string(), format % args)


class DemoSite:
    """A running demo site: base URL, outlets, article URLs, seed information and stop()."""

    def __init__(self, server: _Server, thread: threading.Thread, corpus: Corpus, base_url: str) -> None:
        """Wrap a started server."""
        self._server = server
        self._thread = thread
        self.corpus = corpus
        self.base_url = base_url
        self.seed_source = corpus.seed_source
        self.seed_url = base_url + corpus.seed_path
        self.outlets: list[dict[str, Any]] = [
            {
                "name": o.name,
                "title": o.title,
                "language": o.language,
                "home": base_url + o.home(),
                "feeds": [(kind, base_url + o.feed_path(kind)) for kind in o.feeds],
                "sitemap": f"{base_url}/{o.name}/sitemap.xml",
            }
            for o in corpus.outlets
        ]

    @property
    def port(self) -> int:
        """Return the TCP port the server listens on."""
        return int(self._server.server_address[1])

    def url(self, path: str) -> str:
        """Return the absolute URL of a path on this site."""
        return self.base_url + path

    def article_urls(self) -> list[str]:
        """Return the absolute URLs of all article pages."""
        return [self.base_url + a.path for a in self.corpus.articles]

    def ground_truth(self) -> dict[str, str]:
        """Return URL path -> story id for every article page of this running site."""
        return {a.path: a.story for a in self.corpus.articles}

    def hard_negatives(self) -> list[tuple[str, str]]:
        """Return pairs of URL paths of different stories that share a quoted background paragraph."""
        return _hard_negative_pairs(self.corpus.articles)

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> DemoSite:
        """Allow `with start() as site:`."""
        return self

    def __exit__(self, *exc: object) -> None:
        """Stop the site on leaving a with block."""
        self.stop()


def start(host: str = "127.0.0.1", port: int = 0) -> DemoSite:
    """Load the articles, bind the server and serve it from a daemon thread."""
    corpus = load_corpus()
    server = _Server((host, port), _Handler)
    bound_host, bound_port = server.server_address[:2]
    url_host = f"[{bound_host}]" if ":" in str(bound_host) else str(bound_host)
    base_url = f"http://{url_host}:{bound_port}"
    server.pages = build_pages(corpus, base_url)
    thread = threading.Thread(target=server.serve_forever, name="demo-site", daemon=True)
    thread.start()
    log.info(
        "demo site serving %d articles from %d outlets at %s (seed: %s)",
        len(corpus.articles),
        len(corpus.outlets),
        base_url,
        corpus.seed_source,
    )
    return DemoSite(server, thread, corpus, base_url)


def write_sources(site: DemoSite, path: str | os.PathLike[str]) -> Path:
    """Write a newsdedup sources YAML file: one feed per outlet plus one `kind: auto` source."""
    sources: list[dict[str, str]] = []
    for outlet in site.outlets:
        kind, url = outlet["feeds"][0]
        sources.append({"name": f"{outlet['name']}-{kind}", "url": url, "kind": kind, "language": outlet["language"]})
    first = site.outlets[0]
    sources.append(
        {
            "name": f"{first['name']}-auto",
            "url": first["sitemap"],
            "kind": "auto",
            "language": first["language"],
        }
    )
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    header = f"# Written by demo/site.py for the demo site at {site.base_url}\n"
    target.write_text(header + yaml.safe_dump({"sources": sources}, sort_keys=False, allow_unicode=True), "utf-8")
    return target


def _write_atomically(path: Path, text: str) -> None:
    """Write a file through a temporary name so readers never see it half-written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, "utf-8")
    tmp.replace(path)


def main(argv: list[str] | None = None) -> int:
    """Run the demo site in the foreground until SIGTERM or SIGINT."""
    parser = argparse.ArgumentParser(description="Serve the newsdedup demo news sites.")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port to bind; 0 picks a free one")
    parser.add_argument("--sources-out", type=Path, help="write a newsdedup sources YAML file here")
    parser.add_argument("--port-file", type=Path, help="write the chosen port here once serving")
    parser.add_argument("--seed-url-file", type=Path, help="write the seed article's URL here")
    parser.add_argument("-v", "--verbose", action="store_true", help="log every request")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(message)s")
    site = start(args.host, args.port)
    stop = threading.Event()

    def _on_signal(signum: int, _frame: object) -> None:
        """Ask the main loop to stop."""
        log.info("demo site: received signal %d, stopping", signum)
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    if args.sources_out:
        write_sources(site, args.sources_out)
    if args.seed_url_file:
        _write_atomically(args.seed_url_file, f"{site.seed_url}\n")
    if args.port_file:
        _write_atomically(args.port_file, f"{site.port}\n")
    print(site.base_url, flush=True)
    while not stop.wait(0.5):
        pass
    site.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
