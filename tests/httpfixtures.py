"""A real HTTP server on 127.0.0.1 for tests: a route table of handlers, plus hostile behaviours.

Use the ``http_server`` fixture (list this module in a conftest's ``pytest_plugins``, or import
``http_server_fixture`` into the test module), add routes, and point the code under test at
``server.url(path)``::

    def test_x(http_server):
        http_server.route("/a", static(b"<p>hi</p>"))
        http_server.route("/b", redirect("/a"))
        ...
        assert http_server.hits("/a") == 1

A handler is any callable taking the live ``RequestHandler``; it can use ``reply()`` or write raw
bytes to ``wfile`` for protocol-level abuse. Connections are closed after every response unless a
handler sets ``close_connection = False``.
"""

from __future__ import annotations

import gzip
import itertools
import socket
import struct
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest

Handler = Callable[["RequestHandler"], None]

_CLIENT_GONE = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, TimeoutError)


@dataclass
class RecordedRequest:
    """One request as the server saw it."""

    method: str
    path: str  # path plus query, as sent
    headers: dict[str, str]  # lower-cased names
    at: float  # time.monotonic() when the request line and headers had arrived
    client: tuple[str, int] = field(default=("", 0))

    @property
    def route(self) -> str:
        """Path without the query string."""
        return urlsplit(self.path).path


class RequestHandler(BaseHTTPRequestHandler):
    """Dispatches every method to the server's route table."""

    protocol_version = "HTTP/1.1"
    server: _Server

    def _dispatch(self) -> None:
        self.close_connection = True
        self.server.owner._dispatch(self)

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = do_OPTIONS = _dispatch

    def log_message(self, format: str, *args: object) -> None:
        """Keep test output quiet."""

    def reply(
        self,
        status: int = 200,
        body: bytes | str = b"",
        headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
        content_type: str | None = "text/html; charset=utf-8",
    ) -> None:
        """Send a complete response with Content-Length and Connection: close."""
        data = body.encode("utf-8") if isinstance(body, str) else body
        pairs = list(headers.items() if isinstance(headers, Mapping) else headers or [])
        names = {name.lower() for name, _ in pairs}
        self.send_response(status)
        if content_type is not None and "content-type" not in names:
            self.send_header("Content-Type", content_type)
        for name, value in pairs:
            self.send_header(name, value)
        if "content-length" not in names and status not in (204, 304):
            self.send_header("Content-Length", str(len(data)))
        self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD" and status not in (204, 304):
            self.wfile.write(data)
        self.wfile.flush()

    def start_chunked(
        self,
        status: int = 200,
        headers: Mapping[str, str] | None = None,
        content_type: str = "text/html; charset=utf-8",
    ) -> None:
        """Send headers for a chunked body; follow with write_chunk() and end_chunks()."""
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.flush()

    def write_chunk(self, data: bytes) -> None:
        """Write one chunk of a chunked body."""
        if data:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()

    def end_chunks(self) -> None:
        """Terminate a chunked body."""
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def pause(self, seconds: float) -> bool:
        """Sleep, waking early when the server stops; True if the server is stopping."""
        return self.server.owner.stopping.wait(seconds)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    owner: LocalHTTPServer

    def handle_error(self, request: object, client_address: object) -> None:
        """Clients that hang up or get reset on purpose are normal here."""


class LocalHTTPServer:
    """A ThreadingHTTPServer on 127.0.0.1 (ephemeral port) with a route table and request log."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.routes: dict[str, Handler] = {}
        self.requests: list[RecordedRequest] = []
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """Bound port (after start())."""
        assert self._httpd is not None, "server not started"
        return self._httpd.server_address[1]

    @property
    def base_url(self) -> str:
        """http://host:port"""
        return f"http://{self.host}:{self.port}"

    def url(self, path: str = "/") -> str:
        """Absolute URL of path on this server."""
        return self.base_url + (path if path.startswith("/") else "/" + path)

    def route(self, path: str, handler: Handler) -> LocalHTTPServer:
        """Serve path (query string ignored) with handler; returns self for chaining."""
        self.routes[path] = handler
        return self

    def hits(self, path: str) -> int:
        """How many requests reached path (query string ignored)."""
        return len(self.requests_for(path))

    def requests_for(self, path: str) -> list[RecordedRequest]:
        """Requests that reached path (query string ignored), oldest first."""
        with self._lock:
            return [r for r in self.requests if r.route == path]

    def _dispatch(self, h: RequestHandler) -> None:
        record = RecordedRequest(
            h.command,
            h.path,
            {k.lower(): v for k, v in h.headers.items()},
            time.monotonic(),
            h.client_address,
        )
        with self._lock:
            self.requests.append(record)
        handler = self.routes.get(record.route, _not_found)
        try:
            handler(h)
        except _CLIENT_GONE:
            h.close_connection = True

    def start(self) -> LocalHTTPServer:
        """Bind and serve in a daemon thread."""
        self._httpd = _Server((self.host, 0), RequestHandler)
        self._httpd.owner = self
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, release hanging handlers and close the socket."""
        self.stopping.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> LocalHTTPServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


@pytest.fixture(name="http_server")
def http_server_fixture() -> Iterator[LocalHTTPServer]:
    """A fresh local HTTP server per test, stopped afterwards."""
    with LocalHTTPServer() as server:
        yield server


def free_port(host: str = "127.0.0.1") -> int:
    """A port that nothing listens on (bound then released)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


