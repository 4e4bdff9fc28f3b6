"""The real stack in a real browser: `scripts/stack.sh up` (as `make up`), a news_ingest run, the Airflow UI.

Starts PostgreSQL, the demo site and the four Airflow components on free ports and temporary directories
(a developer's own stack is not touched), logs in with the generated admin password, checks the DAG's
successful run, the run's note, the per-source task names and the newsdedup dashboard against the
database, saves screenshots under tests/artifacts/, and stops everything with `scripts/stack.sh down`.
Chromium comes from Debian (`apt-get install chromium`, as root), driven by Playwright for Python.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO, query

pytestmark = pytest.mark.e2e
ARTIFACTS = REPO / "tests" / "artifacts"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def ensure_chromium() -> Path:
    """Return Debian's chromium, installing it (as root) when missing; skip with the reason when impossible."""
    if CHROMIUM.exists():
        return CHROMIUM
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        pytest.skip("chromium is not installed and this user cannot install it (run: apt-get install -y chromium)")
    env = os.environ | {"DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-qq", "chromium"]
    done = subprocess.run(install, env=env, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True, timeout=600)
        done = subprocess.run(install, env=env, capture_output=True, text=True, timeout=600)
    if done.returncode != 0 or not CHROMIUM.exists():
        pytest.skip(f"apt-get could not install chromium: {(done.stderr or done.stdout).strip()[-300:]}")
    return CHROMIUM


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def api(base: str, path: str, token: str | None = None, body: dict | None = None) -> tuple[int, dict]:
    """One JSON request to the stack's API server."""
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(base + path, data=data, headers=headers, method="POST" if body else "GET")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, {}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """`scripts/stack.sh up` on free ports and temporary directories; `down` afterwards, whatever happened."""
    ensure_chromium()
    home = tmp_path_factory.mktemp("stack")
    port = free_port()
    pg_home = f"/tmp/newsdedup-stacktest-{uuid.uuid4().hex[:8]}"  # reachable by the postgres OS user
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "NEWSDEDUP_"))}
    env |= {
        "AIRFLOW_HOME": str(home / "airflow"),
        "NEWSDEDUP_PGHOME": pg_home,
        "NEWSDEDUP_PGOPTS": "-c fsync=off -c synchronous_commit=off -c full_page_writes=off",
        "NEWSDEDUP_API_PORT": str(port),
        "NEWSDEDUP_STACK_DEMO": "1",
    }
    script = str(REPO / "scripts" / "stack.sh")
    try:
        up = subprocess.run(
            ["bash", script, "up"], env=env, capture_output=True, text=True, timeout=420, stdin=subprocess.DEVNULL
        )
        assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
        state = home / "airflow" / "stack"
        password = json.loads((state / "passwords.json").read_text())["admin"]
        db_url = next(
            line.split("=", 1)[1]
            for line in (state / "env").read_text().splitlines()
            if line.startswith("AIRFLOW_CONN_NEWSDEDUP_DB=")
        )
        yield {
            "base": f"http://127.0.0.1:{port}",
            "env": env,
            "up": up.stdout,
            "state": state,
            "password": password,
            "db_url": db_url,
        }
    finally:
        down = subprocess.run(["bash", script, "down"], env=env, capture_output=True, text=True, timeout=180)
        logs = home / "airflow" / "stack" / "logs"
        if logs.is_dir():  # kept for a look after the run (tests/artifacts is git-ignored)
            shutil.copytree(logs, ARTIFACTS / "stack-logs", dirs_exist_ok=True)
        subprocess.run([str(REPO / "scripts" / "pg.sh"), "destroy"], env=env, capture_output=True, timeout=120)
        assert down.returncode == 0, down.stdout + down.stderr


@pytest.fixture(scope="module")
def finished_run(stack: dict) -> dict:
    """The first news_ingest run, once it succeeded (fails with its state after 4 minutes)."""
    status, body = api(stack["base"], "/auth/token", body={"username": "admin", "password": stack["password"]})
    assert status in (200, 201), status
    token = body["access_token"]
    deadline = time.monotonic() + 240
    runs: list[dict] = []
    while time.monotonic() < deadline:
        _, body = api(stack["base"], "/api/v2/dags/news_ingest/dagRuns?order_by=run_after&limit=5", token)
        runs = body.get("dag_runs", [])
        if runs and runs[0]["state"] in ("success", "failed"):
            break
        time.sleep(3)
    assert runs and runs[0]["state"] == "success", runs
    return runs[0] | {"token": token}


