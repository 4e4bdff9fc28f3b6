"""Crawl shards: stable host-hash assignment, and the plan of a run (due sources grouped per shard)."""

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg2
import pytest
from newsdedup import pipeline, shards, store
from newsdedup.sources import Source

PLUGINS = Path(__file__).resolve().parents[1] / "plugins"
URLS = [f"http://127.0.0.{h}:{8000 + h}/outlet-{n}/rss.xml" for h in range(1, 41) for n in range(3)]


def test_a_sources_shard_is_the_same_in_every_process() -> None:
    """No salted hash(): another interpreter with another hash seed puts every URL in the same shard."""
    code = (
        "import sys; from newsdedup.shards import shard_of\n"
        "print(' '.join(str(shard_of(u, 4)) for u in sys.argv[1:]))"
    )
    env = os.environ | {"PYTHONHASHSEED": "12345", "PYTHONPATH": str(PLUGINS)}
    done = subprocess.run([sys.executable, "-c", code, *URLS], capture_output=True, text=True, env=env, check=True)
    assert done.stdout.split() == [str(shards.shard_of(u, 4)) for u in URLS]


def test_one_host_one_shard_whatever_the_scheme_port_path_or_case() -> None:
    variants = [
        "http://news.example.org/rss.xml",
        "https://NEWS.example.org:8443/sitemap.xml",
        "http://news.example.org:8080/tr/feed",
    ]
    for count in (1, 2, 4, 7, 64):
        assert len({shards.shard_of(u, count) for u in variants}) == 1
        assert all(0 <= shards.shard_of(u, count) < count for u in URLS)


def test_many_hosts_use_every_shard() -> None:
    assert {shards.shard_of(u, 4) for u in URLS} == {0, 1, 2, 3}


def sync(db_url: str, urls: list[str]) -> None:
    with store.connect(db_url) as conn:
        store.sync_sources(conn, [Source(f"s{i:03d}", url, "rss", "en") for i, url in enumerate(urls)])


def planned(db_url: str, count: int, now: datetime | None = None) -> dict[str, int]:
    with store.connect(db_url) as conn:
        plans = shards.plan(conn, count, now)
    assert [p.shard for p in plans] == list(range(count)) and {p.shards for p in plans} == {count}
    return {name: p.shard for p in plans for name in p.sources}


def test_adding_sources_moves_nobody(db_url: str) -> None:
    sync(db_url, URLS[:60])
    before = planned(db_url, 4)
    assert len(before) == 60
    more = URLS + [f"http://10.9.{n}.1/feed" for n in range(30)]  # new hosts, and more sources on old ones
    sync(db_url, more)
    after = planned(db_url, 4)
    assert len(after) == len(more)
    assert {name: after[name] for name in before} == before


def test_the_plan_groups_the_due_enabled_sources_by_host(db_url: str) -> None:
    sync(db_url, URLS)
    now = datetime.now(UTC)
    with psycopg2.connect(db_url) as conn, conn.cursor() as cur:
        cur.execute("UPDATE sources SET next_due_at = %s WHERE name IN ('s000', 's004')", (now + timedelta(hours=1),))
        cur.execute("UPDATE sources SET next_due_at = %s WHERE name = 's005'", (now - timedelta(minutes=1),))
        cur.execute("UPDATE sources SET enabled = false WHERE name = 's007'")
    plan = planned(db_url, 4, now)
    expected = {f"s{i:03d}": shards.shard_of(u, 4) for i, u in enumerate(URLS)}
    for name in ("s000", "s004", "s007"):  # due later, due later, disabled
        del expected[name]
    assert plan == expected
    # An hour later the two sources due then are planned too, each in its host's shard.
    assert planned(db_url, 4, now + timedelta(hours=2))["s004"] == shards.shard_of(URLS[4], 4)


def test_begin_run_plans_the_shards_and_a_shard_plans_itself_again(db_url: str) -> None:
    sync(db_url, URLS)
    run = pipeline.begin_run(db_url, "plan-1", "cli", crawl_shards=3)
    assert [s["shard"] for s in run["shards"]] == [0, 1, 2]
    assert sum(s["sources"] for s in run["shards"]) == len(run["sources"]) == len(URLS)
    with psycopg2.connect(db_url) as conn, conn.cursor() as cur:
        cur.execute("SELECT sources_total FROM pipeline_runs WHERE run_id = %s", (run["run_id"],))
        assert cur.fetchone() == (len(URLS),)
    for shard in run["shards"]:
        names = pipeline.shard_sources(db_url, shard["shard"], 3, run["planned_at"])
        assert len(names) == shard["sources"]
        assert {shards.shard_of(URLS[int(name[1:])], 3) for name in names} <= {shard["shard"]}


@pytest.mark.parametrize("count", [1, 5])
def test_every_source_is_in_exactly_one_shard(db_url: str, count: int) -> None:
    sync(db_url, URLS)
    assert sorted(planned(db_url, count)) == sorted(f"s{i:03d}" for i in range(len(URLS)))
