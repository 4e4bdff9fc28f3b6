"""Benchmarks: run as modules, e.g. `python -m bench.dedup_quality`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
_FAST_PG = "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"


@contextmanager
def private_database(name: str = "bench", *, keep: bool = False) -> Iterator[str]:
    """URL of database `name` on a private PostgreSQL in a new temporary folder (or NEWSDEDUP_BENCH_DB_URL)."""
    given = os.environ.get("NEWSDEDUP_BENCH_DB_URL")
    if given:
        yield given
        return
    with private_server(name, keep=keep) as (url,):
        yield url


@contextmanager
def private_server(*names: str, options: str = "", keep: bool = False) -> Iterator[list[str]]:
    """URLs of databases `names` on one new private PostgreSQL (fast, unsafe settings plus `options`).

    Its home is a new `mktemp -d` folder, destroyed afterwards unless `keep` (then printed to stderr).
    """
    parent = tempfile.mkdtemp(prefix="newsdedup-bench-")
    os.chmod(parent, 0o711)  # noqa: S103 - the postgres user must traverse it to its home inside
    env = os.environ | {"NEWSDEDUP_PGHOME": f"{parent}/pg", "NEWSDEDUP_PGOPTS": f"{_FAST_PG} {options}".strip()}
    pg = [str(REPO / "scripts" / "pg.sh")]
    try:
        subprocess.run([*pg, "start"], env=env, check=True, capture_output=True)
        yield [subprocess.run([*pg, "url", n], env=env, check=True, capture_output=True, text=True).stdout.strip()
               for n in names]
    finally:
        if keep:
            print(f"kept: NEWSDEDUP_PGHOME={parent}/pg scripts/pg.sh stop|destroy", file=sys.stderr)
        else:
            subprocess.run([*pg, "destroy"], env=env, check=False, capture_output=True)
            shutil.rmtree(parent, ignore_errors=True)
