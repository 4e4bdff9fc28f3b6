"""The dashboard app (plugins/newsdedup_dashboard.py) through FastAPI's TestClient: security headers on every
response, errors included, and stored text shown escaped.

Real parts: a real PostgreSQL filled by `pipeline.run_once` from two outlets on 127.0.0.1 (one publishes
an article whose title is markup, the other copies it), Airflow's configured auth manager checking real
signed tokens, the article database found through the Airflow connection `newsdedup_db`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import jwt
import psycopg2
import pytest
from fastapi.testclient import TestClient
from newsdedup import pipeline
from newsdedup.config import Settings

from tests.httpfixtures import LocalHTTPServer

pytestmark = pytest.mark.integration

HOSTILE_TITLE = "<script>alert('dashboard')</script> Council <b>approves</b> the tram depot"
PARAGRAPHS = [
    "The city council approved plans on Monday for a tram depot on the disused freight yard north of the "
    "river, ending a dispute that had delayed the second tram line by almost two years.",
    "The depot will house forty vehicles and a workshop, and building work is expected to start in the spring "
    "once the last contamination survey of the site has been completed.",
    "Residents of the neighbouring streets had asked for a noise barrier along the yard, and the final plan "
    "now includes one, the chair of the transport committee told reporters after the vote.",
]
OTHER = (
    "Harbour bridge closes for two weekends of repairs",
    [
        "The harbour bridge will close to traffic on two weekends this month while engineers replace worn "
        "expansion joints, the highways agency said, with buses diverted through the tunnel.",
        "Cyclists and pedestrians can still cross on the eastern walkway, which stays open throughout, and the "
        "agency promised extra staff at the tunnel entrance to keep the queues moving.",
    ],
)
# Every route of the app, with what an authorised GET gets.
ROUTES = {
    "/": ("text/html", 200),
    "/api/dashboard.json": ("application/json", 200),
    "/static/dashboard.css": ("text/css", 200),
    "/icon.svg": ("image/svg+xml", 200),
}


def escape(text: str) -> str:
    """Text as it must appear inside HTML."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("'", "&#39;")


def page(title: str, paragraphs: list[str]) -> str:
    body = "".join(f"<p>{p}</p>" for p in paragraphs)
    head = f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{escape(title)}</title></head>"
    return f"{head}<body><article><h1>{escape(title)}</h1>{body}</article></body></html>"


def feed(server: LocalHTTPServer, outlet: str, paths: list[tuple[str, str]]) -> str:
    items = "".join(
        f"<item><title>{escape(title)}</title><link>{server.url(path)}</link>"
        "<pubDate>Tue, 10 Nov 2026 07:30:00 GMT</pubDate></item>"
        for path, title in paths
    )
    return f"<?xml version='1.0'?><rss version='2.0'><channel><title>{outlet}</title>{items}</channel></rss>"


