"""The command line, run as a user runs it: newsdedup ... (python -m newsdedup here) in a subprocess."""

import argparse
import json
import os
import re
import subprocess
import sys
import urllib.request
from pathlib import Path

import psycopg2
import pytest
from newsdedup.cli import EXIT_BROKEN_PIPE, _parser

from demo import site as demo_site
from tests.conftest import REPO, shared_path

BASE_ENV = {"PYTHONPATH": str(REPO / "plugins"), "PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/")}


def cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    argv = [sys.executable, "-m", "newsdedup", *args]
    return subprocess.run(argv, env=BASE_ENV | (env or {}), capture_output=True, text=True, timeout=120)


# ------------------------------------------------------------------ manners


def test_broken_pipe_in_a_shell_pipeline_is_quiet(tmp_path: Path) -> None:
    sources = tmp_path / "s.yaml"
    # 8,000 lines of over 40 bytes: far more than a pipe buffer (64 KiB), so the writer meets the closed pipe.
    rows = (f"  - {{name: kaynak-{i}, url: 'https://haber{i}.example/rss', language: tr}}" for i in range(8000))
    sources.write_text("sources:\n" + "\n".join(rows) + "\n", encoding="utf-8")
    script = f'"{sys.executable}" -m newsdedup sources check | head -1; echo "status=${{PIPESTATUS[0]}}" >&2'
    done = subprocess.run(
        ["bash", "-c", script],
        env=BASE_ENV | {"NEWSDEDUP_SOURCES": str(sources)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.stdout.startswith("kaynak-0\t") and done.stdout.count("\n") == 1
    assert done.stderr == f"status={EXIT_BROKEN_PIPE}\n"


def test_a_reader_gone_before_the_first_line_is_quiet() -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)  # nobody will ever read: the first write fails, whatever the timing
    try:
        done = subprocess.run(
            [sys.executable, "-m", "newsdedup", "--help"],
            env=BASE_ENV,
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
        )
    finally:
        os.close(write_end)
    assert (done.returncode, done.stderr) == (EXIT_BROKEN_PIPE, "")


GALLERY = (
    '<!doctype html><html lang="tr"><head><title>Foto galeri: Boğaz\'da gün batımı</title></head>'
    '<body><div class="galeri"><img src="/foto/1.jpg" alt=""><img src="/foto/2.jpg" alt=""></div></body></html>'
)


def test_library_warnings_are_shown_only_with_verbose(tmp_path: Path) -> None:
    page = tmp_path / "galeri.html"
    page.write_text(GALLERY, encoding="utf-8")
    quiet = cli("extract", str(page), "--url", "https://haber.example/galeri/1")
    verbose = cli("-v", "extract", str(page), "--url", "https://haber.example/galeri/1")
    assert quiet.returncode == verbose.returncode == 2
    assert quiet.stderr == "newsdedup: error: no article text found\n"
    assert "WARNING trafilatura.core: discarding data" in verbose.stderr
    assert verbose.stderr.endswith("newsdedup: error: no article text found\n")


def command_paths(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command and sub-command of the parser, as argument tuples."""
    paths = [prefix]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                paths += command_paths(child, (*prefix, name))
    return paths


def test_every_command_has_help_with_an_example() -> None:
    paths = command_paths(_parser())
    assert {("db", "migrate"), ("sources", "check"), ("report",), ("stats",)} <= set(paths)
    for path in paths:
        done = cli(*path, "--help")
        assert done.returncode == 0, (path, done.stderr)
        example = re.search(r"^examples?:\n  newsdedup (.+)$", done.stdout, re.MULTILINE)
        assert example, (path, done.stdout)
        assert example.group(1).startswith(" ".join(path)), (path, example.group(1))


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


def demo_env(db_url: str, sources: Path) -> dict[str, str]:
    """The environment of a CLI run over the demo site's sources on 127.0.0.1."""
    return {
        "NEWSDEDUP_DB_URL": db_url,
        "NEWSDEDUP_SOURCES": str(sources),
        "NEWSDEDUP_ALLOW_NETWORKS": "127.0.0.0/8",
        "NEWSDEDUP_MIN_HOST_DELAY": "0",
    }


@pytest.mark.integration
def test_migrate_ingest_report(db_url: str, tmp_path: Path) -> None:
    with demo_site.start() as site:
        env = demo_env(db_url, demo_site.write_sources(site, tmp_path / "sources.yaml"))
        assert cli("db", "migrate", env=env).stdout.startswith("applied 0 migration(s)")
        done = cli("ingest", env=env)
        assert done.returncode == 0, done.stderr
        row = json.loads(done.stdout)
        assert row["status"] == "success" and row["articles_new"] == len(site.article_urls())
    report = cli("report", env=env)
    assert report.returncode == 0
    assert f"{row['articles_new']} new" in report.stdout and "copies collapsed" in report.stdout
    as_json = cli("report", "--json", env=env)
    assert as_json.returncode == 0, as_json.stderr
    summary = json.loads(as_json.stdout)
    assert summary["last_run"]["articles_new"] == row["articles_new"] and summary["last_run"]["status"] == "success"
    numbers = {str(v) for part in summary.values() for v in part.values() if isinstance(v, int)}
    assert set(re.findall(r"\b\d+\b", report.stdout.replace(summary["last_run"]["run_key"], ""))) <= numbers
    stats = json.loads(cli("stats", "--json", env=env).stdout)
    assert stats == summary["database"]
    assert stats["articles"] == row["articles_new"] and stats["stories"] < stats["articles"]
    text = cli("stats", env=env).stdout.splitlines()
    assert [line.split()[0] for line in text] == list(stats)
    assert [line.split(None, 1)[1] for line in text] == [str(v) for v in stats.values()]


@pytest.mark.integration
def test_db_status_and_an_edited_migration(empty_db_url: str, tmp_path: Path) -> None:
    sql = tmp_path / "sql"
    sql.mkdir()
    (sql / "001_kiosks.sql").write_text("CREATE TABLE IF NOT EXISTS kiosks (kiosk_id int);\n", encoding="utf-8")
    env = {"NEWSDEDUP_DB_URL": empty_db_url, "NEWSDEDUP_SQL_DIR": str(sql)}
    fresh = cli("db", "status", env=env)
    assert (fresh.returncode, fresh.stdout.split()[:3]) == (1, ["pending", "001_kiosks", "-"]), fresh.stderr
    assert cli("db", "migrate", env=env).stdout == "applied 1 migration(s): 001_kiosks\n"
    (sql / "002_papers.sql").write_text("CREATE TABLE IF NOT EXISTS papers (paper_id int);\n", encoding="utf-8")
    done = cli("db", "status", "--json", env=env)
    assert done.returncode == 1, done.stderr
    status = json.loads(done.stdout)
    assert status["up_to_date"] is False
    assert [(m["version"], m["state"], m["applied_at"] is None) for m in status["migrations"]] == [
        ("001_kiosks", "applied", False),
        ("002_papers", "pending", True),
    ]
    (sql / "001_kiosks.sql").write_text("CREATE TABLE IF NOT EXISTS kiosks (kiosk_id bigint);\n", encoding="utf-8")
    refused = cli("db", "migrate", env=env)
    applied_on = status["migrations"][0]["applied_at"][:10]
    assert refused.returncode == 2 and refused.stdout == ""
    assert f"migration {sql / '001_kiosks.sql'} was changed after it was applied on {applied_on}" in refused.stderr
    assert "Restore the file" in refused.stderr and "add a new migration" in refused.stderr
    text = cli("db", "status", env=env)
    assert text.returncode == 1
    assert text.stdout.splitlines()[0].startswith("changed  001_kiosks")
    assert "(file changed since it was applied)" in text.stdout and text.stdout.endswith("1 changed, 1 pending\n")


@pytest.mark.integration
def test_db_status_of_a_migrated_database(db_url: str) -> None:
    done = cli("db", "status", "--json", env={"NEWSDEDUP_DB_URL": db_url})
    assert done.returncode == 0, done.stdout + done.stderr
    versions = [m["version"] for m in json.loads(done.stdout)["migrations"]]
    assert versions == sorted(p.stem for p in (REPO / "sql").glob("[0-9][0-9][0-9]_*.sql"))


@pytest.mark.integration
def test_maintain_prunes_what_the_maintenance_dag_prunes(db_url: str, tmp_path: Path) -> None:
    with demo_site.start() as site:
        env = demo_env(db_url, demo_site.write_sources(site, tmp_path / "sources.yaml"))
        assert cli("ingest", env=env).returncode == 0
    with psycopg2.connect(db_url) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM raw_pages")
        (pages,) = cur.fetchone()
        cur.execute("UPDATE raw_pages SET processed_at = now() - interval '8 days' WHERE raw_page_id % 2 = 0")
        old_pages = cur.rowcount
        cur.execute("UPDATE crawl_log SET attempted_at = now() - interval '91 days' WHERE request_kind = 'article'")
        old_log = cur.rowcount
    assert pages > 1 and old_pages > 0 and old_log > 0
    done = cli("maintain", "--json", env=env)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert (out["raw_pages_deleted"], out["crawl_log_deleted"]) == (old_pages, old_log)
    assert "raw_pages" in out["analyzed"] and out["stale_sources"] == []
    with psycopg2.connect(db_url) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM raw_pages")
        assert cur.fetchone() == (pages - old_pages,)
    again = cli("maintain", env={**env, "NEWSDEDUP_RETAIN_RAW_PAGES_DAYS": "0"})
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith(f"retention      {pages - old_pages} raw pages processed over 0 days ago, 0 ")
    assert "stale sources  0 (no successful read for 24 h)" in again.stdout


@pytest.mark.integration
def test_db_migrate_says_how_when_the_login_may_not_create_the_database(pg_admin_url: str) -> None:
    login = f"nocreate_{os.getpid()}"
    with psycopg2.connect(pg_admin_url) as conn, conn.cursor() as cur:
        cur.execute(f"CREATE ROLE {login} LOGIN NOCREATEDB PASSWORD 'kapali-kutu-42'")
    try:
        host = pg_admin_url.rsplit("@", 1)[1].rsplit("/", 1)[0]
        url = f"postgresql://{login}:kapali-kutu-42@{host}/missing_{os.getpid()}"
        done = cli("db", "migrate", env={"NEWSDEDUP_DB_URL": url})
    finally:
        with psycopg2.connect(pg_admin_url) as conn, conn.cursor() as cur:
            cur.execute(f"DROP ROLE {login}")
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and "kapali-kutu-42" not in done.stderr
    assert f"database 'missing_{os.getpid()}' does not exist and could not be created" in done.stderr
    assert f"createdb missing_{os.getpid()}" in done.stderr