def test_make_up_prints_the_login_once_and_keeps_it_private(stack: dict) -> None:
    assert f"login: admin / {stack['password']}" in stack["up"]
    assert (stack["state"] / "passwords.json").stat().st_mode & 0o777 == 0o600
    again = subprocess.run(
        ["bash", str(REPO / "scripts" / "stack.sh"), "up"],
        env=stack["env"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert again.returncode == 0, again.stderr
    assert "already running" in again.stdout and stack["password"] not in again.stdout
    status = subprocess.run(
        ["bash", str(REPO / "scripts" / "stack.sh"), "status"], env=stack["env"], capture_output=True, text=True
    )
    assert status.returncode == 0, status.stdout + status.stderr
    for component in ("api-server", "scheduler", "dag-processor", "triggerer", "demo-site"):
        assert re.search(rf"{component}\s+running \(pid \d+\)", status.stdout), status.stdout


def test_dashboard_refuses_callers_without_a_token(stack: dict) -> None:
    assert api(stack["base"], "/newsdedup/api/dashboard.json")[0] == 401
    assert api(stack["base"], "/newsdedup/api/dashboard.json", token="not-a-jwt")[0] == 403
    assert api(stack["base"], "/newsdedup/")[0] == 401


def test_browser_sees_the_run_its_note_and_the_dashboard(stack: dict, finished_run: dict) -> None:
    from playwright.sync_api import expect, sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    expect.set_options(timeout=30_000)  # the UI loads its panels one request at a time
    db = stack["db_url"]
    ((pages, stories, copies, segments),) = query(
        db, "SELECT pages_fetched, stories_created, duplicates_found, segments_removed FROM pipeline_runs"
    )
    ((articles, all_stories),) = query(db, "SELECT count(*), (SELECT count(*) FROM story_clusters) FROM articles")
    base, run_id = stack["base"], finished_run["dag_run_id"]
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(30_000)
            console: list[str] = []  # every frame's console: a blocked stylesheet or script is reported here
            page.on("console", lambda message: console.append(message.text))
            page.goto(base + "/")
            page.get_by_label("Username").fill("admin")
            page.get_by_label("Password").fill(stack["password"])
            page.get_by_role("button", name="Sign in").click()
            page.wait_for_url(base + "/")

            # The DAG with its successful run and the Asset event of its report task.
            page.goto(base + "/dags/news_ingest")
            expect(page.get_by_text("news_ingest").first).to_be_visible()
            expect(page.get_by_text("newsdedup_articles").first).to_be_visible()
            page.screenshot(path=str(ARTIFACTS / "stack-1-dag.png"))

            # The run: its note (the summary) and the mapped crawl tasks named by shard with their counts.
            page.goto(f"{base}/dags/news_ingest/runs/{urllib.parse.quote(run_id, safe='')}")
            expect(page.get_by_text("Success").first).to_be_visible()
            expect(page.get_by_text(f"{pages} pages fetched").first).to_be_visible()
            shard_label = re.compile(r"shard \d+/\d+: [1-9]\d* sources, [1-9]\d* pages")  # the shard that crawled
            expect(page.get_by_text(shard_label).first).to_be_visible()
            page.screenshot(path=str(ARTIFACTS / "stack-2-run.png"))
            page.get_by_role("button", name="Edit note").click()  # opens the whole note, rendered
            note = page.get_by_role("dialog")
            expect(note.get_by_text(f"stories created: {stories}")).to_be_visible()
            expect(note.get_by_text(f"copies collapsed: {copies}")).to_be_visible()
            expect(note.get_by_text(f"segments removed: {segments}")).to_be_visible()
            expect(note.get_by_role("cell", name="wyemouth-courier-atom")).to_be_visible()
            page.screenshot(path=str(ARTIFACTS / "stack-3-run-note.png"))
            note.get_by_role("button", name="Close").click()

            # The dashboard: nav entry, iframe, numbers equal to the database's.
            page.goto(base + "/")
            # exact: the home page also links the asset "newsdedup_articles", whose name contains ours
            page.get_by_role("link", name="newsdedup", exact=True).first.click()
            page.wait_for_url(re.compile(r"/plugin/newsdedup"))
            frame = page.frame_locator("iframe").first
            expect(frame.locator("[data-metric=articles] .n")).to_have_text(str(articles))
            expect(frame.locator("[data-metric=stories] .n")).to_have_text(str(all_stories))
            expect(frame.locator("[data-metric=copies] .n")).to_have_text(str(articles - all_stories))
            expect(frame.locator("svg[aria-label='Duplicate rate per source over time'] circle").first).to_be_attached()
            expect(frame.locator("#stories tr[data-story]").first).to_be_visible()
            expect(frame.get_by_text("Latest stories with their copies")).to_be_visible()
            expect(frame.locator(".card").first).to_have_css("border-top-left-radius", "8px")  # stylesheet allowed
            page.screenshot(path=str(ARTIFACTS / "stack-4-dashboard.png"), full_page=True)
            dashboard = browser.new_page(viewport={"width": 1300, "height": 1000})
            dashboard.on("console", lambda message: console.append(message.text))
            dashboard.context.add_cookies(page.context.cookies())
            response = dashboard.goto(base + "/newsdedup/")
            assert response is not None and response.status == 200
            headers = response.all_headers()
            expect(dashboard.locator("[data-metric=articles] .n")).to_have_text(str(articles))
            expect(dashboard.locator(".card").first).to_have_css("border-top-left-radius", "8px")
            dashboard.screenshot(path=str(ARTIFACTS / "stack-5-dashboard-page.png"), full_page=True)
            clean = list(console)
            # The policy is enforced and its reports reach `console`: an injected inline style is refused.
            inject = "() => document.head.appendChild(document.createElement('style')).textContent = 'h1{color:red}'"
            with dashboard.expect_console_message(lambda message: "Content Security Policy" in message.text):
                dashboard.evaluate(inject)
            expect(dashboard.locator("h1")).not_to_have_css("color", "rgb(255, 0, 0)")
        finally:
            browser.close()
    # The page works under its own headers, as the API server sends them: framed by the UI (same origin).
    assert "default-src 'none'" in headers["content-security-policy"], headers
    assert "frame-ancestors 'self'" in headers["content-security-policy"], headers
    assert (headers["x-frame-options"], headers["x-content-type-options"]) == ("SAMEORIGIN", "nosniff"), headers
    assert headers["referrer-policy"] == "no-referrer", headers
    assert not [text for text in clean if "Content Security Policy" in text], clean
