"""Fetcher behaviour against a real local HTTP server."""

from __future__ import annotations

import gzip
import socket
import threading
import time
import zlib
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from newsdedup.content import ACCEPT_ENCODING, decode_body, parse_content_type, sniff_media_type
from newsdedup.fetch import Fetcher, FetchPolicy
from newsdedup.outcomes import FetchResult
from newsdedup.politeness import HostThrottle
from newsdedup.transport import parse_retry_after

from tests.httpfixtures import (  # noqa: F401 - http_server_fixture provides `http_server`
    LocalHTTPServer,
    RequestHandler,
    drip,
    drip_headers,
    free_port,
    gzip_bomb,
    gzipped,
    hang,
    http_server_fixture,
    redirect,
    reset_connection,
    sequence,
    static,
    stream,
)

EPS = 0.06  # server-side timestamps lag the client by a scheduler tick or two on a loaded machine
HTML = "<!doctype html><html><head><title>T</title></head><body><p>Merhaba dünya</p></body></html>"
TURKISH = (
    "<!DOCTYPE html><html><head><title>Haberler</title></head><body>\n"
    "<h1>İstanbul'da yoğun kar yağışı</h1>\n"
    "<p>Şehir genelinde etkili olan kar yağışı nedeniyle ulaşımda aksamalar yaşanıyor. "
    "Öğrenciler için okullar bugün tatil edildi.</p>\n"
    "<p>Meteoroloji Genel Müdürlüğü, soğuk havanın hafta sonuna kadar süreceğini açıkladı. "
    "Sürücülerin dikkatli olması gerektiği vurgulandı.</p>\n"
    "<p>Çarşamba günü ılık bir hava bekleniyor; ağaçlar, güzel çiçekler ve ışıklı sokaklar.</p>\n"
    "</body></html>"
)


def policy(**overrides: object) -> FetchPolicy:
    """Test policy: loopback allowed, no politeness delay, fast back-off, short timeouts."""
    base: dict[str, object] = {
        "allow_networks": ("127.0.0.0/8",),
        "min_host_delay": 0.0,
        "retry_backoff": 0.01,
        "connect_timeout": 2.0,
        "read_timeout": 3.0,
        "total_timeout": 5.0,
    }
    base.update(overrides)
    return FetchPolicy(**base)  # type: ignore[arg-type]


def fetch(server: LocalHTTPServer, path: str, **kwargs: object) -> FetchResult:
    """Fetch one path with a fresh Fetcher (policy overrides as kwargs)."""
    get_kwargs = {k: kwargs.pop(k) for k in ("etag", "last_modified", "accept") if k in kwargs}
    with Fetcher(policy(**kwargs)) as fetcher:
        return fetcher.get(server.url(path), **get_kwargs)  # type: ignore[arg-type]


# ------------------------------------------------------------------ basics


def test_ok_html(http_server: LocalHTTPServer) -> None:
    http_server.route("/page", static(HTML, headers={"ETag": '"abc"', "Last-Modified": "Mon, 01 Jan 2024"}))
    result = fetch(http_server, "/page")
    assert result.ok, result
    assert result.outcome == "ok"
    assert result.status == 200
    assert result.text == HTML
    assert result.body == HTML.encode()
    assert result.content_type == "text/html"
    assert result.encoding == "utf-8"
    assert result.final_url == result.url == http_server.url("/page")
    assert result.etag == '"abc"'
    assert result.last_modified == "Mon, 01 Jan 2024"
    assert result.nbytes == len(HTML.encode())
    assert result.error_class is None
    sent = http_server.requests_for("/page")[0].headers
    assert sent["user-agent"].startswith("newsdedup/")
    assert sent["accept-encoding"] == ACCEPT_ENCODING
    assert "text/html" in sent["accept"]


def test_accept_override_and_custom_user_agent(http_server: LocalHTTPServer) -> None:
    http_server.route("/feed", static("<rss/>", content_type="application/rss+xml"))
    with Fetcher(policy(user_agent="testbot/2.0")) as fetcher:
        result = fetcher.get(http_server.url("/feed"), accept="application/rss+xml")
    assert result.ok and result.content_type == "application/rss+xml"
    sent = http_server.requests_for("/feed")[0].headers
    assert sent["accept"] == "application/rss+xml"
    assert sent["user-agent"] == "testbot/2.0"


@pytest.mark.parametrize("status", [404, 410])
def test_client_errors_are_not_retried(http_server: LocalHTTPServer, status: int) -> None:
    http_server.route("/gone", static("no", status=status))
    result = fetch(http_server, "/gone")
    assert result.outcome == "http_error"
    assert result.status == status
    assert result.body is None and result.text is None
    assert result.error_class == "HTTPError"
    assert http_server.hits("/gone") == 1


def test_500_is_retried_then_reported(http_server: LocalHTTPServer) -> None:
    http_server.route("/err", static("boom", status=500))
    result = fetch(http_server, "/err", retries=2)
    assert result.outcome == "http_error" and result.status == 500
    assert http_server.hits("/err") == 3


def test_501_is_not_retried(http_server: LocalHTTPServer) -> None:
    http_server.route("/ni", static("", status=501))
    assert fetch(http_server, "/ni").status == 501
    assert http_server.hits("/ni") == 1


def test_transient_503_then_success(http_server: LocalHTTPServer) -> None:
    http_server.route("/flaky", sequence(static("", status=503), static(HTML)))
    result = fetch(http_server, "/flaky")
    assert result.ok and result.text == HTML
    assert http_server.hits("/flaky") == 2


def test_429_with_retry_after_waits_then_retries(http_server: LocalHTTPServer) -> None:
    http_server.route(
        "/rate", sequence(static("slow down", status=429, headers={"Retry-After": "1"}), static(HTML))
    )
    result = fetch(http_server, "/rate")
    assert result.ok, result
    first, second = http_server.requests_for("/rate")
    assert second.at - first.at >= 1.0 - EPS


