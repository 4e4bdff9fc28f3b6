"""Guarded HTTP transport: one GET with the address checked at connect time, a hard deadline, capped bodies.

It knows nothing of robots.txt, politeness or retries (newsdedup.fetch decides those): it sends one
request and turns the response, or the failure, into a FetchResult (or a redirect Location).
"""

from __future__ import annotations

import contextlib
import contextvars
import socket
import sys
import threading
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import (
    ConnectTimeoutError,
    MaxRetryError,
    NameResolutionError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
)
from urllib3.util import connection as u3connection

from newsdedup.content import (
    ACCEPT_ENCODING,
    DECODE_ERRORS,
    GZIP_TYPES,
    Abort,
    BodyDecoder,
    ZlibLayer,
    decode_body,
    is_textual,
    parse_content_type,
    sniff_media_type,
)
from newsdedup.netguard import AddressRefused, IPNetwork, parse_networks, resolve_checked
from newsdedup.outcomes import FetchResult, Outcome, failed
from newsdedup.robots import MAX_ROBOTS_BYTES
from newsdedup.timeparse import parse_http_date

if TYPE_CHECKING:
    from newsdedup.fetch import FetchPolicy

DEFAULT_ACCEPT = (
    "text/html,application/xhtml+xml,application/xml;q=0.9,application/rss+xml;q=0.9,"
    "application/atom+xml;q=0.9,application/json;q=0.8,text/plain;q=0.7,*/*;q=0.5"
)
READ_CHUNK = 64 * 1024
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})

# urllib3 has no per-request channel down to HTTPConnection.getresponse (timeouts are cloned, extra
# arguments go to the response), so the request's watchdog is set here for the duration of one send.
_WATCHDOG: contextvars.ContextVar[Watchdog | None] = contextvars.ContextVar("watchdog", default=None)


def _shutdown(sock: socket.socket) -> None:
    """Shut a socket down from another thread so a blocked read returns."""
    with contextlib.suppress(OSError):
        # The base-class method also works on SSLSockets without touching TLS state.
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


class Watchdog:
    """Hard deadline for one request: when it expires, shut the socket down."""

    def __init__(self, seconds: float) -> None:
        self.fired = False
        self._done = False
        self._lock = threading.Lock()
        self._socks: list[socket.socket] = []
        self._timer = threading.Timer(max(seconds, 0.0), self._fire)
        self._timer.daemon = True
        self._timer.start()

    def attach(self, sock: socket.socket) -> None:
        """Watch sock; shut it immediately if the deadline has already passed."""
        with self._lock:
            if self._done:
                return
            if self.fired:
                _shutdown(sock)
            else:
                self._socks.append(sock)

    def _fire(self) -> None:
        with self._lock:
            if self._done:
                return
            self.fired = True
            for sock in self._socks:
                _shutdown(sock)

    def close(self) -> None:
        """Disarm; after this the watchdog never touches a socket again."""
        self._timer.cancel()
        with self._lock:
            self._done = True
            self._socks.clear()


class _GuardedConnectionMixin:
    """Resolve, check and connect in one place, so DNS rebinding cannot slip past the guard."""

    allow_networks: tuple[IPNetwork, ...] = ()
    host: str
    port: int
    timeout: Any
    source_address: Any
    socket_options: Any
    sock: socket.socket | None

    def _new_conn(self) -> socket.socket:
        host = getattr(self, "_dns_host", self.host)
        try:
            infos = resolve_checked(host, self.port, self.allow_networks)
        except socket.gaierror as exc:
            raise NameResolutionError(self.host, self, exc) from exc  # type: ignore[arg-type]
        error: Exception | None = None
        for _family, _type, _proto, sockaddr in infos:
            try:
                sock = u3connection.create_connection(
                    (str(sockaddr[0]), self.port),
                    self.timeout,
                    source_address=self.source_address,
                    socket_options=self.socket_options,
                )
            except TimeoutError as exc:
                error = ConnectTimeoutError(
                    self, f"Connection to {self.host} timed out. (connect timeout={self.timeout})"
                )
                error.__cause__ = exc
            except OSError as exc:
                error = NewConnectionError(self, f"Failed to establish a new connection: {exc}")  # type: ignore[arg-type]
                error.__cause__ = exc
            else:
                sys.audit("http.client.connect", self, self.host, self.port)
                return sock
        raise error or NewConnectionError(self, f"no address to connect to for {self.host}")  # type: ignore[arg-type]

    def getresponse(self) -> Any:
        watchdog = _WATCHDOG.get()
        if watchdog is not None and self.sock is not None:
            watchdog.attach(self.sock)
        return super().getresponse()  # type: ignore[misc]


