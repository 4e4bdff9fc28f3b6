"""Processing a backlog on the Celery stack: 1 worker against 2, articles per minute and quality.

For each worker count, `scripts/stack.sh up` starts the CeleryExecutor stack (private PostgreSQL and
Redis, the Airflow components, N `airflow celery worker` processes with NEWSDEDUP_CELERY_CONCURRENCY
slots each) with bench/load.py's generated syndication site as its sources (H hosts on 127.0.0.x, one
feed each listing all its articles), and `up` starts one `news_ingest` run. The crawl shards stage every
page first; the processing phase, from the first `process_shard` start to the end of
`finish_processing` (Airflow's task instances), is what is measured: the backlog is the whole site.

Reported per worker count: articles stored, processing seconds and articles/min, which worker ran each
processing task, each worker's CPU (its process tree, sampled from /proc every second, over the phase,
in cores) and peak memory (the tree's resident sizes added up, which counts pages shared after a fork
once per process, and its largest process), and the stories against the site's ground truth (pairwise
precision and recall). Then the ratio of the last worker count to the first. `scripts/stack.sh down`
stops everything, also on error.

Memory as the corpus grows: each sample is also tagged with the articles stored at that moment (counted
every 5 seconds), and each worker's largest process is reported per block of 10,000 stored articles
(the peak while the count went from 0 to 10,000, 10,000 to 20,000, ...): flat means the last block's
peak is no higher than the second's. `--articles 100000 --hosts 100` covers 10k to 100k.

    .venv/bin/python -m bench.celery_backlog [--articles 20000] [--hosts 20] [--workers 1 2]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psycopg2

from bench import REPO
from bench.load import Site, _processes, _quality, _rss_mb, _tree

STACK = str(REPO / "scripts" / "stack.sh")


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rows(db_url: str, sql: str, params: tuple = ()) -> list[tuple]:
    """Rows of one query."""
    with psycopg2.connect(db_url) as conn, conn.cursor() as cur:
        cur.execute(sql, params or None)
        return cur.fetchall()


class WorkerSampler:
    """CPU seconds each worker's process tree has used since sampling began, every second; its memory.

    Each process's own CPU time is added up as it grows: a task's processes come and go (the task process,
    its extraction pool, the pool's fork server, which outlives its parent and is reaped by init), so the
    tree's current total would drop whenever one ends. Only a process's last second before it exits is lost.
    """

    def __init__(self, state: Path, workers: list[str], db_url: str) -> None:
        self.roots = {name: int((state / f"{name}.pid").read_text().split()[0]) for name in workers}
        self.db_url, self.stored, self._counted = db_url, 0, 0.0
        self.samples: list[tuple[float, dict[str, float]]] = []
        self.memory: list[tuple[int, dict[str, float]]] = []  # (articles stored, largest process MB)
        self._seen: dict[int, float] = {}
        self._total = dict.fromkeys(self.roots, 0.0)
        self.peak_tree_mb = dict.fromkeys(self.roots, 0.0)
        self.peak_process_mb = dict.fromkeys(self.roots, 0.0)
        self._tick(count=False)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _tick(self, count: bool = True) -> None:
        table = _processes()
        if time.monotonic() - self._counted >= 5:
            self._counted = time.monotonic()
            with contextlib.suppress(psycopg2.Error):  # the stack is starting or stopping: the last count stands
                self.stored = rows(self.db_url, "SELECT count(*) FROM articles")[0][0]
        seen, largest = {}, {}
        for name, root in self.roots.items():
            tree = _tree(table, root, set()) if root in table else []
            for pid in tree:
                cpu = table[pid][1]
                seen[pid] = cpu
                if count:
                    self._total[name] += max(cpu - self._seen.get(pid, 0.0), 0.0)
            rss = [_rss_mb(pid) for pid in tree] or [0.0]
            self.peak_tree_mb[name] = max(self.peak_tree_mb[name], sum(rss))
            self.peak_process_mb[name] = max(self.peak_process_mb[name], max(rss))
            largest[name] = max(rss)
        self._seen = seen
        self.samples.append((time.time(), dict(self._total)))
        self.memory.append((self.stored, largest))

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            self._tick()

    def stop(self) -> None:
        """Stop sampling."""
        self._stop.set()
        self._thread.join()

    def cores(self, start: float, end: float) -> dict[str, float]:
        """Cores each worker used between two wall times (nearest samples inside the interval)."""
        inside = [s for s in self.samples if start <= s[0] <= end]
        if len(inside) < 2:
            return {}
        (t0, a), (t1, b) = inside[0], inside[-1]
        return {name: round((b[name] - a.get(name, 0)) / (t1 - t0), 2) for name in b}

    def memory_by_stored(self, block: int = 10_000) -> dict[str, dict[str, int]]:
        """Each worker's largest process, peak MB, per block of `block` stored articles ("10000-20000": MB)."""
        peaks: dict[str, dict[str, int]] = {name: {} for name in self.roots}
        for stored, largest in self.memory:
            low = stored // block * block
            for name, mb in largest.items():
                key = f"{low}-{low + block}"
                peaks[name][key] = max(peaks[name].get(key, 0), round(mb))
        return peaks


def wait_for_run(meta_url: str, timeout: float) -> str:
    """The state of the first news_ingest run once it ended."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = rows(meta_url, "SELECT state FROM dag_run WHERE dag_id = 'news_ingest' ORDER BY id LIMIT 1")
        if run and run[0][0] in ("success", "failed"):
            return run[0][0]
        time.sleep(3)
    raise TimeoutError(f"news_ingest did not end in {timeout:.0f} s")


def measure(workers: int, site: Site, sources: Path, concurrency: int, timeout: float) -> dict:
    """One stack with `workers` Celery workers: its run's processing phase."""
    home = Path(tempfile.mkdtemp(prefix="newsdedup-celerybench-"))
    os.chmod(home, 0o711)  # noqa: S103 - the postgres user must reach its home inside
    state = home / "airflow" / "stack"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "NEWSDEDUP_"))}
    env |= {
        "AIRFLOW_HOME": str(home / "airflow"),
        "NEWSDEDUP_PGHOME": str(home / "pg"),
        "NEWSDEDUP_PGOPTS": "-c fsync=off -c synchronous_commit=off -c full_page_writes=off",
        "NEWSDEDUP_API_PORT": str(free_port()),
        "NEWSDEDUP_SOURCES": str(sources),
        "NEWSDEDUP_ALLOW_NETWORKS": "127.0.0.0/8",
        "NEWSDEDUP_MIN_HOST_DELAY": "0",
        "NEWSDEDUP_EXECUTOR": "celery",
        "NEWSDEDUP_CELERY_WORKERS": str(workers),
        "NEWSDEDUP_CELERY_CONCURRENCY": str(concurrency),
    }
    names = [f"worker{n + 1}" for n in range(workers)]
    sampler = None
    failed: BaseException | None = None
    try:
        up = subprocess.run(["bash", STACK, "up"], env=env, capture_output=True, text=True, timeout=600,
                            stdin=subprocess.DEVNULL)
        if up.returncode:
            raise RuntimeError(up.stdout[-2000:] + up.stderr[-2000:])
        settings = dict(line.split("=", 1) for line in (state / "env").read_text().splitlines() if "=" in line)
        meta_url = settings["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].replace("+psycopg2", "", 1)
        db_url = settings["AIRFLOW_CONN_NEWSDEDUP_DB"]
        sampler = WorkerSampler(state, names, db_url)
        run_state = wait_for_run(meta_url, timeout)
        sampler.stop()
        if run_state != "success":
            raise RuntimeError(f"the news_ingest run ended {run_state}")
        tasks = rows(
            meta_url,
            "SELECT task_id, map_index, hostname, extract(epoch FROM start_date), extract(epoch FROM end_date) "
            "FROM task_instance WHERE dag_id = 'news_ingest' AND task_id IN ('process_shard', 'finish_processing')",
        )
        start = min(float(t[3]) for t in tasks if t[0] == "process_shard")
        end = max(float(t[4]) for t in tasks if t[0] == "finish_processing")
        (stored,) = rows(db_url, "SELECT count(*) FROM articles")[0]
        quality = _quality(db_url, site.corpus, site.port)
        return {
            "workers": workers,
            "run": run_state,
            "articles": stored,
            "processing_s": round(end - start, 1),
            "articles_per_min": round(stored / (end - start) * 60),
            "process_tasks": sorted(f"{t[0]}[{t[1]}]@{t[2].rsplit('-', 1)[-1]}" for t in tasks),
            "worker_cores": sampler.cores(start, end),
            "worker_peak_tree_mb": {k: round(v) for k, v in sampler.peak_tree_mb.items()},
            "worker_peak_process_mb": {k: round(v) for k, v in sampler.peak_process_mb.items()},
            "worker_largest_process_mb_by_stored": sampler.memory_by_stored(),
            "pair_precision": quality["pair_precision"],
            "pair_recall": quality["pair_recall"],
        }
    except BaseException as exc:
        failed = exc
        raise
    finally:
        if sampler is not None:
            sampler.stop()
        subprocess.run(["bash", STACK, "down"], env=env, capture_output=True, timeout=300)
        subprocess.run([str(REPO / "scripts" / "pg.sh"), "destroy"], env=env, capture_output=True, timeout=120)
        if failed is None:
            shutil.rmtree(home, ignore_errors=True)
        else:
            print(f"{workers} workers failed ({failed!r}); its Airflow home is kept: {home}", file=sys.stderr)


def main() -> None:
    """Measure each worker count on the same site, print the figures and the ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", type=int, default=20_000)
    parser.add_argument("--hosts", type=int, default=20)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--concurrency", type=int, default=2, help="task slots per worker")
    parser.add_argument("--timeout", type=float, default=3600)
    args = parser.parse_args()
    if not shutil.which("redis-server"):
        sys.exit("redis-server is not installed (apt-get install -y redis-server; .ci/run installs it)")
    per_host = -(-args.articles // args.hosts)
    if per_host > 1000:
        sys.exit("at most 1,000 articles per host: a source fetches up to 1,000 pages a run (max_articles)")
    site = Site(args.articles, args.hosts, per_host)
    work = Path(tempfile.mkdtemp(prefix="newsdedup-celerybench-src-"))
    try:
        site.publish(per_host)
        sources = work / "sources.yaml"
        site.write_sources(sources)
        results = []
        for workers in args.workers:
            results.append(measure(workers, site, sources, args.concurrency, args.timeout))
            print(json.dumps(results[-1]), flush=True)
        if len(results) >= 2 and results[0]["articles_per_min"]:
            ratio = results[-1]["articles_per_min"] / results[0]["articles_per_min"]
            print(f"{results[-1]['workers']} workers / {results[0]['workers']}: {ratio:.2f}x articles/min")
    finally:
        site.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
