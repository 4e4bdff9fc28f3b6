"""The README's quickstart ("Run it without Airflow") as a newcomer runs it: its lines verbatim, in bash,
from a directory outside the clone, with the installed `newsdedup` command and no PYTHONPATH."""

import json
import os
import re
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest

from demo import site as demo_site
from tests.conftest import REPO

pytestmark = pytest.mark.integration
HEADING = "### Run it without Airflow"
# What the block's `export` lines set from the clone; the test sets them to its own server and site.
EXPORTED = {"NEWSDEDUP_DB_URL", "NEWSDEDUP_SOURCES", "PATH"}


def quickstart() -> list[str]:
    """The lines of the first sh code block after the quickstart heading in README.md."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split(HEADING, 1)[1]
    block = re.search(r"```sh\n(.*?)```", section, re.DOTALL)
    assert block, f"no sh block under {HEADING!r}"
    return [line for line in block.group(1).splitlines() if line.strip()]


@pytest.fixture
def missing_db_url(pg_admin_url: str) -> Iterator[str]:
    """A URL of the test server naming a database that does not exist yet (dropped afterwards)."""
    name = f"quickstart_{uuid.uuid4().hex[:10]}"
    yield pg_admin_url.rsplit("/", 1)[0] + f"/{name}"
    conn = psycopg2.connect(pg_admin_url)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    conn.close()


def test_readme_quickstart_runs_as_written(missing_db_url: str, tmp_path: Path) -> None:
    lines = quickstart()
    exports = [line for line in lines if line.startswith("export ")]
    commands = [line for line in lines if not line.startswith("export ")]
    assert {line.split()[1].split("=")[0] for line in exports} == EXPORTED
    assert commands and all(line.startswith("newsdedup ") for line in commands), commands
    assert (REPO / ".venv" / "bin" / "newsdedup").is_file(), "make venv installs the newsdedup command"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    with demo_site.start() as site:
        sources = tmp_path / "sources.yaml"
        demo_site.write_sources(site, sources)
        env = {
            "HOME": os.environ.get("HOME", "/"),
            "PATH": f"{REPO / '.venv' / 'bin'}:/usr/bin:/bin",
            "NEWSDEDUP_DB_URL": missing_db_url,
            "NEWSDEDUP_SOURCES": str(sources),
            "NEWSDEDUP_ALLOW_NETWORKS": "127.0.0.0/8",
            "NEWSDEDUP_MIN_HOST_DELAY": "0",
        }
        # One shell, the commands exactly as printed, each one's output delimited for the checks below.
        script = "set -euo pipefail\n" + "".join(f"echo '>>> {i}'\n{line}\n" for i, line in enumerate(commands))
        done = subprocess.run(
            ["bash", "-c", script], cwd=elsewhere, env=env, capture_output=True, text=True, timeout=600
        )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    outputs = dict(zip(commands, re.split(r"^>>> \d+\n", done.stdout, flags=re.MULTILINE)[1:], strict=True))
    by_name = {line.split("#")[0].strip(): out for line, out in outputs.items()}
    assert by_name["newsdedup db migrate"].startswith(f"created database {missing_db_url.rsplit('/', 1)[1]}\napplied ")
    run = json.loads(by_name["newsdedup ingest"])
    assert run["status"] == "success" and run["articles_new"] == len(site.article_urls())
    assert f"{run['articles_new']} new" in by_name["newsdedup report"]
    assert by_name["newsdedup maintain"].startswith("retention ")
    assert not list(elsewhere.iterdir()), "the commands wrote nothing into the directory they ran from"
