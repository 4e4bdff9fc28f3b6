"""The sources file and feed/sitemap parsing."""

from pathlib import Path

import pytest
from newsdedup.config import ConfigError
from newsdedup.sources import detect_kind, load_sources, parse_feed

RSS = """<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"><channel><title>Kıyı</title>
<item><title>Birinci</title><link>/2026/03/birinci.html?utm_source=rss</link>
<pubDate>Sat, 14 Mar 2026 08:00:00 +0300</pubDate></item>
<item><title>Birinci again</title><link>https://kiyi.example.com/2026/03/birinci.html</link></item>
<item><title>Bad date</title><link>https://kiyi.example.com/2026/03/ikinci.html</link>
<pubDate>the day after tomorrow</pubDate></item>
<item><title>No link</title></item>
</channel></rss>"""

ATOM = """<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title>Ledger</title>
<entry><title>Bridge</title><link href="https://ledger.example.com/bridge.html"/>
<updated>2026-03-14T09:00:00Z</updated><published>2026-03-14T08:00:00Z</published></entry>
</feed>"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sources.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_load_valid_sources(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """sources:
  - {name: kiyi, url: "https://kiyi.example.com/rss.xml", kind: rss, language: tr}
  - {name: ledger, url: "https://ledger.example.com/atom.xml"}
""",
    )
    kiyi, ledger = load_sources(path)
    assert (kiyi.name, kiyi.kind, kiyi.language) == ("kiyi", "rss", "tr")
    assert (ledger.kind, ledger.enabled) == ("auto", True)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("sources: [", "not valid YAML"),
        ("feeds: []", "top-level key 'sources:'"),
        ("sources:\n  - {name: a, url: 'https://a.example/x', colour: red}", "unknown field(s) ['colour']"),
        ("sources:\n  - {name: a, url: 'ftp://a.example/x'}", "not an http(s) URL"),
        ("sources:\n  - {name: a, url: 'https://a.example/x', kind: podcast}", "field 'kind'"),
        ("sources:\n  - {url: 'https://a.example/x'}", "field 'name' is required"),
        (
            "sources:\n  - {name: a, url: 'https://a.example/x'}\n  - {name: a, url: 'https://b.example/'}",
            "duplicate source names ['a']",
        ),
        ("sources:\n  - {name: a, url: 'https://a.example/x', enabled: 'yes'}", "field 'enabled'"),
    ],
)
def test_invalid_sources_name_the_problem(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_sources(write(tmp_path, text))
    assert message in str(info.value)


def test_missing_sources_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_sources(tmp_path / "nope.yaml")


def test_rss_entries_are_absolute_canonical_and_unique() -> None:
    entries = parse_feed(RSS, "https://kiyi.example.com/rss.xml")
    assert [e.url for e in entries] == [
        "https://kiyi.example.com/2026/03/birinci.html",
        "https://kiyi.example.com/2026/03/ikinci.html",
    ]
    assert entries[0].published_at is not None and entries[0].published_at.hour == 5
    assert entries[1].published_at is None


def test_atom_entries_keep_updated_time() -> None:
    (entry,) = parse_feed(ATOM, "https://ledger.example.com/atom.xml")
    assert entry.title == "Bridge"
    assert entry.updated_at is not None and entry.updated_at.hour == 9


def test_detect_kind() -> None:
    assert detect_kind(ATOM) == "atom"
    assert detect_kind(RSS) == "rss"
    assert detect_kind('<?xml version="1.0"?><urlset xmlns="x"></urlset>') == "sitemap"
