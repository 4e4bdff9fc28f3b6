"""End-to-end tests of the demo news site: real HTTP, real feeds, real HTML."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import urllib.robotparser
from collections import Counter
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import feedparser
import pytest
import yaml

from demo import site as demo_site

REPO = Path(__file__).resolve().parents[1]


class PageParser(HTMLParser):
    """Collects what the tests check on a page: lang, canonical, metas, JSON-LD and the article blocks."""

    def __init__(self) -> None:
        """Start with nothing collected."""
        super().__init__(convert_charrefs=True)
        self.lang: str | None = None
        self.canonical: str | None = None
        self.meta: dict[str, str] = {}
        self.jsonld = 0
        self.blocks: list[tuple[str, str]] = []
        self._article_depth = 0
        self._current: str | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        """Record the attributes and open blocks we care about."""
        a = {k: v or "" for k, v in attrs}
        if tag == "html":
            self.lang = a.get("lang")
        elif tag == "link" and a.get("rel") == "canonical":
            self.canonical = a.get("href")
        elif tag == "meta" and ("name" in a or "property" in a):
            self.meta[a.get("name") or a.get("property", "")] = a.get("content", "")
        elif tag == "script" and a.get("type") == "application/ld+json":
            self.jsonld += 1
        elif tag == "article":
            self._article_depth += 1
        elif self._article_depth and tag in ("h1", "h2", "p", "figcaption"):
            self._current, self._text = tag, []

    def handle_endtag(self, tag: str) -> None:
        """Close a block."""
        if tag == "article":
            self._article_depth -= 1
        elif tag == self._current:
            self.blocks.append((tag, " ".join("".join(self._text).split())))
            self._current = None

    def handle_data(self, data: str) -> None:
        """Collect text inside an open block."""
        if self._current:
            self._text.append(data)

    def texts(self, *tags: str) -> list[str]:
        """Return the article texts of the given tags, in order."""
        return [text for tag, text in self.blocks if tag in tags]


def fetch(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], str]:
    """GET a URL; return status, headers and decoded body (also for HTTP errors)."""
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read().decode("utf-8")
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read().decode("utf-8", "replace")


def parse_page(url: str) -> PageParser:
    """Fetch an HTML page that must exist and parse it."""
    status, headers, body = fetch(url)
    assert status == 200, url
    assert headers["Content-Type"].startswith("text/html"), url
    parser = PageParser()
    parser.feed(body)
    return parser


def seed_headline(source: str) -> str:
    """Return the headline of the seed text the site should be serving."""
    path = demo_site.seed_file() if source == "shared" else demo_site.FALLBACK_SEED_FILE
    assert path is not None
    return demo_site.parse_seed_text(path.read_text("utf-8"))[0]


@pytest.fixture(scope="module")
def site() -> Iterator[demo_site.DemoSite]:
    """One running demo site for the module."""
    running = demo_site.start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def feed_links(site: demo_site.DemoSite) -> dict[str, list[str]]:
    """Fetch and parse every feed; return feed URL -> entry links."""
    links: dict[str, list[str]] = {}
    for outlet in site.outlets:
        for kind, url in outlet["feeds"]:
            status, headers, body = fetch(url)
            assert status == 200, url
            assert f"{kind}+xml" in headers["Content-Type"]
            parsed = feedparser.parse(body)
            assert not parsed.bozo, (url, parsed.get("bozo_exception"))
            assert parsed.version == ("rss20" if kind == "rss" else "atom10")
            for entry in parsed.entries:
                assert entry.title and entry.link.startswith(site.base_url + "/")
                assert entry.get("published_parsed") is not None
                assert entry.get("summary")
                if kind == "rss":
                    assert entry.id == entry.link  # the guid
            links[url] = [entry.link for entry in parsed.entries]
    return links


def test_outlets_languages_and_article_count(
    site: demo_site.DemoSite, feed_links: dict[str, list[str]]
) -> None:
    """At least four outlets in Turkish and English list at least 44 unique articles across their feeds."""
    assert len(site.outlets) >= 4
    assert {o["language"] for o in site.outlets} == {"tr", "en"}
    unique = {link for links in feed_links.values() for link in links}
    assert len(unique) >= 44
    assert unique == set(site.article_urls())
    assert site.base_url.startswith("http://127.0.0.1:")


def test_every_feed_link_is_an_article_page_with_self_canonical(
    site: demo_site.DemoSite, feed_links: dict[str, list[str]]
) -> None:
    """Each feed link serves HTML whose canonical link is the link itself, with the metadata and body."""
    languages = {o["name"]: o["language"] for o in site.outlets}
    for link in sorted({link for links in feed_links.values() for link in links}):
        page = parse_page(link)
        assert page.canonical == link
        assert page.lang == languages[link.removeprefix(site.base_url).split("/")[1]]
        for key in ("author", "article:published_time", "og:title"):
            assert page.meta.get(key), (link, key)
        assert len(page.texts("h1")) == 1
        assert len(page.texts("p")) >= 4


def test_feed_kinds_per_outlet(site: demo_site.DemoSite) -> None:
    """One outlet offers only RSS, one only Atom; the missing feed is a 404."""
    kinds = {o["name"]: {kind for kind, _ in o["feeds"]} for o in site.outlets}
    rss_only = [name for name, k in kinds.items() if k == {"rss"}]
    atom_only = [name for name, k in kinds.items() if k == {"atom"}]
    assert rss_only and atom_only
    assert any(k == {"rss", "atom"} for k in kinds.values())
    assert fetch(site.url(f"/{rss_only[0]}/atom.xml"))[0] == 404
    assert fetch(site.url(f"/{atom_only[0]}/rss.xml"))[0] == 404
    assert fetch(site.url(f"/{rss_only[0]}/rss.xml"))[0] == 200


def test_robots_txt_and_private_area(site: demo_site.DemoSite) -> None:
    """robots.txt allows everything but /private/."""
    status, headers, body = fetch(site.url("/robots.txt"))
    assert status == 200 and headers["Content-Type"].startswith("text/plain")
    robots = urllib.robotparser.RobotFileParser()
    robots.parse(body.splitlines())
    assert robots.can_fetch("newsdedup", site.article_urls()[0])
    assert not robots.can_fetch("newsdedup", site.url("/private/drafts.html"))
    assert fetch(site.url("/private/drafts.html"))[0] == 403


def test_seed_page_repeats_the_headline(site: demo_site.DemoSite) -> None:
    """The seed page shows the headline as h1 and twice more as body paragraphs, as scraped."""
    headline = seed_headline(site.seed_source)
    page = parse_page(site.seed_url)
    assert page.texts("h1") == [headline]
    assert sum(text == headline for _, text in page.blocks) >= 3
    assert page.texts("p").count(headline) >= 2
    assert all(text.isupper() for text in page.texts("h2"))
    copies = [p for p, story in site.ground_truth().items() if story == demo_site.SEED_STORY]
    assert len(copies) == 2 and len({p.split("/")[1] for p in copies}) == 2
    short = parse_page(site.url(next(p for p in copies if site.url(p) != site.seed_url)))
    full_paragraphs, short_paragraphs = page.texts("p"), short.texts("p")
    assert short_paragraphs == full_paragraphs[: len(short_paragraphs)]
    assert 0.6 <= len(short_paragraphs) / len(full_paragraphs) <= 0.85


def test_metadata_richness_differs_by_outlet(site: demo_site.DemoSite) -> None:
    """Some outlets carry JSON-LD NewsArticle, one only minimal metadata."""
    by_outlet: dict[str, PageParser] = {}
    for url in site.article_urls():
        outlet = url.removeprefix(site.base_url).split("/")[1]
        by_outlet.setdefault(outlet, parse_page(url))
    with_jsonld = [name for name, page in by_outlet.items() if page.jsonld]
    minimal = [name for name, page in by_outlet.items() if "og:type" not in page.meta and not page.jsonld]
    assert with_jsonld and minimal and len(with_jsonld) < len(by_outlet)


def test_syndicated_copies(site: demo_site.DemoSite) -> None:
    """At least five stories appear at more than one outlet, in every kind of copy."""
    truth = site.ground_truth()
    assert set(truth) == {u.removeprefix(site.base_url) for u in site.article_urls()}
    outlets_per_story: dict[str, set[str]] = {}
    for path, story in truth.items():
        outlets_per_story.setdefault(story, set()).add(path.split("/")[1])
    assert sum(len(o) > 1 for o in outlets_per_story.values()) >= 5
    kinds = Counter(a.derive_kind for a in site.corpus.articles)
    for kind in demo_site.DERIVE_KINDS:
        assert kinds[kind] >= 1, kind
    for copy in (a for a in site.corpus.articles if a.derived_from):
        original = parse_page(site.url(copy.derived_from)).texts("p")
        copied = parse_page(site.url(copy.path)).texts("p")
        if copy.derive_kind in ("whole", "reheadlined"):
            assert copied[: len(original)] == original and len(copied) - len(original) <= 1
        elif copy.derive_kind == "shortened":
            assert copied == original[: len(copied)] and 0.6 <= len(copied) / len(original) <= 0.85
        elif copy.derive_kind == "update":
            assert copied[:-1] == original and len(copied) == len(original) + 1
        else:  # copyedit: same paragraphs, a few characters changed
            assert len(copied) == len(original) and copied != original
    reheadlined = next(a for a in site.corpus.articles if a.derive_kind == "reheadlined")
    assert reheadlined.title != next(
        a.title for a in site.corpus.articles if a.path == reheadlined.derived_from
    )


def test_hard_negatives_share_only_a_background_paragraph(site: demo_site.DemoSite) -> None:
    """Hard negatives are different stories sharing exactly one quoted paragraph."""
    pairs = site.hard_negatives()
    assert pairs
    truth = site.ground_truth()
    for left, right in pairs:
        assert truth[left] != truth[right]
        shared = set(parse_page(site.url(left)).texts("p")) & set(parse_page(site.url(right)).texts("p"))
        assert len(shared) == 1


def test_article_data_is_realistic() -> None:
    """Every article of ours has 4-10 paragraphs and 150-600 words, and timezone-aware dates."""
    corpus = demo_site.load_corpus()
    for article in corpus.articles:
        if article.story == demo_site.SEED_STORY and corpus.seed_source == "shared":
            continue  # the shared seed text is not ours to size
        assert 4 <= len(article.paragraphs) <= 10, article.path
        assert 150 <= article.word_count() <= 600, article.path
        assert article.published.tzinfo is not None
    assert demo_site.ground_truth() == {a.path: a.story for a in corpus.articles}


def test_write_sources(site: demo_site.DemoSite, tmp_path: Path) -> None:
    """The sources file lists one feed per outlet plus one auto source, all reachable."""
    path = demo_site.write_sources(site, tmp_path / "sources.yaml")
    data = yaml.safe_load(path.read_text("utf-8"))
    assert list(data) == ["sources"]
    sources = data["sources"]
    assert len(sources) == len(site.outlets) + 1
    assert len({s["name"] for s in sources}) == len(sources)
    assert [s["kind"] for s in sources].count("auto") == 1
    for source in sources:
        assert set(source) == {"name", "url", "kind", "language"}
        assert source["kind"] in ("rss", "atom", "auto") and source["language"] in ("tr", "en")
        assert fetch(source["url"])[0] == 200


def test_conditional_get(site: demo_site.DemoSite) -> None:
    """Feeds answer If-None-Match and If-Modified-Since with 304."""
    url = site.outlets[0]["feeds"][0][1]
    status, headers, _ = fetch(url)
    assert status == 200 and headers["ETag"] and headers["Last-Modified"]
    assert fetch(url, {"If-None-Match": headers["ETag"]})[0] == 304
    assert fetch(url, {"If-Modified-Since": headers["Last-Modified"]})[0] == 304
    assert fetch(url, {"If-None-Match": '"stale"'})[0] == 200


def test_fallback_seed_when_shared_dir_is_empty(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Without a seed file the site serves its own Turkish article with the same repeated-headline flaw."""
    monkeypatch.setenv(demo_site.SHARED_DIR_ENV, str(tmp_path))
    assert demo_site.seed_source() == "fallback"
    with caplog.at_level(logging.WARNING, logger="demo.site"), demo_site.start() as fallback:
        assert fallback.seed_source == "fallback"
        assert any("fallback" in record.getMessage() for record in caplog.records)
        headline = seed_headline("fallback")
        page = parse_page(fallback.seed_url)
        assert page.lang == "tr"
        assert page.texts("h1") == [headline]
        assert page.texts("p").count(headline) == 2
        assert page.texts("h2") and all(text.isupper() for text in page.texts("h2"))
        seed_paths = [p for p, s in fallback.ground_truth().items() if s == demo_site.SEED_STORY]
        assert len(seed_paths) == 2
        for path in seed_paths:
            assert parse_page(fallback.url(path)).texts("p").count(headline) == 2


def test_cli_runs_until_sigterm(tmp_path: Path) -> None:
    """The CLI writes the sources and port files, serves, and exits cleanly on SIGTERM."""
    port_file, sources = tmp_path / "port", tmp_path / "sources.yaml"
    cmd = [sys.executable, str(REPO / "demo" / "site.py"), "--port", "0"]
    cmd += ["--sources-out", str(sources), "--port-file", str(port_file)]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ)
    )
    try:
        deadline = time.monotonic() + 30
        while not port_file.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.1)
        assert port_file.exists(), proc.stderr.read() if proc.poll() is not None else "no port file"
        port = int(port_file.read_text().strip())
        assert fetch(f"http://127.0.0.1:{port}/robots.txt")[0] == 200
        assert f"http://127.0.0.1:{port}/" in sources.read_text("utf-8")
        proc.send_signal(signal.SIGTERM)
        stdout, _ = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0
    assert stdout.strip() == f"http://127.0.0.1:{port}"