def test_retry_after_is_honoured_only_once(http_server: LocalHTTPServer) -> None:
    http_server.route("/rate", static("", status=429, headers={"Retry-After": "0"}))
    result = fetch(http_server, "/rate", retries=5)
    assert result.outcome == "http_error" and result.status == 429
    assert result.retry_after == 0
    assert http_server.hits("/rate") == 2


def test_long_retry_after_gives_up_and_records_it(http_server: LocalHTTPServer) -> None:
    http_server.route("/rate", static("", status=503, headers={"Retry-After": "120"}))
    result = fetch(http_server, "/rate")
    assert result.outcome == "http_error" and result.status == 503
    assert result.retry_after == 120
    assert http_server.hits("/rate") == 1


def test_retry_after_http_date_is_parsed(http_server: LocalHTTPServer) -> None:
    later = format_datetime(datetime.now(UTC) + timedelta(minutes=5), usegmt=True)
    http_server.route("/rate", static("", status=429, headers={"Retry-After": later}))
    result = fetch(http_server, "/rate")
    assert result.retry_after is not None and 280 < result.retry_after <= 300
    assert http_server.hits("/rate") == 1


def test_parse_retry_after() -> None:
    now = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("7", now) == 7
    assert parse_retry_after(" 0 ", now) == 0
    assert parse_retry_after("Wed, 01 May 2024 12:00:30 GMT", now) == 30
    assert parse_retry_after("Wed, 01 May 2024 11:00:00 GMT", now) == 0  # in the past
    assert parse_retry_after("-5", now) == 0
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after(None, now) is None
    assert parse_retry_after("nan", now) is None


# ------------------------------------------------------------------ redirects


def test_redirect_chain(http_server: LocalHTTPServer) -> None:
    http_server.route("/a", redirect("/b", 301))
    http_server.route("/b", redirect("c?x=1", 302))  # relative to /b
    http_server.route("/c", redirect(http_server.url("/final"), 307))
    http_server.route("/final", static(HTML))
    result = fetch(http_server, "/a")
    assert result.ok
    assert result.url == http_server.url("/a")
    assert result.final_url == http_server.url("/final")
    assert [r.path for r in http_server.requests if r.route != "/robots.txt"] == [
        "/a",
        "/b",
        "/c?x=1",
        "/final",
    ]


def test_redirect_loop(http_server: LocalHTTPServer) -> None:
    http_server.route("/loop1", redirect("/loop2"))
    http_server.route("/loop2", redirect("/loop1"))
    result = fetch(http_server, "/loop1")
    assert result.outcome == "redirect_error"
    assert result.error_class == "RedirectLoop"
    assert http_server.hits("/loop1") == 1 and http_server.hits("/loop2") == 1


def test_too_many_redirects(http_server: LocalHTTPServer) -> None:
    for i in range(10):
        http_server.route(f"/r{i}", redirect(f"/r{i + 1}"))
    result = fetch(http_server, "/r0", max_redirects=3)
    assert result.outcome == "redirect_error"
    assert result.error_class == "TooManyRedirects"
    assert result.final_url == http_server.url("/r3")
    assert sum(http_server.hits(f"/r{i}") for i in range(10)) == 4


def test_redirect_to_refused_address(http_server: LocalHTTPServer) -> None:
    target = f"http://127.0.0.2:{http_server.port}/internal"
    http_server.route("/go", redirect(target))
    result = fetch(http_server, "/go", allow_networks=("127.0.0.1/32",))
    assert result.outcome == "address_refused"
    assert result.error_class == "AddressRefused"
    assert result.final_url == target
    assert "127.0.0.2" in (result.error_message or "")


@pytest.mark.parametrize("location", ["file:///etc/passwd", "http://[broken.example/x"])
def test_redirect_to_other_scheme_or_a_broken_url_is_an_error(http_server: LocalHTTPServer, location: str) -> None:
    http_server.route("/go", redirect(location))
    result = fetch(http_server, "/go")
    assert result.outcome == "redirect_error" and result.error_class == "InvalidRedirect"
    assert repr(location) in (result.error_message or "")


def test_redirect_without_location(http_server: LocalHTTPServer) -> None:
    http_server.route("/go", static("", status=302))
    result = fetch(http_server, "/go")
    assert result.outcome == "redirect_error" and result.status == 302


# ------------------------------------------------------------------ address guard in the fetcher


def test_loopback_refused_by_default(http_server: LocalHTTPServer) -> None:
    http_server.route("/page", static(HTML))
    with Fetcher(FetchPolicy(min_host_delay=0)) as fetcher:
        result = fetcher.get(http_server.url("/page"))
    assert result.outcome == "address_refused"
    assert http_server.requests == []


