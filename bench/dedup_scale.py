"""Time to deduplicate a batch of 1,000 new articles against 10k, 100k and 1M stored ones in PostgreSQL.

    .venv/bin/python bench/dedup_scale.py [--sizes 10000 100000 1000000] [--batch 1000] [--rounds 5]

The batch is real text: the articles of ../shared/corpora/article-extraction-benchmark and
copies of them (shortened, re-headlined, wrapped), so it finds real duplicates among itself and
among the stored corpus articles. The stored corpus grows by bulk-loading background articles
(COPY) whose signatures are random: unrelated stored news rarely shares a band with a new article,
which is exactly the case whose cost must not grow. Each measurement runs the batch in a
transaction that is rolled back, so every size sees the same batch.

Like with like on a shared machine: a second database holding the smallest size (the baseline) stays
in the same server, and every size is measured in interleaved rounds (baseline then size, size
then baseline, ...). Per round the batch's wall time and CPU time (this process plus the PostgreSQL backend,
read from /proc) are taken on both; the figure to watch is the median over rounds of the CPU-time
ratio size / baseline (target at 1M: at most 1.5), with the wall-time ratio next to it.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import psycopg2

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "plugins"), str(REPO)]

from newsdedup import store  # noqa: E402
from newsdedup.dedup_records import Doc  # noqa: E402
from newsdedup.dedup_store import assign_clusters  # noqa: E402
from newsdedup.minhash import DedupParams  # noqa: E402
from newsdedup.sources import Source  # noqa: E402

from bench import private_server  # noqa: E402

SHARED = Path(os.environ.get("NEWSDEDUP_SHARED_DIR", REPO.parent / "shared"))
CORPUS = SHARED / "corpora" / "article-extraction-benchmark"
FILLER_START = 10_000_000  # article ids of background articles, far from the real ones
INDEX_TABLES = ("article_signatures", "lsh_bands", "common_shingles", "source_boilerplate")
PG_OPTIONS = "-c shared_buffers=1GB -c maintenance_work_mem=1GB -c max_wal_size=8GB"


@contextmanager
def databases() -> Iterator[tuple[str, str]]:
    """The measured database and the baseline: two on one new private PostgreSQL (or the two env URLs)."""
    given = os.environ.get("NEWSDEDUP_BENCH_DB_URL")
    if given:
        base = os.environ.get("NEWSDEDUP_BENCH_BASE_DB_URL")
        if not base:
            raise SystemExit("NEWSDEDUP_BENCH_DB_URL needs NEWSDEDUP_BENCH_BASE_DB_URL (an empty baseline database)")
        yield given, base
        return
    with private_server("bench", "bench_base", options=PG_OPTIONS) as (url, base):
        yield url, base


def corpus_texts() -> list[str]:
    """Article bodies of the shared extraction benchmark."""
    truth = json.loads((CORPUS / "ground-truth.json").read_text(encoding="utf-8"))
    return [v["articleBody"] for v in truth.values() if len(v["articleBody"].split()) > 80]


def batch_texts(texts: list[str], size: int, rng: np.random.Generator) -> list[str]:
    """`size` new articles: corpus originals followed by copies of them."""
    out = list(texts)
    while len(out) < size:
        text = texts[int(rng.integers(len(texts)))]
        paras = [p for p in text.split("\n") if p.strip()]
        kind = int(rng.integers(3))
        if kind == 0:
            out.append("\n".join(paras[: max(1, int(len(paras) * 0.8))]))
        elif kind == 1:
            out.append("Wire report.\n" + text + "\nRelated: more stories from our newsroom.")
        else:
            out.append(text.replace(" the ", " The ", 2))
    return out[:size]


def copy_rows(cur: psycopg2.extensions.cursor, table: str, columns: str, lines: io.StringIO) -> None:
    """COPY text-format lines into a table."""
    lines.seek(0)
    cur.copy_expert(f"COPY {table} ({columns}) FROM STDIN", lines)  # noqa: S608 - fixed names


def load_filler(
    conn, first_id: int, count: int, params: DedupParams, rng: np.random.Generator, fetched: str = "2026-01-01"
) -> None:
    """Bulk-load `count` background articles with random signatures, fetched at `fetched`, in chunks."""
    chunk = 50_000
    version = params.version
    with conn.cursor() as cur:
        cur.execute("SET session_replication_role = replica")  # skip FK checks of the bulk load
        for start in range(first_id, first_id + count, chunk):
            ids = np.arange(start, min(start + chunk, first_id + count), dtype=np.int64)
            arts, clusters, sigs, bands = io.StringIO(), io.StringIO(), io.StringIO(), io.StringIO()
            width = params.bands + params.lead_bands  # every stored article of more than lead_words words
            band_hashes = rng.integers(-(2**63), 2**63 - 1, size=(len(ids), width), dtype=np.int64)
            for row, article_id in enumerate(ids.tolist()):
                url = f"https://filler.example/{article_id}"
                arts.write(f"{article_id}\t{url}\t{url}\tfiller\t\t{article_id:064x}\t{fetched}\t{article_id}\n")
                clusters.write(f"{article_id}\t{article_id}\t1\t3000\n")
                sig = rng.integers(0, 2**32, size=params.num_perm, dtype=np.uint32).astype("<u4").tobytes().hex()
                sh = rng.integers(0, 2**32, size=300, dtype=np.uint32).astype("<u4").tobytes().hex()
                sigs.write(f"{article_id}\t{version}\t\\\\x{sig}\t\\\\x{sh}\t{article_id}\t3000\n")
                for value in band_hashes[row].tolist():
                    bands.write(f"{value}\t{article_id}\n")
            copy_rows(
                cur,
                "articles",
                "article_id, url, canonical_url, title, text, content_hash, fetched_at, cluster_id",
                arts,
            )
            copy_rows(cur, "story_clusters", "cluster_id, canonical_article_id, size, canonical_length", clusters)
            copy_rows(
                cur, "article_signatures", "article_id, params_version, signature, shingles, text_hash, length", sigs
            )
            copy_rows(cur, "lsh_bands", "band_hash, article_id", bands)
        cur.execute("SET session_replication_role = DEFAULT")
        for table in ("lsh_bands", "article_signatures", "articles", "story_clusters"):
            cur.execute(f"ANALYZE {table}")
    conn.commit()


@dataclass
class Timing:
    """One run of the batch: wall seconds, CPU seconds (client + server backend; None if unreadable)."""

    wall: float
    cpu: float | None
    matched: int


def backend_cpu(conn) -> float | None:
    """CPU seconds the connection's PostgreSQL backend has used, or None when its /proc entry is unreadable."""
    with conn.cursor() as cur:
        cur.execute("SELECT pg_backend_pid()")
        pid = cur.fetchone()[0]
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def time_batch(conn, texts: list[str], params: DedupParams, sources: list[int]) -> Timing:
    """Cluster the batch once (inserting its articles first, outside the timing), then roll back."""
    rows = [
        store.ArticleRow(
            f"https://new.example/{i}",
            f"https://new.example/{i}",
            "t",
            text,
            None,
            None,
            "en",
            source_id=sources[i % len(sources)],
            fetched_at=datetime.now(UTC),
        )
        for i, text in enumerate(texts)
    ]
    done = store.upsert_articles(conn, rows)
    docs = [Doc(article_id, texts[int(url.rsplit("/", 1)[1])]) for url, article_id in done.new.items()]
    server0, client0, start = backend_cpu(conn), time.process_time(), time.perf_counter()
    decisions = assign_clusters(conn, docs, params)
    wall = time.perf_counter() - start
    server1 = backend_cpu(conn)
    cpu = None if server0 is None or server1 is None else time.process_time() - client0 + server1 - server0
    conn.rollback()
    return Timing(wall, cpu, sum(d.method != "new" for d in decisions))


