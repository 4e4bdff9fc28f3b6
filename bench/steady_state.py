"""Dedup index bytes per article at steady state, with the candidate window (NEWSDEDUP_CANDIDATE_DAYS).

    .venv/bin/python -m bench.steady_state [--days 100] [--per-day 1000] [--window 30]

Simulates `--days` days of ingestion into a private PostgreSQL (or NEWSDEDUP_BENCH_DB_URL): each day
`--per-day` background articles (random signatures, 72 band rows each, as bench/dedup_scale.py loads
them) fetched that day are bulk-loaded, then the maintenance step `retention.purge_candidates` takes
the articles older than the window out of the band index and VACUUM runs, as autovacuum would, so freed
space is reused. Prints the index's bytes per article with every article a candidate (the last day
before any article leaves the window) and at the end: per stored article, and the band index per
article in the window. Sizes are `pg_total_relation_size` (table, indexes, TOAST).
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "plugins"), str(REPO)]

import numpy as np  # noqa: E402
import psycopg2  # noqa: E402
from newsdedup import retention, store  # noqa: E402
from newsdedup.minhash import DedupParams  # noqa: E402

from bench import private_database  # noqa: E402
from bench.dedup_scale import FILLER_START, INDEX_TABLES, index_bytes_per_article, load_filler  # noqa: E402


def vacuum(db_url: str) -> None:
    """Plain VACUUM of the band index and signatures: freed space becomes reusable, as autovacuum does."""
    conn = psycopg2.connect(db_url)
    conn.autocommit = True  # VACUUM runs outside a transaction (store.connect's `with conn` opens one)
    try:
        with conn.cursor() as cur:
            for table in ("lsh_bands", "article_signatures"):
                cur.execute(f"VACUUM {table}")
    finally:
        conn.close()


def indexed(db_url: str) -> int:
    """Articles whose bands are in the index."""
    with store.connect(db_url) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM article_signatures WHERE unindexed_at IS NULL")
        return cur.fetchone()[0]


def report(label: str, db_url: str, stored: int) -> dict[str, float]:
    """Print and return the index tables' bytes per stored article."""
    with store.connect(db_url) as conn:
        per = index_bytes_per_article(conn, stored)
    parts = ", ".join(f"{table} {size:,.0f}" for table, size in per.items())
    print(f"{label}: {stored:,} stored, {indexed(db_url):,} indexed; {sum(per.values()):,.0f} bytes per stored "
          f"article ({parts})", flush=True)
    return per


def main() -> int:
    """Ingest day by day with daily pruning and VACUUM; report bytes per article before and at steady state."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--days", type=int, default=100)
    parser.add_argument("--per-day", type=int, default=1000)
    parser.add_argument("--window", type=int, default=30)
    args = parser.parse_args()
    if not 0 < args.window < args.days:
        raise SystemExit("--window must be between 0 and --days")
    params, rng = DedupParams(), np.random.default_rng(11)
    today = datetime.now(UTC)
    start = time.perf_counter()
    with private_database("steady") as url:
        with store.connect(url) as conn:
            store.migrate(conn)
            full = {}
            for day in range(args.days):
                ago = args.days - 1 - day  # the simulated day is `ago` days before today
                fetched = (today - timedelta(days=ago)).isoformat()
                load_filler(conn, FILLER_START + day * args.per_day, args.per_day, params, rng, fetched)
                retention.purge_candidates(url, args.window + ago)
                vacuum(url)
                if day == args.window - 1:
                    full = report(f"day {day + 1} (every article a candidate)", url, (day + 1) * args.per_day)
        stored = args.days * args.per_day
        steady = report(f"day {args.days} (window {args.window} days)", url, stored)
        window = indexed(url)
        bands_full, bands_steady = full["lsh_bands"], steady["lsh_bands"] * stored / window
        print(f"lsh_bands per article in the window: {bands_steady:,.0f} bytes (every article indexed: "
              f"{bands_full:,.0f})")
        others = sum(v for t, v in steady.items() if t != "lsh_bands")
        print(f"steady state: {sum(full.values()):,.0f} bytes per stored article without a window, "
              f"{sum(steady.values()):,.0f} with it ({others:,.0f} kept per stored article + the band index "
              f"of {window:,} of {stored:,} articles); tables: {', '.join(INDEX_TABLES)}")
    print(f"({time.perf_counter() - start:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