def _pool_classes(networks: tuple[IPNetwork, ...]) -> dict[str, type[HTTPConnectionPool]]:
    """Connection-pool classes whose connections enforce the given allow list."""

    class GuardedHTTPConnection(_GuardedConnectionMixin, HTTPConnection):
        allow_networks = networks

    class GuardedHTTPSConnection(_GuardedConnectionMixin, HTTPSConnection):
        allow_networks = networks

    class GuardedHTTPConnectionPool(HTTPConnectionPool):
        ConnectionCls = GuardedHTTPConnection

    class GuardedHTTPSConnectionPool(HTTPSConnectionPool):
        ConnectionCls = GuardedHTTPSConnection

    return {"http": GuardedHTTPConnectionPool, "https": GuardedHTTPSConnectionPool}


class _GuardedAdapter(HTTPAdapter):
    """requests adapter whose pools refuse non-public addresses at connect time."""

    def __init__(self, networks: tuple[IPNetwork, ...], **kwargs: Any) -> None:
        self._networks = networks
        super().__init__(**kwargs)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _pool_classes(self._networks)

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        raise AddressRefused("proxies are not supported by the guarded fetcher")


@contextlib.contextmanager
def _watching(watchdog: Watchdog) -> Iterator[None]:
    """Let the connection that sends this request hand its socket to watchdog (which stays armed after)."""
    token = _WATCHDOG.set(watchdog)
    try:
        yield
    finally:
        _WATCHDOG.reset(token)


@dataclass
class Progress:
    """Mutable per-request counters that survive an exception."""

    status: int | None = None
    wire: int = 0


class Deadline:
    """Budget for one attempt; time spent waiting on politeness is given back."""

    def __init__(self, seconds: float) -> None:
        self.at = time.monotonic() + seconds

    def remaining(self) -> float:
        """Seconds left."""
        return self.at - time.monotonic()

    def extend(self, seconds: float) -> None:
        """Give back seconds spent waiting."""
        self.at += seconds


@dataclass
class Request:
    """What one GET sends and which response bodies it keeps."""

    headers: dict[str, str] = field(default_factory=dict)
    for_robots: bool = False  # robots.txt: any type, a long body is cut rather than refused
    accept_types: frozenset[str] | None = None  # None: any textual type
    gunzip: bool = False  # accept a gzip file body (sitemap.xml.gz) and unpack it

    def wants(self, media_type: str) -> bool:
        """True when this request keeps bodies of media_type."""
        if self.accept_types is not None:
            return media_type in self.accept_types
        return is_textual(media_type)