def prepare(conn, texts: list[str], params: DedupParams) -> list[int]:
    """Schema, the 40 batch sources, and the real corpus originals stored and clustered; returns source ids."""
    store.migrate(conn)
    originals = [
        store.ArticleRow(
            f"https://orig.example/{i}", f"https://orig.example/{i}", "t", t, None, None, "en",
            source_id=None, fetched_at=datetime.now(UTC),
        )
        for i, t in enumerate(texts)
    ]
    # The batch comes from 40 sources, so their learnt boilerplate is looked up as in a real run.
    feeds = [Source(f"feed{k}", f"https://feed{k}.example/rss.xml", "rss", "en") for k in range(40)]
    store.sync_sources(conn, feeds)
    sources = [store.get_source(conn, f.name).source_id for f in feeds]
    done = store.upsert_articles(conn, originals)
    assign_clusters(conn, [Doc(aid, texts[int(u.rsplit("/", 1)[1])]) for u, aid in done.new.items()], params)
    conn.commit()
    return sources


def measure_round(k: int, base: tuple, measured: tuple, batch: list[str], params: DedupParams) -> tuple[Timing, Timing]:
    """Round k: the batch on the baseline and on the measured (connection, sources), order alternating."""
    first, second = (measured, base) if k % 2 else (base, measured)
    one = time_batch(first[0], batch, params, first[1])
    two = time_batch(second[0], batch, params, second[1])
    return (two, one) if k % 2 else (one, two)