@pytest.fixture(scope="module")
def outlets() -> Iterator[LocalHTTPServer]:
    """Two outlets: the Gazette publishes the markup-titled article and another; the Courier copies the first."""
    server = LocalHTTPServer().start()
    server.route("/robots.txt", lambda h: h.reply(200, "User-agent: *\nAllow: /\n", content_type="text/plain"))
    routes = {
        "/gazette/tram-depot.html": page(HOSTILE_TITLE, PARAGRAPHS),
        "/gazette/harbour-bridge.html": page(*OTHER),
        "/courier/2026/11/tram-depot": page(HOSTILE_TITLE, PARAGRAPHS),
    }
    for path, html in routes.items():
        server.route(path, lambda h, html=html: h.reply(200, html))
    feeds = {
        "/gazette/rss.xml": feed(
            server, "Gazette", [("/gazette/tram-depot.html", HOSTILE_TITLE), ("/gazette/harbour-bridge.html", OTHER[0])]
        ),
        "/courier/rss.xml": feed(server, "Courier", [("/courier/2026/11/tram-depot", HOSTILE_TITLE)]),
    }
    for path, xml in feeds.items():
        server.route(path, lambda h, xml=xml: h.reply(200, xml, content_type="application/rss+xml; charset=utf-8"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def client(module_db_url: str, outlets: LocalHTTPServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    """The dashboard app after one crawl of both outlets, with its article database set as Airflow would."""
    import newsdedup_dashboard as ui
    from airflow.api_fastapi.app import create_auth_manager, purge_cached_app

    patch = pytest.MonkeyPatch()
    patch.setenv("NEWSDEDUP_ALLOW_NETWORKS", "127.0.0.0/8")
    patch.setenv("NEWSDEDUP_MIN_HOST_DELAY", "0")
    patch.setenv("NEWSDEDUP_WORKERS", "1")
    patch.setenv("AIRFLOW__API_AUTH__JWT_SECRET", "dashboard-test-signing-key-" + "0123456789abcdef" * 3)
    patch.setenv("AIRFLOW_CONN_NEWSDEDUP_DB", module_db_url)
    sources = tmp_path_factory.mktemp("dashboard") / "sources.yaml"
    sources.write_text(
        "sources:\n"
        f"  - {{name: gazette, url: '{outlets.url('/gazette/rss.xml')}', kind: rss}}\n"
        f"  - {{name: courier, url: '{outlets.url('/courier/rss.xml')}', kind: rss}}\n"
    )
    pipeline.run_once(Settings(db_url=module_db_url, sources_path=sources), run_key="manual__dashboard")
    create_auth_manager()
    try:
        with TestClient(ui.create_app()) as test_client:
            yield test_client
    finally:
        purge_cached_app()
        patch.undo()


def token(role: str | None) -> str:
    """A token signed with the API server's key, as the UI's login issues it.

    Without a `jti` claim: the auth manager then has no revocation list to look up, which lives in Airflow's
    metadata database, absent here.
    """
    from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager

    signer = SimpleAuthManager._get_token_signer()
    now = int(time.time())
    claims = {"sub": "tester", "role": role, "iat": now, "nbf": now, "exp": now + 600, "aud": signer.audience}
    return jwt.encode(claims, signer.signing_arg, algorithm=signer.algorithm, headers={"kid": signer.kid})


def assert_security_headers(response: httpx.Response) -> None:
    """Strict CSP (no script, no inline style, framed only by the same origin), nosniff, no referrer."""
    csp = {
        part.strip().split(" ", 1)[0]: part.strip() for part in response.headers["content-security-policy"].split(";")
    }
    assert csp["default-src"] == "default-src 'none'", csp
    assert csp["frame-ancestors"] == "frame-ancestors 'self'", csp
    assert "script-src" not in csp and "unsafe-inline" not in str(csp) and "unsafe-eval" not in str(csp), csp
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "SAMEORIGIN"
    assert response.headers["referrer-policy"] == "no-referrer"


def test_every_route_sends_the_security_headers(client: TestClient) -> None:
    assert {route.path for route in client.app.routes} == set(ROUTES)  # a new route needs a row in ROUTES
    viewer = {"Authorization": f"Bearer {token('viewer')}"}
    for path, (media_type, status) in ROUTES.items():
        response = client.get(path, headers=viewer)
        assert (response.status_code, response.headers["content-type"].split(";")[0]) == (status, media_type), path
        assert_security_headers(response)
    assert client.get("/api/dashboard.json", headers=viewer).json()["totals"]["articles"] == 3


@pytest.mark.parametrize(
    ("method", "path", "headers", "status"),
    [
        ("GET", "/", {"Accept": "text/html"}, 401),
        ("GET", "/api/dashboard.json", {}, 401),
        ("GET", "/", {"Authorization": "Bearer not-a-jwt", "Accept": "text/html"}, 403),
        ("GET", "/api/dashboard.json", {"Cookie": "_token=not-a-jwt"}, 403),
        ("GET", "/no-such-page", {"Accept": "text/html"}, 404),
        ("POST", "/", {}, 405),
    ],
    ids=["no-token-page", "no-token-json", "bad-token", "bad-cookie", "not-found", "wrong-method"],
)
def test_error_responses_send_the_security_headers(
    client: TestClient, method: str, path: str, headers: dict, status: int
) -> None:
    response = client.request(method, path, headers=headers)
    assert response.status_code == status
    assert_security_headers(response)


def test_user_without_access_gets_403_with_the_headers(client: TestClient) -> None:
    response = client.get("/", headers={"Authorization": f"Bearer {token(None)}", "Accept": "text/html"})
    assert response.status_code == 403 and "no read access to the news_ingest DAG" in response.text
    assert_security_headers(response)


def test_unexpected_failure_is_a_500_with_the_headers_and_no_secret(
    client: TestClient, module_db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = module_db_url.rsplit("/", 1)[0] + "/no_such_database"
    monkeypatch.setenv("AIRFLOW_CONN_NEWSDEDUP_DB", missing)
    response = client.get("/api/dashboard.json", headers={"Authorization": f"Bearer {token('viewer')}"})
    assert response.status_code == 500
    assert response.json() == {"detail": "internal error (see the API server's log)"}
    assert_security_headers(response)


def test_stored_markup_is_shown_escaped(client: TestClient, module_db_url: str) -> None:
    with psycopg2.connect(module_db_url) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM articles WHERE title = %s", (HOSTILE_TITLE,))
        assert cur.fetchone() == (2,)  # stored as published: the original and its copy
    html = client.get("/", headers={"Authorization": f"Bearer {token('viewer')}"}).text
    assert "<script" not in html and "<b>approves" not in html
    assert html.count(escape(HOSTILE_TITLE)) == 2  # the story and its copy, as text
    assert "<link rel='stylesheet' href='static/dashboard.css'>" in html and "<style" not in html
    assert " style=" not in html  # inline styles would need 'unsafe-inline'


HOSTILE_SOURCE = "\"><script>alert('source')</script><x a='"
HOSTILE_TEXT = "<img src=x onerror=\"alert(1)\"> 'quoted' & \"double\""


def hostile_data() -> dict:
    """Dashboard data whose every stored text (source names, titles, URLs, errors, run keys) is markup."""
    story = {
        "cluster_id": 1, "size": 2, "last_seen_at": "2026-11-10T07:30:00+00:00", "article_id": 1,
        "title": HOSTILE_TEXT, "url": "javascript:alert(1)", "published_at": None, "source": HOSTILE_SOURCE,
        "copies": [{"cluster_id": 1, "article_id": 2, "title": HOSTILE_TITLE, "url": "https://x.example/\"><b>",
                    "source": HOSTILE_SOURCE, "method": "<i>m</i>", "similarity": 0.9}],
    }
    run = {"run_id": 1, "run_key": HOSTILE_SOURCE, "status": "<b>success</b>", "pages_fetched": 1, "articles_new": 1,
           "stories_created": 1, "duplicates_found": 1, "segments_removed": 0, "errors": 0}
    return {
        "totals": {"articles": 2, "stories": 1, "copies": 1, "duplicate_rate": 0.5, "sources": 1, "errors_24h": 1,
                   "last_run": run},
        "duplicate_rate": {"bucket": "hour", "series": {HOSTILE_SOURCE: [
            {"t": "2026-11-10T07:00:00+00:00", "articles": 2, "duplicates": 1, "rate": 0.5}]}},
        "cluster_sizes": [{"size": 2, "stories": 1}],
        "latest_stories": [story],
        "recent_errors": [{"attempted_at": "2026-11-10T07:30:00", "source": HOSTILE_SOURCE, "request_kind": "article",
                           "url": "https://x.example/'onmouseover='alert(1)", "outcome": "http_error",
                           "http_status": 500, "error_class": "X", "error_message": HOSTILE_TEXT}],
        "recent_runs": [run],
        "sources": [{"source": HOSTILE_SOURCE, "last_crawled_at": None, "articles": 2, "duplicates": 1,
                     "last_status": "failed", "failure_streak": 1, "last_error": HOSTILE_TEXT,
                     "next_due_at": None, "poll_interval_seconds": None, "poll_reason": None}],
    }


def test_hostile_source_names_and_titles_are_escaped_in_page_and_charts() -> None:
    """Markup and quotes in source names, titles, URLs and errors come out as text, in HTML and SVG alike."""
    import html as html_lib

    import markupsafe
    import newsdedup_dashboard as ui

    page = ui.render_page(hostile_data())
    assert "<script" not in page and "<img" not in page and "<b>success" not in page and "<i>" not in page
    assert "javascript:" not in page  # a link only for http(s) URLs
    assert "onmouseover='" not in page and 'onerror="' not in page  # no attribute breaks out of its quotes
    assert str(markupsafe.escape(HOSTILE_SOURCE)) in page
    # The name shows in both charts (legend, bars), the stories' two entries, the sources and errors tables.
    assert page.count("&lt;script&gt;alert(") >= 6
    assert "&lt;img src=x onerror=&#34;alert(1)&#34;&gt; &#39;quoted&#39; &amp; &#34;double&#34;" in page
    assert html_lib.unescape(page).count(HOSTILE_SOURCE) >= 6  # shown, as text, not dropped