class Transport:
    """Send single GETs through a session whose connections refuse non-public addresses."""

    def __init__(self, policy: FetchPolicy) -> None:
        self.policy = policy
        self.networks = parse_networks(policy.allow_networks)
        self._session = requests.Session()
        # No proxies, .netrc or env CA overrides: the guard must see the real destination.
        self._session.trust_env = False
        adapter = _GuardedAdapter(self.networks, pool_maxsize=max(10, policy.max_connections))
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)
        self._session.headers.clear()
        self._session.headers.update(
            {"User-Agent": policy.user_agent, "Accept-Encoding": ACCEPT_ENCODING, "Accept": DEFAULT_ACCEPT}
        )

    def close(self) -> None:
        """Release pooled connections."""
        self._session.close()

    def send(self, original: str, url: str, request: Request, deadline: Deadline) -> FetchResult | str:
        """Send one GET; return the redirect Location, or the final FetchResult."""
        remaining = deadline.remaining()
        progress = Progress()
        if remaining <= 0:
            return _timeout_result(original, url, progress)
        watchdog = Watchdog(remaining)
        resp: requests.Response | None = None
        answered: list[requests.Response] = []
        try:
            with _watching(watchdog):
                try:
                    resp = self._session.get(
                        url,
                        headers=request.headers,
                        stream=True,
                        allow_redirects=False,
                        timeout=(min(self.policy.connect_timeout, remaining), min(self.policy.read_timeout, remaining)),
                        hooks={"response": lambda r, **_: answered.append(r)},
                    )
                except ValueError:
                    # requests parses a redirect's Location even when it does not follow it, and urlsplit
                    # raises on "http://[broken": the Location is the caller's to judge, as any other.
                    if not answered or answered[-1].status_code not in REDIRECT_STATUSES:
                        raise
                    resp = answered[-1]
            status = progress.status = resp.status_code
            if status in REDIRECT_STATUSES:
                return _location(original, url, resp)
            return self._finish(original, url, resp, request, Reading(deadline, watchdog, progress))
        except Abort as exc:
            if watchdog.fired:
                return _timeout_result(original, url, progress)
            return failed(
                original, url, exc.outcome, exc.error_class, exc.message, status=progress.status, nbytes=progress.wire
            )
        except AddressRefused as exc:
            return failed(original, url, Outcome.ADDRESS_REFUSED, "AddressRefused", str(exc))
        except (requests.RequestException, ProtocolError, ReadTimeoutError, OSError, zlib.error) as exc:
            if watchdog.fired:
                return _timeout_result(original, url, progress)
            outcome, error_class = _classify(exc)
            return failed(
                original, url, outcome, error_class, str(exc)[:500], status=progress.status, nbytes=progress.wire
            )
        finally:
            watchdog.close()
            if resp is not None:
                resp.close()

    def _finish(
        self, original: str, url: str, resp: requests.Response, request: Request, reading: Reading
    ) -> FetchResult:
        """Turn a non-redirect response into a FetchResult, reading the body if it is wanted."""
        status = resp.status_code
        hdrs = resp.headers
        for_robots = request.for_robots
        media_type, charset = parse_content_type(hdrs.get("Content-Type"))
        common: dict[str, Any] = {
            "url": original,
            "final_url": url,
            "status": status,
            "content_type": media_type,
            "etag": hdrs.get("ETag"),
            "last_modified": hdrs.get("Last-Modified"),
            "cache_control": hdrs.get("Cache-Control"),
        }
        if status == 304:
            return FetchResult(outcome=Outcome.NOT_MODIFIED, **common)
        if not 200 <= status < 300:
            retry_after = None
            if status in (429, 503):
                retry_after = parse_retry_after(hdrs.get("Retry-After"))
            return FetchResult(
                outcome=Outcome.HTTP_ERROR,
                retry_after=retry_after,
                error_class="HTTPError",
                error_message=f"HTTP {status} {resp.reason or ''}".strip(),
                **common,
            )
        gzip_file = request.gunzip and _is_gzip_file(media_type, url)
        if media_type is not None and not for_robots and not gzip_file and not request.wants(media_type):
            return _unsupported(common, media_type, request.accept_types)
        # robots.txt is cut, not refused: its first MAX_ROBOTS_BYTES are parsed (RFC 9309, 2.5).
        max_bytes = MAX_ROBOTS_BYTES if for_robots else self.policy.max_bytes
        declared = hdrs.get("Content-Length", "").strip()
        if not for_robots and declared.isdigit() and int(declared) > max_bytes:
            raise Abort(Outcome.TOO_LARGE, "BodyTooLarge", f"Content-Length {declared} exceeds max_bytes={max_bytes}")
        encodings = [
            e.strip().lower()
            for e in hdrs.get("Content-Encoding", "").split(",")
            if e.strip() and e.strip().lower() != "identity"
        ]
        body = self._read_body(resp, encodings, max_bytes, reading, truncate=for_robots)
        wire = reading.progress.wire
        if request.gunzip and body.startswith(b"\x1f\x8b"):
            body = self._gunzip(body)
            media_type = sniff_media_type(body)
            common["content_type"] = media_type
            charset = None
        elif media_type is None:
            media_type = sniff_media_type(body)
            common["content_type"] = media_type
            if not for_robots and not request.wants(media_type):
                return _unsupported(common, media_type, request.accept_types, nbytes=wire)
        if gzip_file and not request.wants(media_type):
            return _unsupported(common, media_type, request.accept_types, nbytes=wire)
        text = encoding = None
        if is_textual(media_type):
            text, encoding = decode_body(body, charset)
        return FetchResult(outcome=Outcome.OK, body=body, text=text, encoding=encoding, nbytes=wire, **common)

    def _gunzip(self, body: bytes) -> bytes:
        """Unpack a gzip file body, capped at max_decompressed_bytes."""
        limit = self.policy.max_decompressed_bytes
        try:
            out = ZlibLayer("gzip").feed(body, limit + 1)
        except zlib.error as exc:
            raise Abort(Outcome.HTTP_ERROR, "ContentDecodingError", f"cannot unpack gzip file: {exc}") from exc
        if len(out) > limit:
            raise Abort(
                Outcome.TOO_LARGE,
                "DecompressedTooLarge",
                f"unpacked gzip file exceeds max_decompressed_bytes={limit}",
            )
        return out

    def _read_body(
        self, resp: requests.Response, encodings: list[str], max_bytes: int, reading: Reading, truncate: bool = False
    ) -> bytes:
        """Stream the raw body, capping wire and decompressed size (truncate: cut, not fail) and the time."""
        decoder = BodyDecoder(encodings, self.policy.max_decompressed_bytes)
        progress = reading.progress
        raw = resp.raw
        parts: list[bytes] = []
        while True:
            if reading.expired():
                raise Abort(Outcome.TIMEOUT, "TotalTimeout", "total_timeout exceeded")
            # read1 returns what one socket read gives, so slow drips reach the deadline check.
            chunk = raw.read1(READ_CHUNK, decode_content=False)
            if not chunk:
                break
            progress.wire += len(chunk)
            if progress.wire > max_bytes and not truncate:
                raise Abort(Outcome.TOO_LARGE, "BodyTooLarge", f"body exceeds max_bytes={max_bytes}")
            try:
                parts.append(decoder.feed(chunk) if decoder.layers else chunk)
            except DECODE_ERRORS as exc:
                raise Abort(Outcome.HTTP_ERROR, "ContentDecodingError", f"cannot decode body: {exc}") from exc
            if progress.wire > max_bytes:
                break  # keeps the crossing chunk, so the reader can tell the body was cut
        if reading.watchdog.fired:
            # A shut-down socket can look like a clean end of a read-until-close body.
            raise Abort(Outcome.TIMEOUT, "TotalTimeout", "total_timeout exceeded")
        return b"".join(parts)


