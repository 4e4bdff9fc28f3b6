"""newsdedup in the Airflow UI: a dashboard (FastAPI app + nav entry) and the DAG run notes.

- `/newsdedup/` (nav entry "newsdedup"): server-rendered page with SVG charts (duplicate rate per source
  over time, cluster sizes, articles and copies per source), the latest stories with their copies, source
  health, recent runs and crawl errors. `/newsdedup/api/dashboard.json` serves the same data.
  Rendered from autoescaped Jinja templates in newsdedup_dashboard_assets/; every response carries
  SECURITY_HEADERS (a strict CSP: the page has no script and no inline style).
  Airflow does not authenticate plugin apps: every data route checks the caller's Airflow token (the
  UI's `_token` cookie or `Authorization: Bearer`) and read access to the news_ingest DAG itself.
- A DAG run listener (runs in the scheduler) writes the run summary a task pushed as XCom `run_note`
  into the DAG run's note, unless a person has already written one.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Any

import jinja2
from airflow.listeners import hookimpl
from airflow.plugins_manager import AirflowPlugin
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from newsdedup.airflow_helpers import NOTE_LIMIT, NOTE_XCOM_KEY, server_db_url
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)

URL_PREFIX = "/newsdedup"
GUARDED_DAG = "news_ingest"  # read access to this DAG is read access to the dashboard
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
    """The article database: the Airflow connection newsdedup_db, else NEWSDEDUP_DB_URL; else 503."""
    url = server_db_url()
    if not url:
        raise HTTPException(status_code=503, detail="no connection newsdedup_db configured")
    return url


# --------------------------------------------------------------------------- page and charts

ASSETS = Path(__file__).with_name("newsdedup_dashboard_assets")
TEMPLATES = jinja2.Environment(
    loader=jinja2.FileSystemLoader(ASSETS), autoescape=True, undefined=jinja2.StrictUndefined
)


def _charts() -> Any:
    """The chart macros of charts.svg."""
    return TEMPLATES.get_template("charts.svg").module


def _r(value: float) -> float:
    """A coordinate rounded to one decimal."""
    return round(value, 1)


def _pct(value: float) -> str:
    """A share as a percentage with one decimal."""
    return f"{100 * value:.1f}%"


def line_chart(series: dict[str, list[dict]], width: int = 640, height: int = 260) -> str:
    """Duplicate rate (0-100 %) per source over time buckets, one line per source, as inline SVG."""
    buckets = sorted({point["t"] for points in series.values() for point in points})
    left, right, top, bottom = 44, 12, 12, 60
    plot_w, plot_h = width - left - right, height - top - bottom

    def x_of(bucket: str) -> float:
        """Horizontal position of a time bucket."""
        if len(buckets) == 1:
            return _r(left + plot_w / 2)
        return _r(left + plot_w * buckets.index(bucket) / (len(buckets) - 1))

    def line(n: int, source: str, points: list[dict]) -> dict:
        """One source's dots and legend entry."""
        lx, ly = left + (n % 3) * (plot_w / 3), top + plot_h + 32 + (n // 3) * 14
        dots = [
            {
                "x": x_of(p["t"]),
                "y": _r(top + plot_h * (1 - p["rate"])),
                "title": f"{source} {p['t']}: {p['duplicates']} of {p['articles']} new articles were copies "
                f"({_pct(p['rate'])})",
            }
            for p in points
        ]
        color = PALETTE[n % len(PALETTE)]
        return {
            "source": source,
            "color": color,
            "dots": dots,
            "key_x": _r(lx),
            "key_y": ly - 8,
            "label_x": _r(lx + 14),
            "label_y": ly + 1,
        }

    grid = [(pct, _r(top + plot_h * (1 - pct / 100))) for pct in (0, 25, 50, 75, 100)]
    step = max(1, len(buckets) // 6)
    chart = {
        "width": width,
        "height": height,
        "left": left,
        "right_x": width - right,
        "grid": [(pct, y, _r(y + 4)) for pct, y in grid],
        "empty": not buckets,
        "tick_y": top + plot_h + 16,
        "ticks": [(x_of(b), b[5:16].replace("T", " ")) for b in buckets[::step]],
        "lines": [line(n, s, points) for n, (s, points) in enumerate(sorted(series.items()))] if buckets else [],
    }
    return _charts().line_chart(chart)


def bar_chart(bars: list[tuple[str, int]], label: str, width: int = 360, height: int = 220) -> str:
    """Vertical bars with their counts above them, as inline SVG."""
    left, right, top, bottom = 12, 12, 22, 34
    plot_w, plot_h = width - left - right, height - top - bottom
    peak = max((value for _, value in bars), default=0) or 1
    slot = plot_w / max(1, len(bars))
    shapes = []
    for n, (name, value) in enumerate(bars):
        bar_h = plot_h * value / peak
        x, y = left + n * slot + slot * 0.15, top + plot_h - bar_h
        shapes.append(
            {
                "name": name,
                "value": value,
                "x": _r(x),
                "y": _r(y),
                "h": _r(bar_h),
                "mid": _r(x + slot * 0.35),
                "value_y": _r(y - 5),
            }
        )
    chart = {
        "label": label,
        "width": width,
        "height": height,
        "bars": shapes,
        "bar_w": _r(slot * 0.7),
        "axis_y": top + plot_h + 16,
        "color": PALETTE[0],
    }
    return _charts().bar_chart(chart)


def stacked_bars(rows: list[dict], width: int = 640) -> str:
    """Horizontal bars per source: canonical articles and copies, as inline SVG."""
    row_h, left, right, top = 22, 190, 70, 8
    peak = max((row["articles"] for row in rows), default=0) or 1
    plot_w = width - left - right
    shapes = []
    for n, row in enumerate(rows):
        w_own = plot_w * (row["articles"] - row["duplicates"]) / peak
        w_dup = plot_w * row["duplicates"] / peak
        shapes.append(
            {
                "source": row["source"],
                "articles": row["articles"],
                "duplicates": row["duplicates"],
                "y": top + n * row_h,
                "w_own": _r(w_own),
                "w_dup": _r(w_dup),
                "dup_x": _r(left + w_own),
                "value_x": _r(left + w_own + w_dup + 6),
            }
        )
    chart = {
        "width": width,
        "height": top + row_h * max(1, len(rows)) + 26,
        "left": left,
        "rows": shapes,
        "legend_y": top + row_h * max(1, len(rows)) + 12,
        "own_color": PALETTE[0],
        "dup_color": PALETTE[1],
    }
    return _charts().stacked_bars(chart)


def render_page(data: dict) -> str:
    """The dashboard as one HTML page (no scripts, no inline styles)."""
    totals = data["totals"]
    cards = [
        ("articles", totals["articles"], "articles"),
        ("stories", totals["stories"], "stories"),
        ("copies", totals["copies"], "copies collapsed"),
        ("duplicate-rate", _pct(totals["duplicate_rate"]), "duplicate rate"),
        ("sources", totals["sources"], "enabled sources"),
        ("errors", totals["errors_24h"], "crawl errors (24 h)"),
    ]
    sizes = [(f"{b['size']}+" if b["size"] >= 6 else str(b["size"]), b["stories"]) for b in data["cluster_sizes"]]
    rate = data["duplicate_rate"]
    return TEMPLATES.get_template("page.html").render(
        cards=cards,
        last=totals.get("last_run") or {},
        bucket=rate["bucket"],
        rate_chart=line_chart(rate["series"]),
        sizes_chart=bar_chart(sizes, "Stories by number of articles"),
        sources_chart=stacked_bars(data["sources"]),
        stories=data["latest_stories"],
        sources=data["sources"],
        runs=data["recent_runs"],
        errors=data["recent_errors"],
    )


# --------------------------------------------------------------------------- app

ICON = (
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24" fill="none" stroke="currentColor" '
    'stroke-width="2"><rect x="3" y="4" width="13" height="16" rx="2"/><path d="M7 8h5M7 12h5M7 16h3"/>'
    '<rect x="9" y="2" width="12" height="16" rx="2" opacity=".5"/></svg>'
)


def _dashboard_data() -> dict:
    """Query everything the page shows."""
    from newsdedup import dashboard_queries

    return dashboard_queries.dashboard(article_db_url())


# The UI shows the page in an iframe from its own origin (the nav entry), so framing is limited to the same
# origin, not denied. No script at all; the stylesheet is a served file, not inline.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "SAMEORIGIN",
    "Referrer-Policy": "no-referrer",
}


def error_response(request: Request, status_code: int, detail: str) -> Response:
    """An error as a short page for browsers, JSON for API clients."""
    if "text/html" in request.headers.get("accept", ""):
        body = TEMPLATES.get_template("error.html").render(detail=detail)
        return HTMLResponse(body, status_code=status_code)
    return JSONResponse({"detail": detail}, status_code=status_code)


async def security_headers(request: Request, call_next: Any) -> Response:
    """Add SECURITY_HEADERS to every response, an unexpected error's 500 included."""
    try:
        response = await call_next(request)
    except Exception:
        log.exception("newsdedup dashboard: %s %r failed", request.method, request.url.path)
        response = error_response(request, 500, "internal error (see the API server's log)")
    response.headers.update(SECURITY_HEADERS)
    return response


def create_app() -> FastAPI:
    """The dashboard's FastAPI app, mounted by Airflow's API server under /newsdedup."""
    app = FastAPI(title="newsdedup dashboard", docs_url=None, redoc_url=None, openapi_url=None)
    app.middleware("http")(security_headers)

    @app.exception_handler(StarletteHTTPException)  # also the router's 404 and 405
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        """HTTP errors through error_response."""
        return error_response(request, exc.status_code, str(exc.detail))

    @app.get("/", response_class=HTMLResponse)
    def page(user: Annotated[Any, Depends(authorized_user)]) -> HTMLResponse:
        """The dashboard page."""
        return HTMLResponse(render_page(_dashboard_data()), headers={"Cache-Control": "no-store"})

    @app.get("/api/dashboard.json")
    def data(user: Annotated[Any, Depends(authorized_user)]) -> JSONResponse:
        """The dashboard's data."""
        return JSONResponse(_dashboard_data(), headers={"Cache-Control": "no-store"})

    @app.get("/static/dashboard.css")
    def stylesheet() -> Response:
        """The page's stylesheet (no data, no login needed)."""
        return Response((ASSETS / "dashboard.css").read_bytes(), media_type="text/css")

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
