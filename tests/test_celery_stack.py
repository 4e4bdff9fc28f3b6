"""The CeleryExecutor stack: `make up EXECUTOR=celery WORKERS=2` (scripts/stack.sh) runs one news_ingest run
over the demo site on two Celery workers, and `make down` stops every process it started.

Starts a private PostgreSQL and Redis (Debian's redis-server, installed by .ci/run), the demo site, the four
Airflow components and two `airflow celery worker` processes on free ports and temporary directories.
Which worker ran a task is Airflow's TaskInstance.hostname: each worker records `<host>-workerN`
(newsdedup.worker_name). The articles are checked against the demo site's ground truth.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from demo import site as demo_site
from tests.conftest import REPO, query

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1200)]
ARTIFACTS = REPO / "tests" / "artifacts"
STACK = str(REPO / "scripts" / "stack.sh")
WORKERS = ("worker1", "worker2")
RUN_WAIT_S = 420


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def alive(pid: int) -> bool:
    """Whether a process exists and is not a zombie."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def started_pids(state: Path) -> dict[str, int]:
    """The PIDs `up` started: every component's PID file and the Redis server's own."""
    pids = {file.stem: int(file.read_text().split()[0]) for file in state.glob("*.pid")}
    redis_home = Path((state / "redis" / "home").read_text().strip())
    pids["redis-server"] = int((redis_home / "redis.pid").read_text())
    return pids