# ------------------------------------------------------------------ handler factories


def _not_found(h: RequestHandler) -> None:
    h.reply(404, b"not found", content_type="text/plain")


def static(
    body: bytes | str = b"",
    status: int = 200,
    headers: Mapping[str, str] | None = None,
    content_type: str | None = "text/html; charset=utf-8",
) -> Handler:
    """Always answer with the same response."""

    def handler(h: RequestHandler) -> None:
        h.reply(status, body, headers, content_type)

    return handler


def redirect(location: str, status: int = 302) -> Handler:
    """Answer with a redirect to location (relative or absolute)."""
    return static(b"", status, {"Location": location}, content_type=None)


def sequence(*handlers: Handler) -> Handler:
    """Use the n-th handler for the n-th request; the last one repeats."""
    counter = itertools.count()
    lock = threading.Lock()

    def handler(h: RequestHandler) -> None:
        with lock:
            n = next(counter)
        handlers[min(n, len(handlers) - 1)](h)

    return handler


def drip(body: bytes = b"x" * 1000, interval: float = 0.1, step: int = 1, chunked: bool = False) -> Handler:
    """Send headers at once, then the body `step` bytes every `interval` seconds."""

    def handler(h: RequestHandler) -> None:
        if chunked:
            h.start_chunked()
        else:
            h.send_response(200)
            h.send_header("Content-Type", "text/html; charset=utf-8")
            h.send_header("Content-Length", str(len(body)))
            h.end_headers()
            h.wfile.flush()
        for i in range(0, len(body), step):
            if h.pause(interval):
                return
            piece = body[i : i + step]
            if chunked:
                h.write_chunk(piece)
            else:
                h.wfile.write(piece)
                h.wfile.flush()
        if chunked:
            h.end_chunks()

    return handler


def drip_headers(interval: float = 0.2, count: int = 1000) -> Handler:
    """Send a status line, then one header line every interval (slowloris in reverse)."""

    def handler(h: RequestHandler) -> None:
        h.wfile.write(b"HTTP/1.1 200 OK\r\n")
        h.wfile.flush()
        for i in range(count):
            if h.pause(interval):
                return
            h.wfile.write(b"X-Drip-%d: y\r\n" % i)
            h.wfile.flush()

    return handler


def hang(seconds: float = 30.0, after_headers: bool = False, partial_body: bytes = b"") -> Handler:
    """Accept the request and then say nothing (optionally after headers and part of a body)."""

    def handler(h: RequestHandler) -> None:
        if after_headers:
            h.send_response(200)
            h.send_header("Content-Type", "text/html; charset=utf-8")
            h.send_header("Content-Length", str(len(partial_body) + 1000))
            h.end_headers()
            h.wfile.write(partial_body)
            h.wfile.flush()
        h.pause(seconds)

    return handler


def reset_connection(after_headers: bool = False) -> Handler:
    """Abort the TCP connection with RST (SO_LINGER 0), optionally after sending headers."""

    def handler(h: RequestHandler) -> None:
        if after_headers:
            h.send_response(200)
            h.send_header("Content-Type", "text/html; charset=utf-8")
            h.send_header("Content-Length", "100000")
            h.end_headers()
            h.wfile.write(b"<html>partial")
            h.wfile.flush()
        h.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        h.connection.close()

    return handler


def stream(
    total: int,
    chunk: bytes = b"<p>" + b"a" * 65530 + b"</p>",
    content_type: str = "text/html; charset=utf-8",
    declare_length: bool = False,
) -> Handler:
    """Send `total` bytes of body (chunked, or with an honest Content-Length)."""

    def handler(h: RequestHandler) -> None:
        if declare_length:
            h.send_response(200)
            h.send_header("Content-Type", content_type)
            h.send_header("Content-Length", str(total))
            h.end_headers()
        else:
            h.start_chunked(content_type=content_type)
        sent = 0
        while sent < total and not h.server.owner.stopping.is_set():
            piece = chunk[: total - sent]
            if declare_length:
                h.wfile.write(piece)
            else:
                h.write_chunk(piece)
            sent += len(piece)
        if not declare_length:
            h.end_chunks()
        h.wfile.flush()

    return handler


@lru_cache(maxsize=4)
def gzip_bomb_bytes(decompressed_size: int = 64 * 1024 * 1024) -> bytes:
    """A gzip stream of zeros: about 1/1000 of decompressed_size on the wire."""
    comp = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = b"\0" * (1024 * 1024)
    parts = [comp.compress(block) for _ in range(decompressed_size // len(block))]
    parts.append(comp.flush())
    return b"".join(parts)


def gzip_bomb(decompressed_size: int = 64 * 1024 * 1024) -> Handler:
    """Answer with a small gzip body that inflates to decompressed_size bytes."""
    return static(
        gzip_bomb_bytes(decompressed_size), headers={"Content-Encoding": "gzip"}, content_type="text/html"
    )


def gzipped(body: bytes, content_type: str = "text/html; charset=utf-8") -> Handler:
    """Answer with body gzip-encoded."""
    return static(gzip.compress(body), headers={"Content-Encoding": "gzip"}, content_type=content_type)