def _median(values: list[float | None]) -> float | None:
    """Median of the values, None if any is missing."""
    return None if not values or any(v is None for v in values) else statistics.median(values)


def index_bytes_per_article(conn, stored: int) -> dict[str, float]:
    """Bytes of each dedup index table (with its indexes and TOAST) per stored article."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT t, pg_total_relation_size(t::regclass) FROM unnest(%s::text[]) AS t", (list(INDEX_TABLES),)
        )
        return {table: size / stored for table, size in cur.fetchall()}


def main() -> int:
    """Grow the stored corpus step by step; time the same batch against it and the baseline, interleaved."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    if not CORPUS.is_dir():
        print(f"{CORPUS} is absent: this benchmark needs ../shared (skipped)")
        return 0
    params = DedupParams()
    rng = np.random.default_rng(7)
    texts = corpus_texts()
    batch = batch_texts(texts, args.batch, rng)
    sizes = sorted(args.sizes)
    with databases() as (url, base_url):
        with store.connect(url) as conn, store.connect(base_url) as base:
            sources = prepare(conn, texts, params)
            base_sources = prepare(base, texts, params)
            load_filler(base, FILLER_START + len(texts), sizes[0] - len(texts), params, np.random.default_rng(8))
            print(f"baseline database: {sizes[0]:,} stored articles", flush=True)
            results = []
            loaded = len(texts)
            for size in sizes:
                t0 = time.perf_counter()
                load_filler(conn, FILLER_START + loaded, size - loaded, params, rng)
                loaded = size
                print(f"stored {size:>9,} articles (load {time.perf_counter() - t0:.0f} s)", flush=True)
                pair = ((base, base_sources), (conn, sources))
                rounds = [measure_round(k, *pair, batch, params) for k in range(args.rounds)]
                wall = statistics.median(b.wall / ref.wall for ref, b in rounds)
                cpus = [None if ref.cpu is None or b.cpu is None else b.cpu / ref.cpu for ref, b in rounds]
                row = (
                    size,
                    statistics.median(b.wall for _, b in rounds),
                    _median([b.cpu for _, b in rounds]),
                    statistics.median(ref.wall for ref, _ in rounds),
                    wall,
                    _median(cpus),
                )
                results.append(row)
                cpu_text = "n/a" if row[2] is None else f"{row[2]:.2f} s CPU, ratio {row[5]:.2f}"
                print(
                    f"    batch of {len(batch)} ({rounds[-1][1].matched} matched): median {row[1]:.2f} s wall "
                    f"(baseline {row[3]:.2f} s, ratio {wall:.2f}); {cpu_text}; rounds {args.rounds}",
                    flush=True,
                )
            with conn.cursor() as cur:
                cur.execute("SELECT pg_size_pretty(pg_database_size(current_database()))")
                print(f"database size at {loaded:,} stored articles: {cur.fetchone()[0]}")
            per_table = index_bytes_per_article(conn, loaded)
            parts = ", ".join(f"{table} {size:,.0f}" for table, size in per_table.items())
            print(f"dedup index storage: {sum(per_table.values()):,.0f} bytes per article ({parts})")
        print(f"\nstored articles | wall s | CPU s | ratio to the {sizes[0]:,} baseline, wall | CPU (median of rounds)")
        for size, wall, cpu, _, wall_ratio, cpu_ratio in results:
            cpu_s = "n/a" if cpu is None else f"{cpu:.2f}"
            cpu_r = "n/a" if cpu_ratio is None else f"{cpu_ratio:.2f}"
            print(f"{size:>15,} | {wall:6.2f} | {cpu_s:>5} | {wall_ratio:.2f} | {cpu_r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