@pytest.fixture(scope="module")
def celery_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """`scripts/stack.sh up` with the CeleryExecutor and 2 workers; `down` afterwards, whatever happened."""
    if not shutil.which("redis-server"):
        pytest.skip("redis-server is not installed (apt-get install -y redis-server; .ci/run installs it)")
    home = tmp_path_factory.mktemp("celery-stack")
    state = home / "airflow" / "stack"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "NEWSDEDUP_"))}
    if "NEWSDEDUP_SHARED_DIR" in os.environ:  # the site must serve the corpus ground_truth() reads here
        env["NEWSDEDUP_SHARED_DIR"] = os.environ["NEWSDEDUP_SHARED_DIR"]
    env |= {
        "AIRFLOW_HOME": str(home / "airflow"),
        "NEWSDEDUP_PGHOME": f"/tmp/newsdedup-celerytest-{uuid.uuid4().hex[:8]}",  # reachable by the postgres user
        "NEWSDEDUP_PGOPTS": "-c fsync=off -c synchronous_commit=off -c full_page_writes=off",
        "NEWSDEDUP_API_PORT": str(free_port()),
        "NEWSDEDUP_STACK_DEMO": "1",
        "NEWSDEDUP_EXECUTOR": "celery",
        "NEWSDEDUP_CELERY_WORKERS": str(len(WORKERS)),
        # Each processing task starts its extraction pool, as it does for a real backlog (>= 200 pages):
        # a task forked from Celery's daemonic pool child must still be allowed to start it.
        "NEWSDEDUP_POOL_MIN_PAGES": "1",
    }
    pids: dict[str, int] = {}
    try:
        up = subprocess.run(
            ["bash", STACK, "up"], env=env, capture_output=True, text=True, timeout=480, stdin=subprocess.DEVNULL
        )
        assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
        pids = started_pids(state)
        settings = dict(line.split("=", 1) for line in (state / "env").read_text().splitlines() if "=" in line)
        status = subprocess.run(["bash", STACK, "status"], env=env, capture_output=True, text=True, timeout=120)
        yield {
            "env": env,
            "state": state,
            "status": status.stdout,
            "meta_url": settings["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].replace("+psycopg2", "", 1),
            "db_url": settings["AIRFLOW_CONN_NEWSDEDUP_DB"],
            "site_url": f"http://127.0.0.1:{(state / 'site-port').read_text().strip()}",
        }
    finally:
        down = subprocess.run(["bash", STACK, "down"], env=env, capture_output=True, text=True, timeout=300)
        if (state / "logs").is_dir():  # kept for a look after the run (tests/artifacts is git-ignored)
            shutil.copytree(state / "logs", ARTIFACTS / "celery-stack-logs", dirs_exist_ok=True)
        subprocess.run([str(REPO / "scripts" / "pg.sh"), "destroy"], env=env, capture_output=True, timeout=120)
        assert down.returncode == 0, down.stdout + down.stderr
        deadline = time.monotonic() + 10  # a daemon's last exit may take a moment to be reaped
        while any(alive(pid) for pid in pids.values()) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not {name: pid for name, pid in pids.items() if alive(pid)}, "still running after down"


@pytest.fixture(scope="module")
def first_run(celery_stack: dict) -> dict:
    """The first news_ingest run once it finished (bounded wait), with its task instances."""
    meta = celery_stack["meta_url"]
    deadline = time.monotonic() + RUN_WAIT_S
    run: list[tuple] = []
    while time.monotonic() < deadline:
        run = query(meta, "SELECT run_id, state FROM dag_run WHERE dag_id = 'news_ingest' ORDER BY id LIMIT 1")
        if run and run[0][1] in ("success", "failed"):
            break
        time.sleep(3)
    assert run and run[0][1] in ("success", "failed"), f"news_ingest did not finish in {RUN_WAIT_S} s: {run}"
    ((run_id, state),) = run
    tasks = query(
        meta,
        "SELECT task_id, map_index, state, hostname FROM task_instance "
        "WHERE dag_id = 'news_ingest' AND run_id = %s ORDER BY start_date",
        (run_id,),
    )
    return {"run_id": run_id, "state": state, "tasks": tasks}


def test_make_status_shows_the_workers_and_redis(celery_stack: dict) -> None:
    status = celery_stack["status"]
    assert "executor: celery" in status
    for name in (*WORKERS, "redis", "scheduler", "api-server"):
        assert any(line.split()[:2] == [name, "running"] for line in status.splitlines()), (name, status)


def test_the_run_succeeds_with_tasks_on_both_workers(first_run: dict) -> None:
    assert first_run["state"] == "success", first_run["tasks"]
    assert {state for _, _, state, _ in first_run["tasks"]} == {"success"}
    by_host: dict[str, list[str]] = {}
    for task_id, map_index, _, host in first_run["tasks"]:
        by_host.setdefault(host, []).append(task_id if map_index < 0 else f"{task_id}[{map_index}]")
    print({host: len(tasks) for host, tasks in by_host.items()}, by_host)  # shown with -s: who ran what
    assert set(by_host) == {f"{socket.gethostname()}-{name}" for name in WORKERS}, by_host


def test_make_status_counts_the_latest_runs_tasks_per_worker(celery_stack: dict, first_run: dict) -> None:
    status = subprocess.run(["bash", STACK, "status"], env=celery_stack["env"], capture_output=True, text=True)
    line = next((x for x in status.stdout.splitlines() if "tasks of the latest run by host:" in x), "")
    hosts = {entry.rsplit(" ", 1)[0] for entry in line.split(": ", 1)[-1].split(", ")} if line else set()
    assert hosts and hosts <= {f"{socket.gethostname()}-{name}" for name in WORKERS}, status.stdout


def test_every_demo_article_is_stored_once_in_its_story(celery_stack: dict, first_run: dict) -> None:
    """Two workers share the run: no article doubled or lost, every copy in its original's cluster."""
    assert first_run["state"] == "success"
    base = celery_stack["site_url"]
    truth = {base + path: story for path, story in demo_site.ground_truth().items()}
    rows = query(celery_stack["db_url"], "SELECT url, count(*), min(cluster_id) FROM articles GROUP BY url")
    assert {url for url, _, _ in rows} == set(truth)
    assert [url for url, count, _ in rows if count != 1] == []
    cluster = {url: cluster_id for url, _, cluster_id in rows}
    assert len(set(truth.values())) < len(truth), "the demo site has syndicated copies"
    urls = sorted(truth)
    for i, a in enumerate(urls):
        for b in urls[i + 1 :]:
            assert (truth[a] == truth[b]) == (cluster[a] == cluster[b]), (a, b)
