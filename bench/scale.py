"""Planning a run at scale: 100,000 sources on 100 loopback hosts, grouped into crawl shards.

Inserts the sources (127.0.0.1 to 127.0.0.100, 1,000 feeds each; nothing is fetched) into a private
PostgreSQL under a new temporary folder (or NEWSDEDUP_BENCH_DB_URL), gives 70 % of them a next poll
in the coming day (adaptive polling) and the rest none (due), then times, in one process, `rounds` times
each, best of:

- `polling.due_sources`: the due names (one indexed query);
- `shards.plan`: due sources grouped per shard (what `pipeline.begin_run` and each crawl task do);
- baseline: `store.enabled_sources`, the read the previous planner did (every enabled row as an object).

It prints the seconds, the plan-to-baseline ratio, the per-shard counts (with the hosts per shard) and the
size of the begin task's XCom against a list of every due name.

    .venv/bin/python -m bench.scale [--sources 100000] [--hosts 100] [--shards 4] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime

from newsdedup import polling, shards, store

from bench import private_database

_INSERT = (
    "INSERT INTO sources (name, url, kind, next_due_at) "
    "SELECT 'feed-' || n, 'http://127.0.0.' || (n %% %(hosts)s + 1) || ':8080/outlet-' || n || '/rss.xml', 'rss', "
    "CASE WHEN n / %(hosts)s %% 10 < 7 THEN now() + (n %% 1440) * interval '1 minute' END "
    "FROM generate_series(1, %(sources)s) AS n"
)


def best(rounds: int, work: Callable[[], object]) -> tuple[float, object]:
    """Fastest of `rounds` runs of work (seconds) and its last result."""
    times, result = [], None
    for _ in range(rounds):
        start = time.perf_counter()
        result = work()
        times.append(time.perf_counter() - start)
    return min(times), result


def main() -> None:
    """Fill the sources table, time the planning, print the numbers."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sources", type=int, default=100_000)
    parser.add_argument("--hosts", type=int, default=100)
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with private_database("scale") as db_url, store.connect(db_url) as conn:
        store.migrate(conn)
        start = time.perf_counter()
        with conn.cursor() as cur:
            cur.execute(_INSERT, {"hosts": args.hosts, "sources": args.sources})
            cur.execute("ANALYZE sources")
        conn.commit()
        print(f"{args.sources} sources on {args.hosts} hosts inserted in {time.perf_counter() - start:.2f} s")
        now = datetime.now(UTC)
        due_s, due = best(args.rounds, lambda: polling.due_sources(conn, now))
        plan_s, plans = best(args.rounds, lambda: shards.plan(conn, args.shards, now))
        base_s, enabled = best(args.rounds, lambda: store.enabled_sources(conn))
        hosts = {p.shard: len({name_host(name, args.hosts) for name in p.sources}) for p in plans}
        print(f"due_sources: {len(due)} due of {len(enabled)} enabled in {due_s:.3f} s")
        print(f"shards.plan ({args.shards} shards): {plan_s:.3f} s; baseline store.enabled_sources: {base_s:.3f} s; "
              f"plan/baseline = {plan_s / base_s:.2f}")
        for p in plans:
            print(f"  shard {p.shard + 1}/{p.shards}: {len(p.sources)} due sources on {hosts[p.shard]} hosts")
        slim = [p.to_dict() | {"sources": len(p.sources)} for p in plans]
        print(f"begin XCom: {len(json.dumps(slim))} bytes of shards (every due name: {len(json.dumps(due))} bytes)")
        conn.rollback()


def name_host(name: str, hosts: int) -> int:
    """The host number _INSERT gave the source `feed-<n>`."""
    return int(name.removeprefix("feed-")) % hosts + 1


if __name__ == "__main__":
    main()