def test_dns_rebinding_is_caught_at_connect_time(
    http_server: LocalHTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pre-check sees a public address, the connection resolves to loopback: refused."""
    http_server.route("/page", static(HTML))
    real = socket.getaddrinfo
    answers = iter(["93.184.216.34"])

    def rebinding(host: str, port: int, *args: object, **kwargs: object) -> list:
        if host == "rebind.test":
            addr = next(answers, "127.0.0.1")
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (addr, port))]
        return real(host, port, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    with Fetcher(FetchPolicy(min_host_delay=0, respect_robots=False, retries=0)) as fetcher:
        result = fetcher.get(f"http://rebind.test:{http_server.port}/page")
    assert result.outcome == "address_refused", result
    assert http_server.requests == []


def test_credentials_in_url_are_refused(http_server: LocalHTTPServer) -> None:
    with Fetcher(policy()) as fetcher:
        result = fetcher.get(f"http://user:pw@127.0.0.1:{http_server.port}/")
    assert result.outcome == "address_refused" and "credentials" in (result.error_message or "")


@pytest.mark.parametrize(
    "url",
    ["", "   ", "example.com/page", "ftp://example.com/", "http://", "http://[::1", "http://a\nb/", None, 42],
)
def test_invalid_urls_never_raise(url: object) -> None:
    with Fetcher(policy()) as fetcher:
        result = fetcher.get(url)  # type: ignore[arg-type]
    assert result.outcome == "invalid_url"
    assert result.error_class == "InvalidURL" and result.error_message


def test_connect_timeout_is_retried() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        # Fill the accept backlog; later SYNs are dropped, so connecting times out.
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            started = time.monotonic()
            with Fetcher(policy(respect_robots=False, retries=1, connect_timeout=0.3)) as fetcher:
                result = fetcher.get(f"http://127.0.0.1:{port}/")
    assert result.outcome == "timeout"
    assert result.error_class == "ConnectTimeout"
    assert 0.6 - EPS <= time.monotonic() - started < 3


def test_https_goes_through_the_guarded_connection(http_server: LocalHTTPServer) -> None:
    """TLS to a plain-HTTP port fails cleanly; TLS to a refused address is refused."""
    with Fetcher(policy(respect_robots=False, retries=0)) as fetcher:
        tls = fetcher.get(f"https://127.0.0.1:{http_server.port}/")
    assert tls.outcome == "connection_error" and tls.error_class == "SSLError"
    with Fetcher(FetchPolicy(respect_robots=False, min_host_delay=0)) as fetcher:
        refused = fetcher.get(f"https://127.0.0.1:{http_server.port}/")
    assert refused.outcome == "address_refused"


def test_connection_refused_is_retried_then_reported() -> None:
    with Fetcher(policy(respect_robots=False, retries=1)) as fetcher:
        result = fetcher.get(f"http://127.0.0.1:{free_port()}/")
    assert result.outcome == "connection_error"
    assert result.error_class == "ConnectionError"


# ------------------------------------------------------------------ size limits


def test_huge_streamed_page_is_aborted(http_server: LocalHTTPServer) -> None:
    http_server.route("/huge", stream(64 * 1024 * 1024))
    started = time.monotonic()
    result = fetch(http_server, "/huge", max_bytes=1024 * 1024)
    assert result.outcome == "too_large"
    assert result.error_class == "BodyTooLarge"
    assert result.body is None and result.text is None
    assert 1024 * 1024 < result.nbytes <= 1024 * 1024 + 64 * 1024
    assert time.monotonic() - started < 3


def test_declared_huge_length_is_refused_before_reading(http_server: LocalHTTPServer) -> None:
    http_server.route("/huge", stream(8 * 1024 * 1024, declare_length=True))
    result = fetch(http_server, "/huge", max_bytes=1024 * 1024)
    assert result.outcome == "too_large" and result.error_class == "BodyTooLarge"
    assert result.nbytes == 0
    assert "Content-Length" in (result.error_message or "")


def test_gzip_bomb_is_aborted(http_server: LocalHTTPServer) -> None:
    http_server.route("/bomb", gzip_bomb(64 * 1024 * 1024))
    result = fetch(http_server, "/bomb", max_decompressed_bytes=2 * 1024 * 1024)
    assert result.outcome == "too_large"
    assert result.error_class == "DecompressedTooLarge"
    assert result.nbytes < 200 * 1024  # small on the wire


def test_gzip_body_is_decompressed(http_server: LocalHTTPServer) -> None:
    raw = TURKISH.encode("utf-8")
    http_server.route("/gz", gzipped(raw))
    result = fetch(http_server, "/gz")
    assert result.ok and result.text == TURKISH
    assert result.nbytes == len(gzip.compress(raw)) or result.nbytes < len(raw)


@pytest.mark.parametrize("wrapped", [True, False], ids=["zlib-deflate", "raw-deflate"])
def test_deflate_both_flavours(http_server: LocalHTTPServer, wrapped: bool) -> None:
    comp = zlib.compressobj(6, zlib.DEFLATED, zlib.MAX_WBITS if wrapped else -zlib.MAX_WBITS)
    data = comp.compress(HTML.encode()) + comp.flush()
    http_server.route("/d", static(data, headers={"Content-Encoding": "deflate"}))
    result = fetch(http_server, "/d")
    assert result.ok and result.text == HTML


def test_multi_member_gzip(http_server: LocalHTTPServer) -> None:
    data = gzip.compress(b"<p>one</p>") + gzip.compress(b"<p>two</p>")
    http_server.route("/gz", static(data, headers={"Content-Encoding": "gzip"}))
    assert fetch(http_server, "/gz").text == "<p>one</p><p>two</p>"


def test_corrupt_gzip_is_reported(http_server: LocalHTTPServer) -> None:
    http_server.route("/gz", static(b"this is not gzip at all", headers={"Content-Encoding": "gzip"}))
    result = fetch(http_server, "/gz")
    assert result.outcome == "http_error" and result.error_class == "ContentDecodingError"


def test_unknown_content_encoding(http_server: LocalHTTPServer) -> None:
    http_server.route("/z", static(b"\x28\xb5\x2f\xfd", headers={"Content-Encoding": "zstd"}))
    result = fetch(http_server, "/z")
    assert result.outcome == "unsupported_content_type"
    assert result.error_class == "UnsupportedContentEncoding"


# ------------------------------------------------------------------ timeouts and broken connections


def test_slow_drip_hits_total_timeout(http_server: LocalHTTPServer) -> None:
    http_server.route("/drip", drip(b"x" * 200, interval=0.1))
    started = time.monotonic()
    result = fetch(http_server, "/drip", total_timeout=1.5, read_timeout=1.0)
    elapsed = time.monotonic() - started
    assert result.outcome == "timeout"
    assert result.error_class == "TotalTimeout"
    assert result.status == 200
    assert 0 < result.nbytes < 200
    assert 1.4 <= elapsed < 3.0


def test_slow_chunked_drip_hits_total_timeout(http_server: LocalHTTPServer) -> None:
    http_server.route("/drip", drip(b"y" * 200, interval=0.1, chunked=True))
    started = time.monotonic()
    result = fetch(http_server, "/drip", total_timeout=1.0, read_timeout=1.0)
    assert result.outcome == "timeout" and result.error_class == "TotalTimeout"
    assert time.monotonic() - started < 2.5


def test_dripping_headers_hit_total_timeout(http_server: LocalHTTPServer) -> None:
    http_server.route("/slowhead", drip_headers(interval=0.1))
    started = time.monotonic()
    result = fetch(http_server, "/slowhead", total_timeout=1.0, read_timeout=1.0, retries=0)
    assert result.outcome == "timeout" and result.error_class == "TotalTimeout"
    assert time.monotonic() - started < 2.5


def test_hanging_server_read_timeout(http_server: LocalHTTPServer) -> None:
    http_server.route("/hang", hang(30))
    started = time.monotonic()
    result = fetch(http_server, "/hang", read_timeout=0.5)
    assert result.outcome == "timeout"
    assert result.error_class == "ReadTimeout"
    assert http_server.hits("/hang") == 1  # read timeouts are not retried
    assert time.monotonic() - started < 2.5


def test_hang_mid_body_read_timeout(http_server: LocalHTTPServer) -> None:
    http_server.route("/hang", hang(30, after_headers=True, partial_body=b"<html><body>"))
    result = fetch(http_server, "/hang", read_timeout=0.5)
    assert result.outcome == "timeout" and result.error_class == "ReadTimeout"
    assert result.status == 200 and result.nbytes == len(b"<html><body>")


def test_connection_reset(http_server: LocalHTTPServer) -> None:
    http_server.route("/reset", reset_connection())
    result = fetch(http_server, "/reset", retries=1)
    assert result.outcome == "connection_error"
    assert result.error_class == "ConnectionError"
    assert http_server.hits("/reset") == 2  # reset before a response counts as transient


def test_connection_reset_mid_body(http_server: LocalHTTPServer) -> None:
    http_server.route("/reset", reset_connection(after_headers=True))
    result = fetch(http_server, "/reset")
    assert result.outcome == "connection_error"
    assert result.status == 200
    assert result.body is None


# ------------------------------------------------------------------ content types


def test_pdf_is_unsupported_and_not_downloaded(http_server: LocalHTTPServer) -> None:
    http_server.route("/doc.pdf", stream(4 * 1024 * 1024, content_type="application/pdf"))
    result = fetch(http_server, "/doc.pdf")
    assert result.outcome == "unsupported_content_type"
    assert result.status == 200
    assert result.content_type == "application/pdf"
    assert result.body is None and result.text is None
    assert result.nbytes == 0


@pytest.mark.parametrize("ctype", ["image/png", "application/octet-stream", "video/mp4"])
def test_binary_types_are_unsupported(http_server: LocalHTTPServer, ctype: str) -> None:
    http_server.route("/bin", static(b"\x00\x01", content_type=ctype))
    assert fetch(http_server, "/bin").outcome == "unsupported_content_type"


@pytest.mark.parametrize(
    "ctype",
    [
        "application/xhtml+xml",
        "application/xml",
        "text/xml",
        "application/rss+xml",
        "application/atom+xml",
        "application/json",
        "text/plain",
        "application/feed+json",
    ],
)
def test_textual_types_are_accepted(http_server: LocalHTTPServer, ctype: str) -> None:
    http_server.route("/t", static("{}", content_type=f"{ctype}; charset=utf-8"))
    result = fetch(http_server, "/t")
    assert result.ok and result.content_type == ctype and result.text == "{}"


def test_missing_content_type_is_sniffed(http_server: LocalHTTPServer) -> None:
    http_server.route("/html", static(HTML, content_type=None))
    http_server.route("/pdf", static(b"%PDF-1.7\n\x00\x01", content_type=None))
    html = fetch(http_server, "/html")
    assert html.ok and html.content_type == "text/html" and html.text == HTML
    pdf = fetch(http_server, "/pdf")
    assert pdf.outcome == "unsupported_content_type" and pdf.content_type == "application/pdf"


def test_parse_content_type_and_sniffing() -> None:
    assert parse_content_type('Text/HTML; Charset="ISO-8859-9"') == ("text/html", "ISO-8859-9")
    assert parse_content_type("application/json") == ("application/json", None)
    assert parse_content_type(None) == (None, None)
    assert sniff_media_type(b'  <?xml version="1.0"?><rss/>') == "application/xml"
    assert sniff_media_type(b"\x89PNG\r\n") == "application/octet-stream"
    assert sniff_media_type(b'{"a": 1}') == "application/json"


# ------------------------------------------------------------------ charsets


@pytest.mark.parametrize("codec", ["windows-1254", "iso-8859-9"])
def test_turkish_page_without_declared_charset(http_server: LocalHTTPServer, codec: str) -> None:
    http_server.route("/tr", static(TURKISH.encode(codec), content_type="text/html"))
    result = fetch(http_server, "/tr")
    assert result.ok
    assert result.text == TURKISH
    for word in ("İstanbul", "yağışı", "Şehir", "ılık", "Öğrenciler", "Müdürlüğü", "Çarşamba"):
        assert word in result.text
    assert result.encoding in ("cp1254", "iso8859-9")


def test_turkish_page_with_meta_charset(http_server: LocalHTTPServer) -> None:
    page = TURKISH.replace("<head>", '<head><meta charset="iso-8859-9">')
    http_server.route("/tr", static(page.encode("iso-8859-9"), content_type="text/html"))
    result = fetch(http_server, "/tr")
    assert result.text == page
    assert result.encoding == "cp1254"  # WHATWG decodes ISO-8859-9 labels as windows-1254


def test_turkish_page_with_http_equiv(http_server: LocalHTTPServer) -> None:
    page = TURKISH.replace(
        "<head>", '<head><meta http-equiv="Content-Type" content="text/html; charset=windows-1254">'
    )
    http_server.route("/tr", static(page.encode("cp1254"), content_type="text/html"))
    result = fetch(http_server, "/tr")
    assert result.text == page and result.encoding == "cp1254"


def test_xml_declaration_charset(http_server: LocalHTTPServer) -> None:
    feed = '<?xml version="1.0" encoding="windows-1254"?><rss><title>Gündem: ışık</title></rss>'
    http_server.route("/feed", static(feed.encode("cp1254"), content_type="application/rss+xml"))
    result = fetch(http_server, "/feed")
    assert result.text == feed and result.encoding == "cp1254"


def test_header_charset_is_used(http_server: LocalHTTPServer) -> None:
    http_server.route("/tr", static(TURKISH.encode("cp1254"), content_type="text/html; charset=windows-1254"))
    result = fetch(http_server, "/tr")
    assert result.text == TURKISH and result.encoding == "cp1254"


def test_wrong_declared_charset_falls_back_to_detection(http_server: LocalHTTPServer) -> None:
    body = TURKISH.encode("cp1254")
    with pytest.raises(UnicodeDecodeError):
        body.decode("utf-8")
    http_server.route("/tr", static(body, content_type="text/html; charset=utf-8"))
    result = fetch(http_server, "/tr")
    assert result.text == TURKISH
    assert "\ufffd" not in result.text
    assert result.encoding in ("cp1254", "iso8859-9")


def test_legacy_label_on_utf8_body_is_overridden(http_server: LocalHTTPServer) -> None:
    http_server.route("/tr", static(TURKISH.encode("utf-8"), content_type="text/html; charset=iso-8859-1"))
    result = fetch(http_server, "/tr")
    assert result.text == TURKISH and result.encoding == "utf-8"


def test_bogus_header_charset_is_ignored(http_server: LocalHTTPServer) -> None:
    http_server.route("/p", static(HTML.encode(), content_type="text/html; charset=no-such-charset"))
    result = fetch(http_server, "/p")
    assert result.text == HTML and result.encoding == "utf-8"


def test_decode_body_rules() -> None:
    assert decode_body(b"\xef\xbb\xbfhello", "cp1254") == ("hello", "utf-8")  # BOM wins
    assert decode_body("héllo".encode("utf-16"), None) == ("héllo", "utf-16")
    assert decode_body(b"plain ascii", None) == ("plain ascii", "ascii")
    assert decode_body(b"x", "hex") == ("x", "ascii")  # bytes-to-bytes codec is not a charset
    assert decode_body(b"caf\xe9", "latin-1") == ("café", "cp1252")
    text, enc = decode_body(b"\xff\xfe\xfd garbage \x80\x81", None)
    assert isinstance(text, str) and enc


# ------------------------------------------------------------------ conditional GET


def test_conditional_get_with_etag(http_server: LocalHTTPServer) -> None:
    def handler(h: RequestHandler) -> None:
        if h.headers.get("If-None-Match") == '"v1"':
            h.reply(304, b"", content_type=None)
        else:
            h.reply(200, HTML, {"ETag": '"v1"'})

    http_server.route("/feed", handler)
    with Fetcher(policy()) as fetcher:
        first = fetcher.get(http_server.url("/feed"))
        second = fetcher.get(http_server.url("/feed"), etag=first.etag)
    assert first.ok and first.etag == '"v1"'
    assert second.outcome == "not_modified"
    assert second.status == 304
    assert second.body is None and second.text is None
    assert second.etag == '"v1"'  # kept although the 304 did not repeat it
    assert http_server.requests_for("/feed")[1].headers["if-none-match"] == '"v1"'


def test_conditional_get_with_last_modified(http_server: LocalHTTPServer) -> None:
    stamp = "Wed, 01 May 2024 12:00:00 GMT"

    def handler(h: RequestHandler) -> None:
        if h.headers.get("If-Modified-Since") == stamp:
            h.reply(304, b"", {"Last-Modified": stamp}, content_type=None)
        else:
            h.reply(200, HTML, {"Last-Modified": stamp})

    http_server.route("/feed", handler)
    result = fetch(http_server, "/feed", last_modified=stamp)
    assert result.outcome == "not_modified" and result.last_modified == stamp
    assert "if-none-match" not in http_server.requests_for("/feed")[0].headers


# ------------------------------------------------------------------ robots.txt


def test_robots_disallow(http_server: LocalHTTPServer) -> None:
    robots = "User-agent: *\nDisallow: /private\n"
    http_server.route("/robots.txt", static(robots, content_type="text/plain"))
    http_server.route("/private/page", static(HTML))
    http_server.route("/public", static(HTML))
    with Fetcher(policy()) as fetcher:
        blocked = fetcher.get(http_server.url("/private/page"))
        allowed = fetcher.get(http_server.url("/public"))
    assert blocked.outcome == "robots_disallowed"
    assert blocked.status is None and blocked.error_class == "RobotsDisallowed"
    assert allowed.ok
    assert http_server.hits("/private/page") == 0
    assert http_server.hits("/robots.txt") == 1  # cached


def test_robots_group_for_our_agent(http_server: LocalHTTPServer) -> None:
    robots = "User-agent: newsdedup\nDisallow: /\n\nUser-agent: *\nAllow: /\n"
    http_server.route("/robots.txt", static(robots, content_type="text/plain"))
    http_server.route("/page", static(HTML))
    assert fetch(http_server, "/page").outcome == "robots_disallowed"
    assert fetch(http_server, "/page", user_agent="otherbot/1.0").ok


def test_robots_server_error_disallows(http_server: LocalHTTPServer) -> None:
    http_server.route("/robots.txt", static("oops", status=500))
    http_server.route("/page", static(HTML))
    with Fetcher(policy(retries=1)) as fetcher:
        first = fetcher.get(http_server.url("/page"))
        second = fetcher.get(http_server.url("/page"))
    assert first.outcome == second.outcome == "robots_disallowed"
    assert "500" in (first.error_message or "")
    assert http_server.hits("/page") == 0
    assert http_server.hits("/robots.txt") == 2  # one retry, then cached for the run


def test_robots_unreachable_disallows(http_server: LocalHTTPServer) -> None:
    http_server.route("/robots.txt", reset_connection())
    http_server.route("/page", static(HTML))
    result = fetch(http_server, "/page", retries=0)
    assert result.outcome == "robots_disallowed"
    assert http_server.hits("/page") == 0


@pytest.mark.parametrize("status", [404, 403, 410])
def test_robots_client_error_allows_all(http_server: LocalHTTPServer, status: int) -> None:
    http_server.route("/robots.txt", static("", status=status))
    http_server.route("/page", static(HTML))
    assert fetch(http_server, "/page").ok
    assert http_server.hits("/page") == 1


def test_robots_can_be_ignored(http_server: LocalHTTPServer) -> None:
    http_server.route("/robots.txt", static("User-agent: *\nDisallow: /\n", content_type="text/plain"))
    http_server.route("/page", static(HTML))
    assert fetch(http_server, "/page", respect_robots=False).ok
    assert http_server.hits("/robots.txt") == 0


def test_robots_crawl_delay_is_honoured(http_server: LocalHTTPServer) -> None:
    http_server.route("/robots.txt", static("User-agent: *\nCrawl-delay: 1\n", content_type="text/plain"))
    http_server.route("/page", static(HTML))
    with Fetcher(policy()) as fetcher:
        assert fetcher.get(http_server.url("/page")).ok
        assert fetcher.get(http_server.url("/page")).ok
    first, second = http_server.requests_for("/page")
    assert second.at - first.at >= 1.0 - EPS


# ------------------------------------------------------------------ politeness


def test_per_host_delay(http_server: LocalHTTPServer) -> None:
    http_server.route("/page", static(HTML))
    with Fetcher(policy(min_host_delay=0.3, respect_robots=False)) as fetcher:
        for _ in range(3):
            assert fetcher.get(http_server.url("/page")).ok
    times = [r.at for r in http_server.requests_for("/page")]
    assert all(b - a >= 0.3 - EPS for a, b in zip(times, times[1:], strict=False))


def test_per_host_delay_across_threads(http_server: LocalHTTPServer) -> None:
    http_server.route("/page", static(HTML))
    results: list[FetchResult] = []
    with Fetcher(policy(min_host_delay=0.25, respect_robots=False)) as fetcher:
        threads = [
            threading.Thread(target=lambda: results.append(fetcher.get(http_server.url("/page"))))
            for _ in range(4)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert len(results) == 4 and all(r.ok for r in results)
    times = sorted(r.at for r in http_server.requests_for("/page"))
    assert all(b - a >= 0.25 - EPS for a, b in zip(times, times[1:], strict=False))


def test_throttle_is_per_host() -> None:
    now = [100.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    throttle = HostThrottle(2.0, clock=lambda: now[0], sleep=sleep)
    assert throttle.wait("a.example") == 0
    assert throttle.wait("b.example") == 0  # another host is not delayed
    assert throttle.wait("a.example") == 2.0
    throttle.set_delay("b.example", 5.0)  # e.g. Crawl-delay
    assert throttle.delay_for("b.example") == 5.0
    assert throttle.wait("b.example") == pytest.approx(0.0)  # 2 s have passed; old gap was 2 s
    assert throttle.wait("b.example") == 5.0
    assert slept == [2.0, 5.0]


# ------------------------------------------------------------------ policy


def test_policy_from_env() -> None:
    env = {
        "NEWSDEDUP_ALLOW_NETWORKS": " 127.0.0.0/8, ::1/128 ,",
        "NEWSDEDUP_USER_AGENT": "mybot/1.0 (+https://bot.example/about)",
        "NEWSDEDUP_MIN_HOST_DELAY": "0.25",
        "NEWSDEDUP_FETCH_TIMEOUT": "2",
        "NEWSDEDUP_MAX_PAGE_BYTES": "1000",
        "NEWSDEDUP_MAX_CONNECTIONS": "3",
        "NEWSDEDUP_RETRIES": "0",
        "NEWSDEDUP_ROBOTS_TTL": "60",
    }
    p = FetchPolicy.from_env(env)
    assert p.allow_networks == ("127.0.0.0/8", "::1/128")
    assert p.user_agent == "mybot/1.0 (+https://bot.example/about)"
    assert p.min_host_delay == 0.25
    assert (p.total_timeout, p.connect_timeout, p.read_timeout) == (2.0, 2.0, 2.0)
    assert (p.max_bytes, p.max_decompressed_bytes) == (1000, 2000)
    assert (p.max_connections, p.retries, p.robots_ttl) == (3, 0, 60.0)
    assert FetchPolicy.from_env({}) == FetchPolicy()
    assert FetchPolicy.from_env({"NEWSDEDUP_USER_AGENT": "bot/2 (ops@bot.example)"}).user_agent.startswith("bot/2")


def test_policy_from_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEWSDEDUP_ALLOW_NETWORKS", "10.0.0.0/8")
    monkeypatch.delenv("NEWSDEDUP_USER_AGENT", raising=False)
    monkeypatch.delenv("NEWSDEDUP_MIN_HOST_DELAY", raising=False)
    assert FetchPolicy.from_env().allow_networks == ("10.0.0.0/8",)


@pytest.mark.parametrize(
    ("env", "match"),
    [
        ({"NEWSDEDUP_MIN_HOST_DELAY": "soon"}, "NEWSDEDUP_MIN_HOST_DELAY"),
        ({"NEWSDEDUP_MIN_HOST_DELAY": "-1"}, "NEWSDEDUP_MIN_HOST_DELAY"),
        ({"NEWSDEDUP_ALLOW_NETWORKS": "127.0.0.0/8,300.1.1.1"}, "'300.1.1.1'"),
        ({"NEWSDEDUP_USER_AGENT": "mybot/1.0"}, "contact|reach its operator"),
        ({"NEWSDEDUP_MAX_CONNECTIONS": "0"}, "NEWSDEDUP_MAX_CONNECTIONS: must be >= 1"),
        ({"NEWSDEDUP_MAX_CONNECTIONS": "2.5"}, "NEWSDEDUP_MAX_CONNECTIONS: expected a whole number"),
        ({"NEWSDEDUP_FETCH_TIMEOUT": "0"}, "NEWSDEDUP_FETCH_TIMEOUT"),
        ({"NEWSDEDUP_FETCH_TIMEOUT": "inf"}, "NEWSDEDUP_FETCH_TIMEOUT"),
        ({"NEWSDEDUP_RETRIES": "-1"}, "NEWSDEDUP_RETRIES"),
    ],
)
def test_policy_from_env_errors(env: dict[str, str], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        FetchPolicy.from_env(env)


def test_policy_validation() -> None:
    with pytest.raises(ValueError, match="total_timeout"):
        FetchPolicy(total_timeout=0)
    with pytest.raises(ValueError, match="not one string"):
        FetchPolicy(allow_networks="127.0.0.0/8")  # type: ignore[arg-type]


# ------------------------------------------------------------------ process-wide limits, host health, options


def _in_flight_counter(delay: float) -> tuple[object, list[int]]:
    """A handler that records how many requests it serves at once."""
    lock = threading.Lock()
    state = {"now": 0}
    peaks: list[int] = []

    def handler(h: RequestHandler) -> None:
        with lock:
            state["now"] += 1
            peaks.append(state["now"])
        time.sleep(delay)
        with lock:
            state["now"] -= 1
        h.reply(200, HTML)

    return handler, peaks


def test_global_connection_limit_across_fetchers(http_server: LocalHTTPServer) -> None:
    handler, peaks = _in_flight_counter(0.2)
    http_server.route("/slow", handler)
    fetchers = [Fetcher(policy(max_connections=2, respect_robots=False)) for _ in range(3)]
    results: list[FetchResult] = []
    threads = [
        threading.Thread(target=lambda f=f: results.append(f.get(http_server.url("/slow"))))
        for f in fetchers
        for _ in range(2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for f in fetchers:
        f.close()
    assert len(results) == 6 and all(r.ok for r in results)
    assert max(peaks) == 2  # six requests, three Fetchers, one process: never more than two at once


def test_per_host_delay_does_not_serialise_other_hosts() -> None:
    servers = [LocalHTTPServer(host=f"127.0.0.{i}").start() for i in (2, 3, 4)]
    try:
        for server in servers:
            server.route("/page", static(HTML))
        with Fetcher(policy(min_host_delay=0.3, respect_robots=False)) as fetcher:
            started = time.monotonic()
            threads = [
                threading.Thread(target=lambda s=s: [fetcher.get(s.url("/page")) for _ in range(3)])
                for s in servers
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            elapsed = time.monotonic() - started
        assert all(s.hits("/page") == 3 for s in servers)
        # Per host: two gaps of 0.3 s. Serialised across hosts it would be 8 gaps (2.4 s).
        assert 0.6 - EPS <= elapsed < 1.2
    finally:
        for server in servers:
            server.stop()


def test_source_rate_limit_raises_the_host_gap(http_server: LocalHTTPServer) -> None:
    http_server.route("/page", static(HTML))
    with Fetcher(policy(respect_robots=False)) as fetcher:
        for _ in range(2):
            assert fetcher.get(http_server.url("/page"), host_delay=0.4).ok
    first, second = http_server.requests_for("/page")
    assert second.at - first.at >= 0.4 - EPS


def test_long_retry_after_leaves_the_host_alone(http_server: LocalHTTPServer) -> None:
    http_server.route("/busy", static("slow down", status=503, headers={"Retry-After": "3600"}))
    http_server.route("/other", static(HTML))
    with Fetcher(policy(respect_robots=False)) as fetcher:
        first = fetcher.get(http_server.url("/busy"))
        second = fetcher.get(http_server.url("/other"))
    assert (first.outcome, first.status, first.attempts) == ("http_error", 503, 1)
    assert (second.outcome, second.error_class) == ("deferred", "HostBackoff")
    assert "retry after 3600 s" in (second.error_message or "")
    assert http_server.hits("/other") == 0


def test_short_retry_after_delays_the_next_request(http_server: LocalHTTPServer) -> None:
    http_server.route("/busy", static("slow down", status=429, headers={"Retry-After": "0.5"}))
    http_server.route("/other", static(HTML))
    with Fetcher(policy(respect_robots=False, retries=0)) as fetcher:
        assert fetcher.get(http_server.url("/busy")).status == 429
        assert fetcher.get(http_server.url("/other")).ok
    (busy,), (other,) = http_server.requests_for("/busy"), http_server.requests_for("/other")
    assert other.at - busy.at >= 0.5 - EPS


def test_host_that_keeps_failing_is_left_alone(http_server: LocalHTTPServer) -> None:
    http_server.route("/reset", reset_connection())
    with Fetcher(policy(respect_robots=False, retries=0, max_host_failures=3)) as fetcher:
        results = [fetcher.get(http_server.url("/reset")) for _ in range(5)]
    assert [r.outcome for r in results] == ["connection_error"] * 3 + ["deferred"] * 2
    assert "3 timeouts or connection errors in a row" in (results[3].error_message or "")
    assert http_server.hits("/reset") == 3


def test_attempts_are_counted_in_the_message(http_server: LocalHTTPServer) -> None:
    http_server.route("/err", static("boom", status=500))
    result = fetch(http_server, "/err", retries=2, respect_robots=False)
    assert result.attempts == 3
    assert result.error_message == "HTTP 500 Internal Server Error (after 3 attempts)"


def test_accept_types_refuses_other_types_without_reading(http_server: LocalHTTPServer) -> None:
    http_server.route("/data.json", static(b'{"a": 1}', content_type="application/json"))
    http_server.route("/page", static(HTML))
    with Fetcher(policy(respect_robots=False)) as fetcher:
        json_result = fetcher.get(http_server.url("/data.json"), accept_types={"text/html"})
        html_result = fetcher.get(http_server.url("/page"), accept_types={"text/html"})
    assert (json_result.outcome, json_result.error_class) == ("unsupported_content_type", "UnsupportedContentType")
    assert "expected text/html" in (json_result.error_message or "")
    assert json_result.nbytes == 0 and json_result.body is None
    assert html_result.ok


@pytest.mark.parametrize("ctype", ["application/x-gzip", "application/gzip", "application/octet-stream"])
def test_gzip_file_is_unpacked_when_asked(http_server: LocalHTTPServer, ctype: str) -> None:
    xml = b'<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"></urlset>'
    http_server.route("/sitemap.xml.gz", static(gzip.compress(xml), content_type=ctype))
    with Fetcher(policy(respect_robots=False)) as fetcher:
        plain = fetcher.get(http_server.url("/sitemap.xml.gz"))
        unpacked = fetcher.get(http_server.url("/sitemap.xml.gz"), gunzip=True)
    assert plain.outcome == "unsupported_content_type"
    assert unpacked.ok and unpacked.text == xml.decode() and unpacked.content_type == "application/xml"


def test_gzip_file_bomb_is_refused(http_server: LocalHTTPServer) -> None:
    bomb = gzip.compress(b"\0" * 5_000_000)
    http_server.route("/sitemap.xml.gz", static(bomb, content_type="application/x-gzip"))
    with Fetcher(policy(respect_robots=False, max_decompressed_bytes=1_000_000)) as fetcher:
        result = fetcher.get(http_server.url("/sitemap.xml.gz"), gunzip=True)
    assert (result.outcome, result.error_class) == ("too_large", "DecompressedTooLarge")


def test_robots_fetch_is_reported_once(http_server: LocalHTTPServer) -> None:
    http_server.route("/robots.txt", static("User-agent: *\nAllow: /\n", content_type="text/plain"))
    http_server.route("/page", static(HTML))
    with Fetcher(policy()) as fetcher:
        first = fetcher.get(http_server.url("/page"))
        second = fetcher.get(http_server.url("/page"))
    assert [r.url for r in first.robots] == [http_server.url("/robots.txt")]
    assert first.robots[0].ok and first.robots[0].status == 200
    assert second.robots == []


# ------------------------------------------------------------------ hostile compression (issue 19)


def _member_of_exactly(size: int) -> bytes:
    """A gzip member (stored, not compressed) of exactly `size` bytes."""
    for n in range(size - 64, size):
        member = gzip.compress(bytes(i % 251 for i in range(n)), compresslevel=0, mtime=0)
        if len(member) == size:
            return member
    raise AssertionError(f"no stored gzip member of {size} bytes")


def _two_writes(first: bytes, second: bytes, encoding: str = "gzip") -> object:
    """Send a body in two writes with a pause between them, so the client's first read ends after `first`."""

    def handler(h: RequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "text/html; charset=utf-8")
        h.send_header("Content-Encoding", encoding)
        h.send_header("Content-Length", str(len(first) + len(second)))
        h.end_headers()
        h.wfile.write(first)
        h.wfile.flush()
        if not h.pause(0.3):
            h.wfile.write(second)
            h.wfile.flush()

    return handler


def test_5000_empty_gzip_members_then_a_page(http_server: LocalHTTPServer) -> None:
    data = gzip.compress(b"") * 5000 + gzip.compress(TURKISH.encode("utf-8"))
    http_server.route("/gz", static(data, headers={"Content-Encoding": "gzip"}))
    result = fetch(http_server, "/gz")
    assert result.ok and result.text == TURKISH, (result.outcome, result.error_class, result.error_message)


def test_gzip_member_starting_at_a_read_chunk_boundary_is_kept(http_server: LocalHTTPServer) -> None:
    from newsdedup.transport import READ_CHUNK

    first = _member_of_exactly(READ_CHUNK)
    second = gzip.compress(b"<p>the second member</p>")
    http_server.route("/gz", _two_writes(first, second))
    result = fetch(http_server, "/gz")
    assert result.ok and result.body == gzip.decompress(first) + b"<p>the second member</p>"


@pytest.mark.parametrize("cut", [0, 1], ids=["at-the-member-boundary", "inside-the-magic-bytes"])
def test_gzip_members_split_anywhere_between_reads(cut: int) -> None:
    from newsdedup.content import BodyDecoder

    one, two = gzip.compress(b"<p>one</p>"), gzip.compress(b"<p>two</p>")
    decoder = BodyDecoder(["gzip"], 1_000_000)
    pieces = [one + two[:cut], two[cut:]]
    assert b"".join(decoder.feed(piece) for piece in pieces) == b"<p>one</p><p>two</p>"


def test_many_gzip_members_stay_under_the_cap(http_server: LocalHTTPServer) -> None:
    # Each member inflates 100 KB: together they pass the cap, which counts across members.
    data = gzip.compress(b"\0" * 100_000) * 50
    http_server.route("/gz", static(data, headers={"Content-Encoding": "gzip"}))
    result = fetch(http_server, "/gz", max_decompressed_bytes=1_000_000)
    assert (result.outcome, result.error_class) == ("too_large", "DecompressedTooLarge")


def _bounded_brotli() -> object:
    """The brotli module when it can cap its output (1.2 or later), else skip."""
    brotli = pytest.importorskip("brotli")
    if not hasattr(brotli.Decompressor, "can_accept_more_data"):
        pytest.skip("brotli older than 1.2 cannot cap its output: br is not accepted")
    return brotli


def test_brotli_page_is_decoded(http_server: LocalHTTPServer) -> None:
    brotli = _bounded_brotli()
    http_server.route("/br", static(brotli.compress(TURKISH.encode("utf-8")), headers={"Content-Encoding": "br"}))
    result = fetch(http_server, "/br")
    assert "br" in ACCEPT_ENCODING and result.ok and result.text == TURKISH


def test_brotli_bomb_is_cut_at_the_cap(http_server: LocalHTTPServer) -> None:
    brotli = _bounded_brotli()
    bomb = brotli.compress(b"\0" * (64 * 1024 * 1024), quality=5)
    http_server.route("/br", static(bomb, headers={"Content-Encoding": "br"}))
    result = fetch(http_server, "/br", max_decompressed_bytes=2 * 1024 * 1024)
    assert (result.outcome, result.error_class) == ("too_large", "DecompressedTooLarge")
    assert len(bomb) < 100_000 and result.nbytes <= len(bomb)


def test_brotli_is_refused_without_a_bounded_decoder(http_server: LocalHTTPServer) -> None:
    from newsdedup import content

    if content.brotli is not None:
        pytest.skip("a bounded brotli decoder is installed")
    http_server.route("/br", static(b"\x1b\x00\x00", headers={"Content-Encoding": "br"}))
    result = fetch(http_server, "/br")
    assert "br" not in ACCEPT_ENCODING
    assert (result.outcome, result.error_class) == ("unsupported_content_type", "UnsupportedContentEncoding")
