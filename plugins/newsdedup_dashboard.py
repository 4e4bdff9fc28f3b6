"""newsdedup in the Airflow UI: a dashboard (FastAPI app + nav entry) and the DAG run notes.

- `/newsdedup/` (nav entry "newsdedup"): server-rendered page with SVG charts (duplicate rate per source
  over time, cluster sizes, articles and copies per source), the latest stories with their copies, source
  health, recent runs and crawl errors. `/newsdedup/api/dashboard.json` serves the same data.
  Airflow does not authenticate plugin apps: every data route checks the caller's Airflow token (the
  UI's `_token` cookie or `Authorization: Bearer`) and read access to the news_ingest DAG itself.
- A DAG run listener (runs in the scheduler) writes the run summary a task pushed as XCom `run_note`
  into the DAG run's note, unless a person has already written one.
"""

from __future__ import annotations

import html
import logging
import os
from typing import Annotated, Any

from airflow.listeners import hookimpl
from airflow.plugins_manager import AirflowPlugin
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

log = logging.getLogger(__name__)

URL_PREFIX = "/newsdedup"
GUARDED_DAG = "news_ingest"  # read access to this DAG is read access to the dashboard
NOTE_XCOM_KEY = "run_note"
NOTE_LIMIT = 1000
PALETTE = ("#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#4b5563")


# --------------------------------------------------------------------------- run notes


class RunNoteListener:
    """Write the summary a task pushed as XCom `run_note` into the finished DAG run's note."""

    @hookimpl
    def on_dag_run_success(self, dag_run: Any, msg: str) -> None:
        """A run succeeded."""
        write_run_note(dag_run)

    @hookimpl
    def on_dag_run_failed(self, dag_run: Any, msg: str) -> None:
        """A run failed: its note says what did run and which tasks failed."""
        write_run_note(dag_run)


def write_run_note(dag_run: Any) -> str | None:
    """Set the run's note from its latest `run_note` XCom; never raises.

    In the scheduler the run belongs to the scheduler's session, which holds its row lock and commits:
    the note goes into that session (a second session would wait for the lock forever). A detached run
    (`airflow dags test`) gets a session of its own.
    """
    try:
        from airflow.models.dagrun import DagRun
        from airflow.utils.session import create_session
        from sqlalchemy.orm import object_session

        session = object_session(dag_run)
        if session is not None:
            return _set_note(session, dag_run)
        with create_session() as own:
            attached = own.get(DagRun, dag_run.id)
            return _set_note(own, attached) if attached is not None else None
    except Exception:
        log.exception("newsdedup: could not write the note of DAG run %s", getattr(dag_run, "run_id", "?"))
        return None


def _set_note(session: Any, dag_run: Any) -> str | None:
    """Copy the run's latest `run_note` XCom into its note, unless a person wrote the note."""
    from airflow.models.xcom import XComModel

    query = XComModel.get_many(run_id=dag_run.run_id, dag_ids=dag_run.dag_id, key=NOTE_XCOM_KEY)
    row = session.scalars(query.order_by(XComModel.timestamp.desc())).first()
    if row is None:
        return None
    existing = dag_run.dag_run_note
    if existing is not None and existing.user_id is not None:
        return None  # a person's note stays
    note = str(XComModel.deserialize_value(row))[:NOTE_LIMIT]
    dag_run.note = note
    return note


# --------------------------------------------------------------------------- access control


async def authorized_user(request: Request) -> Any:
    """Return the Airflow user behind the request's token, if it may read news_ingest; else 401/403."""
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import DagDetails
    from jwt import ExpiredSignatureError, InvalidTokenError

    header = request.headers.get("authorization", "")
    token = header[7:].strip() if header.lower().startswith("bearer ") else request.cookies.get("_token")
    if not token:
        raise HTTPException(status_code=401, detail="Not authenticated: log in to Airflow first")
    manager = get_auth_manager()
    try:
        user = await manager.get_user_from_token(token)
    except ExpiredSignatureError:
        raise HTTPException(status_code=401, detail="Token expired: log in to Airflow again") from None
    except InvalidTokenError:
        raise HTTPException(status_code=403, detail="Invalid token") from None
    if not manager.is_authorized_dag(method="GET", details=DagDetails(id=GUARDED_DAG), user=user):
        raise HTTPException(status_code=403, detail=f"Forbidden: no read access to the {GUARDED_DAG} DAG")
    return user


