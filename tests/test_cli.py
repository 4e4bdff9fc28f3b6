"""The command line, run as a user runs it: python -m newsdedup ... in a subprocess."""

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from demo import site as demo_site
from tests.conftest import REPO, shared_path


def cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    base = {"PYTHONPATH": str(REPO / "plugins"), "PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/")}
    return subprocess.run(
        [sys.executable, "-m", "newsdedup", *args], env=base | (env or {}), capture_output=True, text=True, timeout=120
    )


def test_extract_saved_demo_page(tmp_path: Path) -> None:
    with demo_site.start() as site:
        url = site.seed_url
        saved = tmp_path / "page.html"
        saved.write_bytes(urllib.request.urlopen(url, timeout=10).read())  # noqa: S310 - 127.0.0.1 only
    done = cli("extract", str(saved), "--url", url)
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout)
    assert record["canonical_url"] == url
    assert record["language"] == "tr"
    assert record["title"] and len(record["text"]) > 500


def test_extract_benchmark_pages() -> None:
    corpus = shared_path("corpora", "article-extraction-benchmark")
    truth = json.loads((corpus / "ground-truth.json").read_text(encoding="utf-8"))
    for page in sorted((corpus / "html").glob("*.html.gz"))[:3]:
        expected = truth[page.name.split(".")[0]]
        done = cli("extract", str(page), "--url", expected["url"])
        assert done.returncode == 0, done.stderr
        record = json.loads(done.stdout)
        assert record["title"]
        assert " ".join(expected["articleBody"].split()[:5]) in " ".join(record["text"].split())


def test_clean_seed() -> None:
    seed = next(shared_path("seed").glob("*.txt"))
    done = cli("clean", str(seed))
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    headline = seed.read_text(encoding="utf-8").strip().splitlines()[0].strip()
    assert out["title"] == headline
    assert headline not in out["text"]
    assert out["text"].count("video konferans") == 1
    assert len(out["removed"]) == 3


def test_missing_db_url_is_a_clear_error() -> None:
    done = cli("db", "migrate", env={"NEWSDEDUP_DB_URL": ""})
    assert done.returncode == 2
    assert "NEWSDEDUP_DB_URL is not set" in done.stderr


def test_bad_db_url_is_a_clear_error() -> None:
    done = cli("stats", env={"NEWSDEDUP_DB_URL": "mysql://x@y/z"})
    assert done.returncode == 2 and "is not a libpq URL" in done.stderr


def test_unknown_source_field_is_a_clear_error(tmp_path: Path) -> None:
    sources = tmp_path / "s.yaml"
    sources.write_text("sources:\n  - {name: a, url: 'https://a.example/rss', colour: red}\n", encoding="utf-8")
    done = cli("sources", "check", env={"NEWSDEDUP_SOURCES": str(sources)})
    assert done.returncode == 2
    assert "source #1 ('a')" in done.stderr and "colour" in done.stderr


@pytest.mark.integration
def test_migrate_ingest_report(db_url: str, tmp_path: Path) -> None:
    with demo_site.start() as site:
        sources = tmp_path / "sources.yaml"
        demo_site.write_sources(site, sources)
        env = {
            "NEWSDEDUP_DB_URL": db_url,
            "NEWSDEDUP_SOURCES": str(sources),
            "NEWSDEDUP_ALLOW_NETWORKS": "127.0.0.0/8",
            "NEWSDEDUP_MIN_HOST_DELAY": "0",
        }
        assert cli("db", "migrate", env=env).stdout.startswith("applied 0 migration(s)")
        done = cli("ingest", env=env)
        assert done.returncode == 0, done.stderr
        row = json.loads(done.stdout)
        assert row["status"] == "success" and row["articles_new"] == len(site.article_urls())
    report = cli("report", env=env)
    assert report.returncode == 0
    assert f"{row['articles_new']} new" in report.stdout and "copies collapsed" in report.stdout
    stats = json.loads(cli("stats", env=env).stdout)
    assert stats["articles"] == row["articles_new"] and stats["stories"] < stats["articles"]