@dataclass
class Reading:
    """The clocks and counters one response body is read against."""

    deadline: Deadline
    watchdog: Watchdog
    progress: Progress

    def expired(self) -> bool:
        """True when the attempt's time is up."""
        return self.deadline.remaining() <= 0 or self.watchdog.fired


def _location(original: str, url: str, resp: requests.Response) -> FetchResult | str:
    """The Location of a redirect response, or a redirect_error when it has none."""
    location = resp.headers.get("Location")
    if not location:
        status = resp.status_code
        message = f"HTTP {status} without a Location header"
        return failed(original, url, Outcome.REDIRECT_ERROR, "MissingLocation", message, status=status)
    with contextlib.suppress(UnicodeError):
        # http.client decodes headers as latin-1; servers usually mean UTF-8.
        location = location.encode("latin-1").decode("utf-8")
    return location.strip()


def _is_gzip_file(media_type: str | None, url: str) -> bool:
    """A gzip file body (not transfer coding): gzip media type, or a .gz URL sent as octet-stream."""
    if media_type in GZIP_TYPES:
        return True
    return media_type in (None, "application/octet-stream") and urlsplit(url).path.endswith(".gz")


def _unsupported(
    common: dict[str, Any], media_type: str, wanted: frozenset[str] | None = None, nbytes: int = 0
) -> FetchResult:
    """The result of a response whose media type this request does not keep."""
    expected = f"; expected {', '.join(sorted(wanted))}" if wanted else ""
    message = (
        f"content type {media_type!r} is not wanted here{expected}"
        if wanted
        else f"content type {media_type!r} is not textual"
    )
    fields = {k: v for k, v in common.items() if k not in ("url", "final_url")}
    return failed(
        common["url"],
        common["final_url"],
        Outcome.UNSUPPORTED_CONTENT_TYPE,
        "UnsupportedContentType",
        message,
        nbytes=nbytes,
        **fields,
    )


def _timeout_result(original: str, url: str, progress: Progress) -> FetchResult:
    """The result of a request that ran past its deadline."""
    return failed(
        original,
        url,
        Outcome.TIMEOUT,
        "TotalTimeout",
        "total_timeout exceeded",
        status=progress.status,
        nbytes=progress.wire,
    )


def _classify(exc: BaseException) -> tuple[Outcome, str]:
    """Map a transport exception to (outcome, error_class)."""
    if isinstance(exc, requests.ConnectTimeout):
        return Outcome.TIMEOUT, "ConnectTimeout"
    if isinstance(exc, requests.ReadTimeout | ReadTimeoutError | TimeoutError):
        return Outcome.TIMEOUT, "ReadTimeout"
    if isinstance(exc, requests.exceptions.SSLError):
        return Outcome.CONNECTION_ERROR, "SSLError"
    if isinstance(exc, requests.exceptions.InvalidURL | requests.exceptions.InvalidSchema):
        return Outcome.INVALID_URL, "InvalidURL"
    if isinstance(exc, requests.ConnectionError):
        reason = exc.args[0] if exc.args else None
        if isinstance(reason, MaxRetryError):
            reason = reason.reason
        if isinstance(reason, NameResolutionError):
            return Outcome.CONNECTION_ERROR, "NameResolutionError"
        return Outcome.CONNECTION_ERROR, "ConnectionError"
    if isinstance(exc, ProtocolError):
        return Outcome.CONNECTION_ERROR, "ProtocolError"
    if isinstance(exc, zlib.error):
        return Outcome.HTTP_ERROR, "ContentDecodingError"
    return Outcome.CONNECTION_ERROR, type(exc).__name__


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Parse Retry-After (delta seconds or HTTP date) into seconds from now, never negative."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(seconds, 0.0) if seconds == seconds and seconds != float("inf") else None
    when = parse_http_date(value)
    if when is None:
        return None
    now = now or datetime.now(UTC)
    return max((when - now).total_seconds(), 0.0)