def article_db_url() -> str:
    """The article database: the Airflow connection newsdedup_db, else NEWSDEDUP_DB_URL."""
    from airflow.exceptions import AirflowNotFoundException
    from airflow.models.connection import Connection

    try:
        return Connection.get_connection_from_secrets("newsdedup_db").get_uri()
    except AirflowNotFoundException:
        url = os.environ.get("NEWSDEDUP_DB_URL", "")
        if not url:
            raise HTTPException(status_code=503, detail="no connection newsdedup_db configured") from None
        return url


# --------------------------------------------------------------------------- SVG charts


def _e(value: object) -> str:
    """Escape text for HTML and SVG."""
    return html.escape(str(value), quote=True)


def _pct(value: float) -> str:
    """A share as a percentage with one decimal."""
    return f"{100 * value:.1f}%"


def line_chart(series: dict[str, list[dict]], width: int = 640, height: int = 260) -> str:
    """Duplicate rate (0-100 %) per source over time buckets, one line per source, as inline SVG."""
    buckets = sorted({point["t"] for points in series.values() for point in points})
    left, right, top, bottom = 44, 12, 12, 60
    plot_w, plot_h = width - left - right, height - top - bottom
    parts = [
        f'<svg class="chart" role="img" aria-label="Duplicate rate per source over time" '
        f'viewBox="0 0 {width} {height}" width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg">'
    ]
    for pct in (0, 25, 50, 75, 100):
        y = top + plot_h * (1 - pct / 100)
        parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}" stroke="#e5e7eb"/>')
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" class="axis">{pct}%</text>')
    if not buckets:
        parts.append(
            f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle" class="empty">no articles yet</text>'
        )
        return "".join(parts) + "</svg>"

    def x_of(bucket: str) -> float:
        """Horizontal position of a time bucket."""
        if len(buckets) == 1:
            return left + plot_w / 2
        return left + plot_w * buckets.index(bucket) / (len(buckets) - 1)

    step = max(1, len(buckets) // 6)
    for bucket in buckets[::step]:
        parts.append(
            f'<text x="{x_of(bucket):.1f}" y="{top + plot_h + 16}" text-anchor="middle" class="axis">'
            f"{_e(bucket[5:16].replace('T', ' '))}</text>"
        )
    for n, (source, points) in enumerate(sorted(series.items())):
        color = PALETTE[n % len(PALETTE)]
        coords = [(x_of(p["t"]), top + plot_h * (1 - p["rate"]), p) for p in points]
        if len(coords) > 1:
            path = " ".join(f"{x:.1f},{y:.1f}" for x, y, _ in coords)
            parts.append(f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="2"/>')
        for x, y, p in coords:
            parts.append(
                f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4" fill="{color}"><title>{_e(source)} {_e(p["t"])}: '
                f"{p['duplicates']} of {p['articles']} new articles were copies ({_pct(p['rate'])})</title></circle>"
            )
        lx, ly = left + (n % 3) * (plot_w / 3), top + plot_h + 32 + (n // 3) * 14
        parts.append(f'<rect x="{lx:.1f}" y="{ly - 8}" width="10" height="10" fill="{color}"/>')
        parts.append(f'<text x="{lx + 14:.1f}" y="{ly + 1}" class="legend">{_e(source)}</text>')
    return "".join(parts) + "</svg>"


def bar_chart(bars: list[tuple[str, int]], label: str, width: int = 360, height: int = 220) -> str:
    """Vertical bars with their counts above them, as inline SVG."""
    left, right, top, bottom = 12, 12, 22, 34
    plot_w, plot_h = width - left - right, height - top - bottom
    peak = max((value for _, value in bars), default=0) or 1
    slot = plot_w / max(1, len(bars))
    parts = [
        f'<svg class="chart" role="img" aria-label="{_e(label)}" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg">'
    ]
    for n, (name, value) in enumerate(bars):
        bar_h = plot_h * value / peak
        x = left + n * slot + slot * 0.15
        y = top + plot_h - bar_h
        parts.append(
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{slot * 0.7:.1f}" height="{bar_h:.1f}" fill="{PALETTE[0]}">'
            f"<title>{_e(name)}: {value}</title></rect>"
        )
        parts.append(
            f'<text x="{x + slot * 0.35:.1f}" y="{y - 5:.1f}" text-anchor="middle" class="value">{value}</text>'
        )
        parts.append(
            f'<text x="{x + slot * 0.35:.1f}" y="{top + plot_h + 16}" text-anchor="middle" class="axis">'
            f"{_e(name)}</text>"
        )
    if not bars:
        parts.append(f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle" class="empty">no stories yet</text>')
    return "".join(parts) + "</svg>"


def stacked_bars(rows: list[dict], width: int = 640) -> str:
    """Horizontal bars per source: canonical articles and copies, as inline SVG."""
    row_h, left, right, top = 22, 190, 70, 8
    height = top + row_h * max(1, len(rows)) + 26
    peak = max((row["articles"] for row in rows), default=0) or 1
    plot_w = width - left - right
    parts = [
        f'<svg class="chart" role="img" aria-label="Articles and copies per source" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg">'
    ]
    for n, row in enumerate(rows):
        y = top + n * row_h
        own = row["articles"] - row["duplicates"]
        w_own, w_dup = plot_w * own / peak, plot_w * row["duplicates"] / peak
        parts.append(f'<text x="{left - 6}" y="{y + 14}" text-anchor="end" class="axis">{_e(row["source"])}</text>')
        parts.append(f'<rect x="{left}" y="{y + 3}" width="{w_own:.1f}" height="15" fill="{PALETTE[0]}"/>')
        parts.append(f'<rect x="{left + w_own:.1f}" y="{y + 3}" width="{w_dup:.1f}" height="15" fill="{PALETTE[1]}"/>')
        parts.append(
            f'<text x="{left + w_own + w_dup + 6:.1f}" y="{y + 14}" class="value">'
            f"{row['articles']} / {row['duplicates']}</text>"
        )
    ly = top + row_h * max(1, len(rows)) + 12
    parts.append(f'<rect x="{left}" y="{ly - 9}" width="10" height="10" fill="{PALETTE[0]}"/>')
    parts.append(f'<text x="{left + 14}" y="{ly}" class="legend">first of its story</text>')
    parts.append(f'<rect x="{left + 150}" y="{ly - 9}" width="10" height="10" fill="{PALETTE[1]}"/>')
    parts.append(f'<text x="{left + 164}" y="{ly}" class="legend">copy of a stored story</text>')
    return "".join(parts) + "</svg>"


# --------------------------------------------------------------------------- page

STYLE = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:16px;color:#111827;background:#fff}
h1{font-size:20px;margin:0 0 12px} h2{font-size:16px;margin:22px 0 8px}
.cards{display:flex;flex-wrap:wrap;gap:10px}
.card{border:1px solid #e5e7eb;border-radius:8px;padding:10px 14px;min-width:120px}
.card .n{font-size:24px;font-weight:600} .card .l{color:#6b7280;font-size:12px}
.grid{display:flex;flex-wrap:wrap;gap:24px;align-items:flex-start}
table{border-collapse:collapse;font-size:13px} td,th{border-bottom:1px solid #e5e7eb;padding:4px 8px;text-align:left}
th{color:#374151;font-weight:600} td.num{text-align:right;font-variant-numeric:tabular-nums}
.chart text{font-size:11px;fill:#374151} .chart .value{font-weight:600} .chart .empty{fill:#9ca3af;font-size:14px}
.copies{margin:2px 0 0 16px;color:#374151} .muted{color:#6b7280} .bad{color:#b91c1c;font-weight:600}
.ok{color:#15803d}
"""


def _link(url: str | None, text: object) -> str:
    """An escaped link for http(s) URLs, plain text otherwise."""
    if url and url.startswith(("http://", "https://")):
        return f'<a href="{_e(url)}" target="_blank" rel="noopener noreferrer">{_e(text)}</a>'
    return _e(text)


def render_page(data: dict) -> str:
    """The dashboard as one HTML page (no scripts)."""
    totals = data["totals"]
    last = totals.get("last_run") or {}
    cards = [
        ("articles", totals["articles"], "articles"),
        ("stories", totals["stories"], "stories"),
        ("copies", totals["copies"], "copies collapsed"),
        ("duplicate-rate", _pct(totals["duplicate_rate"]), "duplicate rate"),
        ("sources", totals["sources"], "enabled sources"),
        ("errors", totals["errors_24h"], "crawl errors (24 h)"),
    ]
    out = [
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>newsdedup</title><style>{STYLE}</style>"
        "</head><body><h1>newsdedup: duplicate-aware news ingestion</h1>",
        "<div class='cards'>",
        *(
            f"<div class='card' data-metric='{key}'><div class='n'>{_e(value)}</div><div class='l'>{label}</div></div>"
            for key, value, label in cards
        ),
        "</div>",
    ]
    if last:
        status_class = "ok" if last.get("status") == "success" else "bad"
        out.append(
            f"<p class='muted'>last run <b>{_e(last['run_key'])}</b>: <span class='{status_class}'>"
            f"{_e(last['status'])}</span>, {last['articles_new']} new articles, {last['stories_created']} stories "
            f"created, {last['duplicates_found']} copies collapsed, {last['segments_removed']} segments removed</p>"
        )
    sizes = [(f"{b['size']}+" if b["size"] >= 6 else str(b["size"]), b["stories"]) for b in data["cluster_sizes"]]
    rate = data["duplicate_rate"]
    out += [
        "<div class='grid'><div>",
        f"<h2>Duplicate rate per source over time <span class='muted'>(per {_e(rate['bucket'])})</span></h2>",
        line_chart(rate["series"]),
        "</div><div><h2>Cluster sizes <span class='muted'>(articles per story)</span></h2>",
        bar_chart(sizes, "Stories by number of articles"),
        "</div></div>",
        "<h2>Articles and copies per source</h2>",
        stacked_bars(data["sources"]),
        "<h2>Latest stories with their copies</h2>",
        _stories_table(data["latest_stories"]),
        "<h2>Sources</h2>",
        _sources_table(data["sources"]),
        "<h2>Recent runs</h2>",
        _runs_table(data["recent_runs"]),
        "<h2>Recent crawl errors</h2>",
        _errors_table(data["recent_errors"]),
        "<p class='muted'>Data: <a href='api/dashboard.json'>api/dashboard.json</a></p></body></html>",
    ]
    return "".join(out)


def _stories_table(stories: list[dict]) -> str:
    """Stories with copies, the canonical article first."""
    if not stories:
        return "<p class='muted'>No story has copies yet.</p>"
    rows = []
    for story in stories:
        copies = "".join(
            f"<li>{_link(c['url'], c['title'])} <span class='muted'>({_e(c['source'])}, {_e(c['method'])}"
            f"{_similarity(c['similarity'])})</span></li>"
            for c in story["copies"]
        )
        rows.append(
            f"<tr data-story='{story['cluster_id']}'><td class='num'>{story['size']}</td><td>"
            f"{_link(story['url'], story['title'])} <span class='muted'>({_e(story['source'])})</span>"
            f"<ul class='copies'>{copies}</ul></td><td>{_e((story['last_seen_at'] or '')[:16])}</td></tr>"
        )
    return (
        "<table id='stories'><tr><th>articles</th><th>story and copies</th><th>last copy</th></tr>"
        + "".join(rows)
        + "</table>"
    )


def _similarity(value: float | None) -> str:
    """A copy's similarity to its match, when there is one."""
    return "" if value is None else f", similarity {value:.2f}"


def _sources_table(sources: list[dict]) -> str:
    """Per-source totals and latest result."""
    rows = "".join(
        f"<tr><td>{_e(s['source'])}</td><td class='num'>{s['articles']}</td><td class='num'>{s['duplicates']}</td>"
        f"<td class='{'bad' if s['last_status'] == 'failed' else 'ok'}'>{_e(s['last_status'] or '-')}</td>"
        f"<td class='num'>{s['failure_streak'] or 0}</td><td>{_e(s['last_error'] or '')}</td></tr>"
        for s in sources
    )
    return (
        "<table id='sources'><tr><th>source</th><th>articles</th><th>copies</th><th>last run</th>"
        f"<th>failed in a row</th><th>last error</th></tr>{rows}</table>"
    )


def _runs_table(runs: list[dict]) -> str:
    """Latest runs with their counts."""
    rows = "".join(
        f"<tr><td>{_e(r['run_key'])}</td><td class='{'ok' if r['status'] == 'success' else 'bad'}'>{_e(r['status'])}"
        f"</td><td class='num'>{r['pages_fetched']}</td><td class='num'>{r['articles_new']}</td>"
        f"<td class='num'>{r['stories_created']}</td><td class='num'>{r['duplicates_found']}</td>"
        f"<td class='num'>{r['segments_removed']}</td><td class='num'>{r['errors']}</td></tr>"
        for r in runs
    )
    return (
        "<table id='runs'><tr><th>run</th><th>status</th><th>fetched</th><th>new</th><th>stories</th>"
        f"<th>copies</th><th>segments</th><th>errors</th></tr>{rows}</table>"
    )


def _errors_table(errors: list[dict]) -> str:
    """Latest failed requests."""
    if not errors:
        return "<p class='muted'>No crawl errors.</p>"
    rows = "".join(
        f"<tr><td>{_e((e['attempted_at'] or '')[:19])}</td><td>{_e(e['source'] or '')}</td>"
        f"<td>{_e(e['outcome'])}</td><td class='num'>{_e(e['http_status'] or '')}</td>"
        f"<td>{_link(e['url'], e['url'])}</td><td>{_e(e['error_message'] or '')}</td></tr>"
        for e in errors
    )
    return (
        "<table id='errors'><tr><th>time</th><th>source</th><th>outcome</th><th>HTTP</th><th>URL</th>"
        f"<th>message</th></tr>{rows}</table>"
    )


# --------------------------------------------------------------------------- app

ICON = (
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24" fill="none" stroke="currentColor" '
    'stroke-width="2"><rect x="3" y="4" width="13" height="16" rx="2"/><path d="M7 8h5M7 12h5M7 16h3"/>'
    '<rect x="9" y="2" width="12" height="16" rx="2" opacity=".5"/></svg>'
)


def _dashboard_data() -> dict:
    """Query everything the page shows."""
    from newsdedup import monitor

    return monitor.dashboard(article_db_url())


def create_app() -> FastAPI:
    """The dashboard's FastAPI app, mounted by Airflow's API server under /newsdedup."""
    app = FastAPI(title="newsdedup dashboard", docs_url=None, redoc_url=None, openapi_url=None)

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, exc: HTTPException) -> Response:
        """Errors as a short page for browsers, JSON for API clients."""
        if "text/html" in request.headers.get("accept", ""):
            body = f"<!doctype html><p>newsdedup dashboard: {_e(exc.detail)}</p>"
            return HTMLResponse(body, status_code=exc.status_code)
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code)

    @app.get("/", response_class=HTMLResponse)
    def page(user: Annotated[Any, Depends(authorized_user)]) -> HTMLResponse:
        """The dashboard page."""
        return HTMLResponse(render_page(_dashboard_data()), headers={"Cache-Control": "no-store"})

    @app.get("/api/dashboard.json")
    def data(user: Annotated[Any, Depends(authorized_user)]) -> JSONResponse:
        """The dashboard's data."""
        return JSONResponse(_dashboard_data(), headers={"Cache-Control": "no-store"})

    @app.get("/icon.svg")
    def icon() -> Response:
        """The nav entry's icon (no data, no login needed)."""
        return Response(ICON, media_type="image/svg+xml")

    return app


class NewsdedupPlugin(AirflowPlugin):
    """Dashboard app, nav entry and run-note listener."""

    name = "newsdedup"
    fastapi_apps = [{"app": create_app(), "url_prefix": URL_PREFIX, "name": "newsdedup dashboard"}]
    external_views = [
        {
            "name": "newsdedup",
            "href": "newsdedup/",
            "icon": "newsdedup/icon.svg",
            "url_route": "newsdedup",
            "destination": "nav",
        }
    ]
    listeners = [RunNoteListener()]
