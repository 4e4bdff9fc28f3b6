"""Talk to the local stack's Airflow REST API (stdlib only): wait for health, kick off a run, show status.

Used by scripts/stack.sh; logs in with the admin password from the SimpleAuthManager passwords file.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from pathlib import Path


class Api:
    """A tiny client for Airflow's /api/v2 with a JWT from /auth/token."""

    def __init__(self, base: str, passwords: Path, user: str = "admin") -> None:
        self.base = base.rstrip("/")
        self.passwords = passwords
        self.user = user
        self.token: str | None = None

    def request(self, method: str, path: str, body: dict | None = None, auth: bool = True) -> tuple[int, dict]:
        """Send one request; return the status and the decoded JSON body (empty on none)."""
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if auth:
            headers["Authorization"] = f"Bearer {self.login()}"
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method, headers=headers)  # noqa: S310
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310 - our own 127.0.0.1 server
                raw = resp.read()
                return resp.status, json.loads(raw) if raw else {}
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            try:
                return exc.code, json.loads(raw) if raw else {}
            except ValueError:
                return exc.code, {"detail": raw.decode(errors="replace")}

    def login(self) -> str:
        """Return a JWT for the admin user (cached)."""
        if self.token is None:
            password = json.loads(self.passwords.read_text())[self.user]
            status, body = self.request(
                "POST", "/auth/token", {"username": self.user, "password": password}, auth=False
            )
            if status not in (200, 201) or "access_token" not in body:
                raise SystemExit(f"stack: login as {self.user} failed: HTTP {status} {body}")
            self.token = body["access_token"]
        return self.token


def wait_health(api: Api, timeout: float) -> None:
    """Wait until /api/v2/monitor/health answers 200."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            status, body = api.request("GET", "/api/v2/monitor/health", auth=False)
            if status == 200:
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(1)
    raise SystemExit(f"stack: the API server at {api.base} did not become healthy in {timeout:.0f} s")


def wait_dag(api: Api, dag_id: str, timeout: float) -> dict:
    """Wait until the dag-processor has serialised the DAG; return it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, body = api.request("GET", f"/api/v2/dags/{dag_id}")
        if status == 200:
            return body
        time.sleep(2)
    raise SystemExit(f"stack: DAG {dag_id} did not appear in {timeout:.0f} s (see the dag-processor log)")


def runs(api: Api, dag_id: str, limit: int = 5) -> list[dict]:
    """The DAG's latest runs, newest first."""
    status, body = api.request("GET", f"/api/v2/dags/{dag_id}/dagRuns?order_by=-run_after&limit={limit}")
    return body.get("dag_runs", []) if status == 200 else []


def kickoff(api: Api, dag_id: str, grace: float, since: str) -> str:
    """Unpause the DAG; unless the scheduler queues a run (after `since`, ISO UTC) within `grace` s, trigger one."""
    status, body = api.request("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": False})
    if status != 200:
        raise SystemExit(f"stack: could not unpause {dag_id}: HTTP {status} {body}")
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        for run in runs(api, dag_id, 5):
            if (run.get("queued_at") or "") >= since:  # ISO timestamps in UTC compare as text
                return f"{run['dag_run_id']} ({run['run_type']}, {run['state']})"
        time.sleep(1)
    status, body = api.request("POST", f"/api/v2/dags/{dag_id}/dagRuns", {"logical_date": None})
    if status not in (200, 201):
        raise SystemExit(f"stack: could not trigger {dag_id}: HTTP {status} {body}")
    return f"{body['dag_run_id']} (manual, {body['state']})"


def tasks_by_host(api: Api, dag_id: str, run_id: str) -> str:
    """Count the run's task instances per hostname (Celery workers: <host>-workerN): `box-worker1 9, box-worker2 8`."""
    path = f"/api/v2/dags/{dag_id}/dagRuns/{urllib.parse.quote(run_id, safe='')}/taskInstances?limit=100"
    status, body = api.request("GET", path)
    instances = body.get("task_instances", []) if status == 200 else []
    hosts = Counter(ti["hostname"] for ti in instances if ti.get("hostname"))
    return ", ".join(f"{host} {count}" for host, count in sorted(hosts.items()))


def show_status(api: Api, dag_ids: list[str]) -> None:
    """Print each DAG's paused flag and latest runs."""
    for dag_id in dag_ids:
        status, dag = api.request("GET", f"/api/v2/dags/{dag_id}")
        if status != 200:
            print(f"  {dag_id}: not loaded yet")
            continue
        paused = "paused" if dag.get("is_paused") else "active"
        print(f"  {dag_id} ({paused}, {dag.get('timetable_description') or dag.get('timetable_summary')}):")
        latest = runs(api, dag_id)
        for run in latest:
            note = " · note: " + run["note"].splitlines()[0] if run.get("note") else ""
            print(f"    {run['dag_run_id']}  {run['state']}{note}")
        if latest and (hosts := tasks_by_host(api, dag_id, latest[0]["dag_run_id"])):
            print(f"    tasks of the latest run by host: {hosts}")


def main(argv: list[str] | None = None) -> int:
    """Command line for scripts/stack.sh."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("command", choices=["wait-health", "wait-dag", "kickoff", "status"])
    parser.add_argument("dag_ids", nargs="*", default=["news_ingest"])
    parser.add_argument("--timeout", type=float, default=120)
    parser.add_argument("--since", default="", help="kickoff: only runs queued after this ISO UTC time count")
    args = parser.parse_args(argv)
    api = Api(
        f"http://127.0.0.1:{os.environ.get('AIRFLOW__API__PORT', '8080')}",
        Path(os.environ["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"]),
    )
    if args.command == "wait-health":
        wait_health(api, args.timeout)
    elif args.command == "wait-dag":
        for dag_id in args.dag_ids:
            wait_dag(api, dag_id, args.timeout)
    elif args.command == "kickoff":
        for dag_id in args.dag_ids:
            run = kickoff(api, dag_id, grace=min(args.timeout, 15), since=args.since)
            print(f"{dag_id}: unpaused, run {run}")
    else:
        show_status(api, args.dag_ids)
    return 0


if __name__ == "__main__":
    sys.exit(main())
