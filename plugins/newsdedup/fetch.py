"""Guarded, polite HTTP fetcher: the only way the pipeline talks to the web."""

from __future__ import annotations

import codecs
import contextlib
import copy
import logging
import math
import re
import socket
import sys
import threading
import time
import zlib
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urljoin, urlsplit, urlunsplit

import requests
from charset_normalizer import from_bytes
from requests.adapters import HTTPAdapter
from tenacity import RetryCallState, Retrying, stop_after_attempt, wait_exponential, wait_random
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

from newsdedup import settings
from newsdedup.netguard import (
    AddressRefused,
    IPNetwork,
    check_url,
    parse_networks,
    resolve_checked,
    to_ascii_host,
)
from newsdedup.robots import MAX_ROBOTS_BYTES, RobotsCache, RobotsStore, robots_origin
from newsdedup.textsafe import one_line

try:
    import brotli  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - depends on the environment
    brotli = None
if brotli is not None and not hasattr(brotli.Decompressor, "can_accept_more_data"):
    brotli = None  # before 1.2 its output cannot be capped: a brotli bomb would fill the memory
DECODE_ERRORS: tuple[type[Exception], ...] = (zlib.error, brotli.error) if brotli is not None else (zlib.error,)

logger = logging.getLogger(__name__)

OUTCOMES = frozenset(
    {
        "ok",
        "not_modified",
        "http_error",
        "robots_disallowed",
        "address_refused",
        "too_large",
        "timeout",
        "connection_error",
        "redirect_error",
        "unsupported_content_type",
        "invalid_url",
        "deferred",  # not sent: the host asked us to back off or keeps failing (HostHealth), or out of time
        "parse_error",  # fetched, but not a usable feed or sitemap (set by newsdedup.sources)
        "truncated",  # a feed or sitemap listing more entries than its cap: the newest were read (newsdedup.sources)
    }
)

TEXTUAL_TYPES = frozenset(
    {
        "text/html",
        "application/xhtml+xml",
        "text/xml",
        "application/xml",
        "application/rss+xml",
        "application/atom+xml",
        "application/rdf+xml",
        "application/json",
        "application/feed+json",
        "text/plain",
    }
)

HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
# Bodies that are a gzip file rather than gzip transfer coding: sitemaps published as .xml.gz.
GZIP_TYPES = frozenset({"application/gzip", "application/x-gzip", "application/gzip-compressed"})

ACCEPT_ENCODING = "gzip, deflate, br" if brotli is not None else "gzip, deflate"
DEFAULT_ACCEPT = (
    "text/html,application/xhtml+xml,application/xml;q=0.9,application/rss+xml;q=0.9,"
    "application/atom+xml;q=0.9,application/json;q=0.8,text/plain;q=0.7,*/*;q=0.5"
)
MAX_RETRY_AFTER = 10.0  # longer waits are the scheduler's job, not a blocked worker's
MAX_HOST_BACKOFF = 3600.0  # a longer Retry-After leaves the host alone this long at most
MAX_URL_LENGTH = 16 * 1024
READ_CHUNK = 64 * 1024
SNIFF_BYTES = 4096
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
# Only failures that say nothing about the resource itself are worth another try.
TRANSIENT_ERROR_CLASSES = frozenset({"ConnectionError", "ConnectTimeout"})


@dataclass
class FetchResult:
    """Everything the pipeline needs to know about one fetch, successful or not."""

    url: str
    final_url: str
    outcome: str
    status: int | None = None
    body: bytes | None = None
    text: str | None = None
    content_type: str | None = None
    encoding: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    retry_after: float | None = None
    nbytes: int = 0
    elapsed_ms: int = 0
    error_class: str | None = None
    error_message: str | None = None
    attempts: int = 1
    # robots.txt fetches this request caused (at most one per origin and cache period), for crawl_log.
    robots: list[FetchResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when the body was fetched and kept."""
        return self.outcome == "ok"


@dataclass
class FetchPolicy:
    """Limits, politeness and safety settings for a Fetcher (defaults: newsdedup.settings)."""

    user_agent: str = settings.DEFAULT_USER_AGENT
    connect_timeout: float = 5.0
    read_timeout: float = 15.0
    total_timeout: float = settings.DEFAULTS.fetch_timeout
    max_bytes: int = settings.DEFAULTS.max_page_bytes
    max_decompressed_bytes: int = 2 * settings.DEFAULTS.max_page_bytes
    max_redirects: int = 5
    min_host_delay: float = settings.DEFAULTS.min_host_delay
    respect_robots: bool = True
    robots_ttl: float = settings.DEFAULTS.robots_ttl
    allow_networks: tuple[str, ...] = ()
    retries: int = settings.DEFAULTS.retries
    retry_backoff: float = 0.5  # first back-off in seconds; doubles per retry, plus jitter
    max_connections: int = settings.DEFAULTS.max_connections  # in flight in this process, all Fetchers
    max_host_failures: int = settings.DEFAULTS.host_max_failures  # timeouts/connection errors in a row
    host_cooldown: float = math.inf  # seconds a failing host is left alone: the Fetcher's life, i.e. the run

    def __post_init__(self) -> None:
        """Validate the numbers and the allow list early, with messages that name the field."""
        if isinstance(self.allow_networks, str):
            raise ValueError("allow_networks must be a sequence of CIDR strings, not one string")
        self.allow_networks = tuple(self.allow_networks)
        parse_networks(self.allow_networks)
        for name in ("connect_timeout", "read_timeout", "total_timeout"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)!r}")
        for name in ("min_host_delay", "robots_ttl", "retry_backoff", "host_cooldown"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        for name in ("max_bytes", "max_decompressed_bytes", "max_connections", "max_host_failures"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        for name in ("max_redirects", "retries"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        if not self.user_agent.strip() or any(ord(ch) < 0x20 for ch in self.user_agent):
            raise ValueError("user_agent must be a non-empty single line")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> FetchPolicy:
        """Build a policy from the fetch settings (newsdedup.settings; README, Configuration)."""
        env = settings.load(environ)
        return cls(
            user_agent=env.user_agent,
            allow_networks=env.allow_networks,
            min_host_delay=env.min_host_delay,
            max_connections=env.max_connections,
            retries=env.retries,
            max_host_failures=env.host_max_failures,
            robots_ttl=env.robots_ttl,
            # One knob for operators: no phase of a request may outlast the whole request.
            total_timeout=env.fetch_timeout,
            connect_timeout=min(cls.connect_timeout, env.fetch_timeout),
            read_timeout=min(cls.read_timeout, env.fetch_timeout),
            max_bytes=env.max_page_bytes,
            max_decompressed_bytes=2 * env.max_page_bytes,
        )


# --------------------------------------------------------------------------- politeness


class _HostSlot:
    """Per-host politeness state."""

    __slots__ = ("lock", "next_at", "delay")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.next_at = 0.0
        self.delay = 0.0


class HostThrottle:
    """Enforce a minimum gap between request starts to the same host, across threads."""

    def __init__(
        self,
        min_delay: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.min_delay = min_delay
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._slots: dict[str, _HostSlot] = {}

    def _slot(self, host: str) -> _HostSlot:
        with self._lock:
            slot = self._slots.get(host)
            if slot is None:
                slot = self._slots[host] = _HostSlot()
            return slot

    def set_delay(self, host: str, delay: float) -> None:
        """Raise this host's gap (e.g. robots.txt Crawl-delay); never below min_delay."""
        slot = self._slot(host)
        with slot.lock:
            slot.delay = max(slot.delay, delay)

    def delay_for(self, host: str) -> float:
        """Current gap enforced for host."""
        slot = self._slot(host)
        with slot.lock:
            return max(self.min_delay, slot.delay)

    def defer(self, host: str, seconds: float) -> None:
        """Make the next request to host wait at least `seconds` from now (Retry-After)."""
        slot = self._slot(host)
        with slot.lock:
            slot.next_at = max(slot.next_at, self._clock() + seconds)

    def wait(self, host: str) -> float:
        """Block until host may be contacted again; return the seconds slept."""
        slot = self._slot(host)
        with slot.lock:
            now = self._clock()
            start = max(now, slot.next_at)
            # Reserve the slot now and sleep outside the lock so other threads queue up in order.
            slot.next_at = start + max(self.min_delay, slot.delay)
        pause = start - now
        if pause > 0:
            self._sleep(pause)
        return max(pause, 0.0)


class HostHealth:
    """Origins (scheme://host:port) to leave alone for a while: they asked for a long back-off, or keep failing."""

    def __init__(self, max_failures: int, cooldown: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_failures = max_failures
        self.cooldown = cooldown
        self._clock = clock
        self._lock = threading.Lock()
        self._failures: dict[str, int] = {}
        self._closed: dict[str, tuple[float, str]] = {}

    def closed(self, origin: str) -> str | None:
        """Why origin must not be contacted now, or None."""
        with self._lock:
            until, reason = self._closed.get(origin, (0.0, ""))
            if until <= self._clock():
                return None
            if until == math.inf:
                return f"{reason}; not contacted again in this run"
            return f"{reason}; not contacted for another {until - self._clock():.0f} s"

    def close(self, origin: str, seconds: float, reason: str) -> None:
        """Leave origin alone for `seconds`."""
        with self._lock:
            self._closed[origin] = (self._clock() + seconds, reason)

    def record(self, origin: str, result: FetchResult) -> None:
        """Count consecutive transport failures of origin; a response of any kind resets the count."""
        with self._lock:
            if result.status is not None:
                self._failures[origin] = 0
                return
            if result.outcome not in ("timeout", "connection_error"):
                return
            failures = self._failures[origin] = self._failures.get(origin, 0) + 1
            if failures >= self.max_failures:
                self._failures[origin] = 0
                reason = f"{failures} timeouts or connection errors in a row (last: {result.error_class})"
                self._closed[origin] = (self._clock() + self.cooldown, reason)


_SLOTS_LOCK = threading.Lock()
_SLOTS: dict[int, threading.BoundedSemaphore] = {}


def connection_slots(limit: int) -> threading.BoundedSemaphore:
    """The process-wide semaphore shared by every Fetcher whose policy allows `limit` connections."""
    with _SLOTS_LOCK:
        slots = _SLOTS.get(limit)
        if slots is None:
            slots = _SLOTS[limit] = threading.BoundedSemaphore(limit)
        return slots


# --------------------------------------------------------------------------- guarded transport

_local = threading.local()


def _shutdown(sock: socket.socket) -> None:
    """Shut a socket down from another thread so a blocked read returns."""
    with contextlib.suppress(OSError):
        # The base-class method also works on SSLSockets without touching TLS state.
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


class _Watchdog:
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
        watchdog = getattr(_local, "watchdog", None)
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


# --------------------------------------------------------------------------- body handling


class _Abort(Exception):
    """Internal: stop processing a response with a given outcome."""

    def __init__(self, outcome: str, error_class: str, message: str) -> None:
        super().__init__(message)
        self.outcome = outcome
        self.error_class = error_class
        self.message = message


class _ZlibLayer:
    """Incremental gzip/deflate decoder that never produces more than it is asked for."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._pending = b""  # a deflate header, or the start of the next gzip member, not yet complete
        self._obj: Any = None  # None: at the start of the stream or between gzip members
        self._members = 0
        self._finished = False

    # No flush(): decompress() already returns all available output, and a truncated stream
    # keeps what was decoded (as browsers and urllib3 do).

    def feed(self, data: bytes, max_out: int) -> bytes:
        """Decode what data completes, at most max_out bytes; members are walked in a loop, not recursively."""
        data, self._pending = self._pending + data, b""
        out = bytearray()
        while data and not self._finished and len(out) < max_out:
            if self._obj is None and not self._start(data):
                self._pending = data  # too short to tell: wait for the next chunk
                break
            if self._finished:
                break
            out += self._obj.decompress(data, max_out - len(out))
            if self._obj.unconsumed_tail or not self._obj.eof:
                break  # output limit reached (the caller aborts), or all input consumed
            data = self._obj.unused_data
            self._obj = None
            self._finished = self.kind != "gzip"  # only gzip has members; later bytes are ignored
        return bytes(out)

    def _start(self, data: bytes) -> bool:
        """Open a decoder for the stream or gzip member data starts; False when data is too short to tell."""
        if len(data) < 2:
            return False
        if self.kind == "gzip":
            if self._members and not data.startswith(b"\x1f\x8b"):
                self._finished = True  # trailing garbage after the last member is ignored, like browsers
            else:
                self._obj = zlib.decompressobj(16 + zlib.MAX_WBITS)  # a bad first header raises zlib.error
                self._members += 1
            return True
        # "deflate" should be zlib-wrapped, but many servers send raw deflate; sniff the header.
        cmf, flg = data[0], data[1]
        wrapped = cmf & 0x0F == 8 and (cmf * 256 + flg) % 31 == 0
        self._obj = zlib.decompressobj(zlib.MAX_WBITS if wrapped else -zlib.MAX_WBITS)
        return True


class _BrotliLayer:
    """Incremental brotli decoder with capped output (only used when brotli 1.2 or later is installed)."""

    def __init__(self) -> None:
        self._obj = brotli.Decompressor()

    def feed(self, data: bytes, max_out: int) -> bytes:
        """Decode data, at most about max_out bytes (the caller aborts when the output reaches it)."""
        if self._obj.is_finished():
            return b""  # trailing bytes after the stream are ignored, as for gzip
        out = self._obj.process(data, output_buffer_limit=max_out)
        while len(out) < max_out and not self._obj.can_accept_more_data():
            out += self._obj.process(b"", output_buffer_limit=max_out - len(out))
        return out


class _BodyDecoder:
    """Undo Content-Encoding layers incrementally, capping every layer's output."""

    def __init__(self, encodings: list[str], limit: int) -> None:
        self.limit = limit
        self.layers: list[Any] = []
        self._produced: list[int] = []
        # Encodings are listed in the order applied, so they are undone in reverse.
        for enc in reversed(encodings):
            if enc in ("gzip", "x-gzip"):
                self.layers.append(_ZlibLayer("gzip"))
            elif enc == "deflate":
                self.layers.append(_ZlibLayer("deflate"))
            elif enc == "br" and brotli is not None:
                self.layers.append(_BrotliLayer())
            else:
                raise _Abort(
                    "unsupported_content_type",
                    "UnsupportedContentEncoding",
                    f"unsupported Content-Encoding {enc!r}",
                )
            self._produced.append(0)

    def _through(self, data: bytes, start: int) -> bytes:
        for i in range(start, len(self.layers)):
            if not data:
                return b""
            room = self.limit - self._produced[i]
            data = self.layers[i].feed(data, room + 1)
            self._produced[i] += len(data)
            if self._produced[i] > self.limit:
                raise _Abort(
                    "too_large",
                    "DecompressedTooLarge",
                    f"decompressed body exceeds max_decompressed_bytes={self.limit}",
                )
        return data

    def feed(self, data: bytes) -> bytes:
        return self._through(data, 0)


def parse_content_type(value: str | None) -> tuple[str | None, str | None]:
    """Split a Content-Type header into (media type, charset parameter)."""
    if not value:
        return None, None
    media = re.split(r"[;,]", value, maxsplit=1)[0].strip().lower()
    match = re.search(r"""charset\s*=\s*["']?\s*([^"';,\s]+)""", value, re.IGNORECASE)
    return (media or None), (match.group(1) if match else None)


def is_textual(media_type: str) -> bool:
    """True for media types the pipeline can parse as text (HTML, XML feeds, JSON, plain)."""
    return media_type in TEXTUAL_TYPES or media_type.endswith("+xml") or media_type.endswith("+json")


def sniff_media_type(body: bytes) -> str:
    """Guess a media type for a response that sent no Content-Type."""
    head = body[:1024].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if not head:
        return "text/plain"
    binary_magic = (b"%pdf", b"\x89png", b"gif8", b"\xff\xd8\xff", b"pk\x03\x04", b"\x1f\x8b")
    if head.startswith(binary_magic):
        return "application/pdf" if head.startswith(b"%pdf") else "application/octet-stream"
    if head.startswith(b"<?xml"):
        return "application/xml"
    if head.startswith((b"<!doctype html", b"<html", b"<head", b"<body")) or b"<html" in head:
        return "text/html"
    if head.startswith((b"{", b"[")):
        return "application/json"
    if b"\x00" in head:
        return "application/octet-stream"
    return "text/plain"


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
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    now = now or datetime.now(UTC)
    return max((when - now).total_seconds(), 0.0)


# --------------------------------------------------------------------------- charset handling

_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_XML_DECL = re.compile(rb"""^\s*<\?xml[^>]{0,200}?encoding\s*=\s*["']([A-Za-z0-9._:+-]{1,40})""")
_META_CHARSET = re.compile(
    rb"""<meta\b[^>]{0,512}?charset\s*=\s*["']?\s*([A-Za-z0-9._:+-]{1,40})""", re.IGNORECASE
)
# Browsers (WHATWG Encoding) decode these labels with the superset on the right.
_WHATWG_SUPERSETS = {
    "ascii": "cp1252",
    "iso8859-1": "cp1252",
    "iso8859-9": "cp1254",
    "iso8859-11": "cp874",
    "tis-620": "cp874",
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "euc_kr": "cp949",
    "shift_jis": "cp932",
}


def normalise_charset(label: str | None, *, in_document: bool = False) -> str | None:
    """Map a charset label to a Python codec name, or None if unknown/unusable."""
    if not label:
        return None
    label = label.strip().strip("\"'").lower()
    try:
        name = codecs.lookup(label).name
        b"\0".decode(name, "replace")  # rejects bytes-to-bytes codecs such as 'hex' or 'zlib'
    except (LookupError, ValueError):
        return None
    if name == "utf-7":
        return None  # never honoured by browsers; a known XSS vector
    if in_document and name.startswith(("utf-16", "utf-32")):
        return "utf-8"  # a document that can declare itself in ASCII is not UTF-16
    return _WHATWG_SUPERSETS.get(name, name)


def _declared_in_document(body: bytes) -> str | None:
    """Charset from the XML declaration or a <meta> tag in the first 4 KB."""
    head = body[:SNIFF_BYTES]
    match = _XML_DECL.match(head) or _META_CHARSET.search(head)
    if not match:
        return None
    return normalise_charset(match.group(1).decode("ascii", "replace"), in_document=True)


def _is_utf8_with_non_ascii(body: bytes) -> bool:
    """True when body has non-ASCII bytes that form valid UTF-8 (a strong signal)."""
    if body.isascii():
        return False
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def decode_body(body: bytes, header_charset: str | None = None) -> tuple[str, str]:
    """Decode body: BOM, header charset, in-document declaration, detection, then UTF-8."""
    for bom, codec in _BOMS:
        if body.startswith(bom):
            name = "utf-8" if codec == "utf-8-sig" else codec
            return body.decode(codec, errors="replace"), name
    declared = (normalise_charset(header_charset), _declared_in_document(body))
    for charset in declared:
        if charset is None:
            continue
        if charset != "utf-8" and _is_utf8_with_non_ascii(body):
            # Legacy-charset text is almost never valid multi-byte UTF-8: the label is wrong.
            return body.decode("utf-8"), "utf-8"
        try:
            return body.decode(charset), charset
        except UnicodeDecodeError:
            logger.debug("declared charset %s does not decode the body; trying next", charset)
    if body.isascii():
        return body.decode("ascii"), "ascii"
    best = from_bytes(body).best()
    if best is not None and best.encoding:
        charset = normalise_charset(best.encoding) or best.encoding
        with contextlib.suppress(UnicodeDecodeError, LookupError):
            return body.decode(charset), charset
    return body.decode("utf-8", errors="replace"), "utf-8"


# --------------------------------------------------------------------------- URL helpers


def invalid_url_reason(url: object) -> str | None:
    """Why url cannot be fetched at all (None when it is a syntactically usable http(s) URL)."""
    if not isinstance(url, str) or not url.strip():
        return "URL must be a non-empty string"
    url = url.strip()
    if len(url) > MAX_URL_LENGTH:
        return f"URL longer than {MAX_URL_LENGTH} characters"
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in url):
        return "URL contains control characters"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        return f"unparseable URL: {exc}"
    if parts.scheme.lower() not in ("http", "https"):
        return f"unsupported scheme {parts.scheme or '(none)'!r}"
    if not parts.hostname:
        return "URL has no host"
    try:
        to_ascii_host(parts.hostname)
    except ValueError as exc:
        return str(exc)
    return None


def _without_fragment(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme.lower(), parts.netloc.lower(), parts.path or "/", parts.query, ""))


def _host_key(url: str) -> str:
    return (urlsplit(url).hostname or "").lower()


@dataclass
class _Progress:
    """Mutable per-request counters that survive an exception."""

    status: int | None = None
    wire: int = 0


class _Deadline:
    """Budget for one attempt; time spent waiting on politeness is given back."""

    def __init__(self, seconds: float) -> None:
        self.at = time.monotonic() + seconds

    def remaining(self) -> float:
        return self.at - time.monotonic()

    def extend(self, seconds: float) -> None:
        self.at += seconds


# --------------------------------------------------------------------------- the fetcher


@dataclass
class _Call:
    """Options of one get() that every hop and attempt of it shares."""

    headers: dict[str, str]
    for_robots: bool = False
    accept_types: frozenset[str] | None = None  # None: any textual type
    gunzip: bool = False  # accept a gzip file body (sitemap.xml.gz) and unpack it
    host_delay: float | None = None
    robots: list[FetchResult] = field(default_factory=list)


class Fetcher:
    """Fetch URLs safely (address guard, size/time caps), politely (robots, delays), never raising.

    One Fetcher is shared by threads. Requests to one host are spaced by the per-host delay
    (HostThrottle: a lock per host, so different hosts never wait on each other); requests in
    flight across the whole process are capped by a semaphore (`max_connections`).
    """

    def __init__(self, policy: FetchPolicy | None = None, robots_store: RobotsStore | None = None) -> None:
        self.policy = policy or FetchPolicy()
        self._networks = parse_networks(self.policy.allow_networks)
        self._session = requests.Session()
        # No proxies, .netrc or env CA overrides: the guard must see the real destination.
        self._session.trust_env = False
        adapter = _GuardedAdapter(self._networks, pool_maxsize=max(10, self.policy.max_connections))
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)
        self._session.headers.clear()
        self._session.headers.update(
            {
                "User-Agent": self.policy.user_agent,
                "Accept-Encoding": ACCEPT_ENCODING,
                "Accept": DEFAULT_ACCEPT,
            }
        )
        self.throttle = HostThrottle(self.policy.min_host_delay)
        self.health = HostHealth(self.policy.max_host_failures, self.policy.host_cooldown)
        self.slots = connection_slots(self.policy.max_connections)
        self.robots = RobotsCache(
            self._fetch_robots_txt, self.policy.user_agent, self.policy.robots_ttl, store=robots_store
        )
        self._sleep: Callable[[float], None] = time.sleep
        self.deadline: float | None = None  # time.monotonic() after which nothing is sent (see until)

    def until(self, deadline: float) -> Fetcher:
        """This fetcher (same connections, politeness and host health) starting no request after `deadline`.

        A request started before the deadline runs to its own timeout; no retry of it starts after.
        """
        bounded = copy.copy(self)
        bounded.deadline = deadline
        return bounded

    def out_of_time(self, upcoming: float = 0.0) -> bool:
        """True when the deadline (see until) has passed, or will have after `upcoming` seconds."""
        return self.deadline is not None and time.monotonic() + upcoming >= self.deadline

    def __enter__(self) -> Fetcher:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Release pooled connections."""
        self._session.close()

    def get(
        self,
        url: str,
        *,
        etag: str | None = None,
        last_modified: str | None = None,
        accept: str | None = None,
        accept_types: Collection[str] | None = None,
        gunzip: bool = False,
        host_delay: float | None = None,
    ) -> FetchResult:
        """Fetch url (conditional when etag/last_modified are given); never raises for I/O problems.

        accept_types: media types to keep (others are `unsupported_content_type`, body unread);
        gunzip: also accept a gzip file and return it unpacked; host_delay: raise the gap between
        requests to the hosts this fetch touches (a source's rate limit).
        """
        started = time.monotonic()
        if self.out_of_time():
            return FetchResult(
                url=str(url),
                final_url=str(url),
                outcome="deferred",
                error_class="OutOfTime",
                error_message="not sent: the source's time budget for this run is used up",
            )
        headers: dict[str, str] = {}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        if accept:
            headers["Accept"] = accept
        call = _Call(
            headers,
            accept_types=frozenset(accept_types) if accept_types is not None else None,
            gunzip=gunzip,
            host_delay=host_delay,
        )
        try:
            result = self._fetch(url, call)
        except Exception as exc:  # get() must not raise: an unexpected bug becomes a result
            logger.exception("unexpected error fetching %r", url)
            result = FetchResult(
                url=str(url),
                final_url=str(url),
                outcome="connection_error",
                error_class=type(exc).__name__,
                error_message=one_line(f"unexpected error: {exc}"),
            )
        if result.outcome == "not_modified":
            # Servers often omit validators on 304; keep the ones that are still valid.
            result.etag = result.etag or etag
            result.last_modified = result.last_modified or last_modified
        result.robots = call.robots
        result.elapsed_ms = int((time.monotonic() - started) * 1000)
        return result

    def _fetch_robots_txt(
        self, robots_url: str, etag: str | None = None, last_modified: str | None = None
    ) -> FetchResult:
        """Fetch robots.txt (conditionally) through the same guarded, throttled client (no robots check)."""
        started = time.monotonic()
        headers = {"Accept": "text/plain,*/*;q=0.5"}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        result = self._fetch(robots_url, _Call(headers, for_robots=True))
        result.elapsed_ms = int((time.monotonic() - started) * 1000)
        return result

    def _fetch(self, url: str, call: _Call) -> FetchResult:
        """Validate url, then run attempts with tenacity for transient failures."""
        reason = invalid_url_reason(url)
        if reason is not None:
            return FetchResult(
                url=str(url),
                final_url=str(url),
                outcome="invalid_url",
                error_class="InvalidURL",
                error_message=reason,
            )
        honoured_retry_after = False
        base = self.policy.retry_backoff
        backoff = wait_exponential(multiplier=base, max=30.0) + wait_random(0, base)

        def should_retry(state: RetryCallState) -> bool:
            result: FetchResult = state.outcome.result()  # type: ignore[union-attr]
            if result.retry_after is not None:
                return not honoured_retry_after and result.retry_after <= MAX_RETRY_AFTER
            return _is_transient(result)

        def wait(state: RetryCallState) -> float:
            nonlocal honoured_retry_after
            result: FetchResult = state.outcome.result()  # type: ignore[union-attr]
            if result.retry_after is not None:
                honoured_retry_after = True
                return result.retry_after
            return backoff(state)

        def log_retry(state: RetryCallState) -> None:
            result: FetchResult = state.outcome.result()  # type: ignore[union-attr]
            logger.info(
                "retrying %s after %s (%s), attempt %d",
                one_line(url),
                result.outcome,
                result.status or result.error_class,
                state.attempt_number + 1,
            )

        attempts = 0

        def attempt() -> FetchResult:
            nonlocal attempts
            attempts += 1
            return self._attempt(url.strip(), url, call)

        retrying = Retrying(
            # No retry starts after the deadline (upcoming_sleep: tenacity computes the wait first).
            stop=stop_after_attempt(self.policy.retries + 1) | (lambda s: self.out_of_time(s.upcoming_sleep)),
            wait=wait,
            retry=should_retry,
            before_sleep=log_retry,
            retry_error_callback=lambda state: state.outcome.result(),  # type: ignore[union-attr]
            sleep=self._sleep,
        )
        result: FetchResult = retrying(attempt)
        result.attempts = max(attempts, 1)
        if result.attempts > 1 and result.error_message:
            result.error_message += f" (after {result.attempts} attempts)"
        if result.error_message:
            result.error_message = one_line(result.error_message)  # reason phrases, exception texts: from the web
        self._after(result)
        return result

    def _after(self, result: FetchResult) -> None:
        """Learn from a finished fetch: consecutive failures, and Retry-After beyond what we wait for."""
        if result.outcome == "deferred":
            return
        # Back-off is per origin (one service on one port); the politeness gap is per host name.
        origin = robots_origin(result.final_url)
        self.health.record(origin, result)
        if result.retry_after is not None:
            if result.retry_after > MAX_RETRY_AFTER:
                self.health.close(
                    origin,
                    min(result.retry_after, MAX_HOST_BACKOFF),
                    f"HTTP {result.status} asked to retry after {result.retry_after:.0f} s",
                )
            else:
                self.throttle.defer(_host_key(result.final_url), result.retry_after)

    def _attempt(self, start_url: str, original: str, call: _Call) -> FetchResult:
        """One attempt: follow redirects by hand, re-checking address and robots on every hop."""
        policy = self.policy
        deadline = _Deadline(policy.total_timeout)
        current = start_url
        visited = {_without_fragment(current)}
        for hop in range(policy.max_redirects + 1):
            refused = self._preflight(original, current, call, deadline)
            if refused is not None:
                return refused
            outcome = self._request(original, current, call, deadline)
            if isinstance(outcome, FetchResult):
                return outcome
            location = outcome
            next_url = urljoin(current, location)
            problem = invalid_url_reason(next_url)
            base = {"url": original, "final_url": current, "outcome": "redirect_error"}
            if problem is not None:
                return FetchResult(
                    **base, error_class="InvalidRedirect", error_message=f"{problem}: {location!r}"
                )
            key = _without_fragment(next_url)
            if key in visited:
                return FetchResult(
                    **base, error_class="RedirectLoop", error_message=f"redirect loop at {next_url}"
                )
            if hop == policy.max_redirects:
                return FetchResult(
                    **base,
                    error_class="TooManyRedirects",
                    error_message=f"more than {policy.max_redirects} redirects",
                )
            visited.add(key)
            current = next_url
        raise AssertionError("unreachable: the loop always returns")  # pragma: no cover

    def _preflight(self, original: str, url: str, call: _Call, deadline: _Deadline) -> FetchResult | None:
        """Origin health, address guard, robots.txt and politeness delay for one hop."""
        host = _host_key(url)
        origin = robots_origin(url)
        closed = self.health.closed(origin)
        if closed is not None:
            return FetchResult(
                url=original,
                final_url=url,
                outcome="deferred",
                error_class="HostBackoff",
                error_message=f"{origin}: {closed}",
            )
        try:
            check_url(url, self._networks)
        except AddressRefused as exc:
            return FetchResult(
                url=original,
                final_url=url,
                outcome="address_refused",
                error_class="AddressRefused",
                error_message=str(exc),
            )
        except OSError as exc:
            return FetchResult(
                url=original,
                final_url=url,
                outcome="connection_error",
                error_class="NameResolutionError",
                error_message=f"cannot resolve {urlsplit(url).hostname}: {exc}",
            )
        began = time.monotonic()
        if call.host_delay:
            self.throttle.set_delay(host, call.host_delay)
        if self.policy.respect_robots and not call.for_robots:
            rules, fetched = self.robots.rules_and_fetch(url)
            if fetched is not None:
                call.robots.append(fetched)
            if rules.crawl_delay:
                self.throttle.set_delay(host, rules.crawl_delay)
            if not rules.allowed(url, self.robots.agent):
                return FetchResult(
                    url=original,
                    final_url=url,
                    outcome="robots_disallowed",
                    error_class="RobotsDisallowed",
                    error_message=f"robots.txt of {rules.origin} disallows this URL ({rules.reason})",
                )
        self.throttle.wait(host)
        deadline.extend(time.monotonic() - began)
        return None

    def _request(self, original: str, url: str, call: _Call, deadline: _Deadline) -> FetchResult | str:
        """Send one GET (holding a process-wide connection slot); return the redirect Location or a result."""
        queued = time.monotonic()
        with self.slots:
            deadline.extend(time.monotonic() - queued)
            return self._send(original, url, call, deadline)

    def _send(self, original: str, url: str, call: _Call, deadline: _Deadline) -> FetchResult | str:
        """Send one GET; return the redirect Location, or the final FetchResult."""
        policy = self.policy
        remaining = deadline.remaining()
        progress = _Progress()
        if remaining <= 0:
            return _timeout_result(original, url, progress)
        watchdog = _Watchdog(remaining)
        _local.watchdog = watchdog
        resp: requests.Response | None = None
        headers = call.headers
        try:
            resp = self._session.get(
                url,
                headers=headers,
                stream=True,
                allow_redirects=False,
                timeout=(min(policy.connect_timeout, remaining), min(policy.read_timeout, remaining)),
            )
            status = progress.status = resp.status_code
            if status in REDIRECT_STATUSES:
                location = resp.headers.get("Location")
                if not location:
                    return FetchResult(
                        url=original,
                        final_url=url,
                        outcome="redirect_error",
                        status=status,
                        error_class="MissingLocation",
                        error_message=f"HTTP {status} without a Location header",
                    )
                with contextlib.suppress(UnicodeError):
                    # http.client decodes headers as latin-1; servers usually mean UTF-8.
                    location = location.encode("latin-1").decode("utf-8")
                return location.strip()
            return self._finish(original, url, resp, deadline, watchdog, call, progress)
        except _Abort as exc:
            if watchdog.fired:
                return _timeout_result(original, url, progress)
            return FetchResult(
                url=original,
                final_url=url,
                outcome=exc.outcome,
                status=progress.status,
                nbytes=progress.wire,
                error_class=exc.error_class,
                error_message=exc.message,
            )
        except AddressRefused as exc:
            return FetchResult(
                url=original,
                final_url=url,
                outcome="address_refused",
                error_class="AddressRefused",
                error_message=str(exc),
            )
        except (requests.RequestException, ProtocolError, ReadTimeoutError, OSError, zlib.error) as exc:
            if watchdog.fired:
                return _timeout_result(original, url, progress)
            outcome, error_class = _classify(exc)
            return FetchResult(
                url=original,
                final_url=url,
                outcome=outcome,
                status=progress.status,
                nbytes=progress.wire,
                error_class=error_class,
                error_message=str(exc)[:500],
            )
        finally:
            watchdog.close()
            _local.watchdog = None
            if resp is not None:
                resp.close()

    def _finish(
        self,
        original: str,
        url: str,
        resp: requests.Response,
        deadline: _Deadline,
        watchdog: _Watchdog,
        call: _Call,
        progress: _Progress,
    ) -> FetchResult:
        """Turn a non-redirect response into a FetchResult, reading the body if it is wanted."""
        status = resp.status_code
        hdrs = resp.headers
        for_robots = call.for_robots
        media_type, charset = parse_content_type(hdrs.get("Content-Type"))
        common: dict[str, Any] = {
            "url": original,
            "final_url": url,
            "status": status,
            "content_type": media_type,
            "etag": hdrs.get("ETag"),
            "last_modified": hdrs.get("Last-Modified"),
        }
        if status == 304:
            return FetchResult(outcome="not_modified", **common)
        if not 200 <= status < 300:
            retry_after = None
            if status in (429, 503):
                retry_after = parse_retry_after(hdrs.get("Retry-After"))
            return FetchResult(
                outcome="http_error",
                retry_after=retry_after,
                error_class="HTTPError",
                error_message=f"HTTP {status} {resp.reason or ''}".strip(),
                **common,
            )
        gzip_file = call.gunzip and _is_gzip_file(media_type, url)
        if media_type is not None and not for_robots and not gzip_file and not self._wanted(media_type, call):
            return _unsupported(common, media_type, call.accept_types)
        # robots.txt is cut, not refused: its first MAX_ROBOTS_BYTES are parsed (RFC 9309, 2.5).
        max_bytes = MAX_ROBOTS_BYTES if for_robots else self.policy.max_bytes
        declared = hdrs.get("Content-Length", "").strip()
        if not for_robots and declared.isdigit() and int(declared) > max_bytes:
            raise _Abort(
                "too_large", "BodyTooLarge", f"Content-Length {declared} exceeds max_bytes={max_bytes}"
            )
        encodings = [
            e.strip().lower()
            for e in hdrs.get("Content-Encoding", "").split(",")
            if e.strip() and e.strip().lower() != "identity"
        ]
        body = self._read_body(resp, encodings, max_bytes, deadline, watchdog, progress, truncate=for_robots)
        if call.gunzip and body.startswith(b"\x1f\x8b"):
            body = self._gunzip(body)
            media_type = sniff_media_type(body)
            common["content_type"] = media_type
            charset = None
        elif media_type is None:
            media_type = sniff_media_type(body)
            common["content_type"] = media_type
            if not for_robots and not self._wanted(media_type, call):
                return _unsupported(common, media_type, call.accept_types, nbytes=progress.wire)
        if gzip_file and not self._wanted(media_type, call):
            return _unsupported(common, media_type, call.accept_types, nbytes=progress.wire)
        text = encoding = None
        if is_textual(media_type):
            text, encoding = decode_body(body, charset)
        return FetchResult(
            outcome="ok", body=body, text=text, encoding=encoding, nbytes=progress.wire, **common
        )

    @staticmethod
    def _wanted(media_type: str, call: _Call) -> bool:
        """True when this call keeps bodies of media_type."""
        if call.accept_types is not None:
            return media_type in call.accept_types
        return is_textual(media_type)

    def _gunzip(self, body: bytes) -> bytes:
        """Unpack a gzip file body, capped at max_decompressed_bytes."""
        limit = self.policy.max_decompressed_bytes
        try:
            out = _ZlibLayer("gzip").feed(body, limit + 1)
        except zlib.error as exc:
            raise _Abort("http_error", "ContentDecodingError", f"cannot unpack gzip file: {exc}") from exc
        if len(out) > limit:
            raise _Abort(
                "too_large", "DecompressedTooLarge", f"unpacked gzip file exceeds max_decompressed_bytes={limit}"
            )
        return out

    def _read_body(
        self,
        resp: requests.Response,
        encodings: list[str],
        max_bytes: int,
        deadline: _Deadline,
        watchdog: _Watchdog,
        progress: _Progress,
        truncate: bool = False,
    ) -> bytes:
        """Stream the raw body, capping wire and decompressed size (truncate: cut, not fail) and the time."""
        decoder = _BodyDecoder(encodings, self.policy.max_decompressed_bytes)
        raw = resp.raw
        parts: list[bytes] = []
        while True:
            if deadline.remaining() <= 0 or watchdog.fired:
                raise _Abort("timeout", "TotalTimeout", "total_timeout exceeded")
            # read1 returns what one socket read gives, so slow drips reach the deadline check.
            chunk = raw.read1(READ_CHUNK, decode_content=False)
            if not chunk:
                break
            progress.wire += len(chunk)
            if progress.wire > max_bytes and not truncate:
                raise _Abort("too_large", "BodyTooLarge", f"body exceeds max_bytes={max_bytes}")
            try:
                parts.append(decoder.feed(chunk) if decoder.layers else chunk)
            except DECODE_ERRORS as exc:
                raise _Abort("http_error", "ContentDecodingError", f"cannot decode body: {exc}") from exc
            if progress.wire > max_bytes:
                break  # keeps the crossing chunk, so the reader can tell the body was cut
        if watchdog.fired:
            # A shut-down socket can look like a clean end of a read-until-close body.
            raise _Abort("timeout", "TotalTimeout", "total_timeout exceeded")
        return b"".join(parts)


def _is_gzip_file(media_type: str | None, url: str) -> bool:
    """A gzip file body (not transfer coding): gzip media type, or a .gz URL sent as octet-stream."""
    if media_type in GZIP_TYPES:
        return True
    return media_type in (None, "application/octet-stream") and urlsplit(url).path.endswith(".gz")


def _unsupported(
    common: dict[str, Any], media_type: str, wanted: frozenset[str] | None = None, nbytes: int = 0
) -> FetchResult:
    expected = f"; expected {', '.join(sorted(wanted))}" if wanted else ""
    return FetchResult(
        outcome="unsupported_content_type",
        nbytes=nbytes,
        error_class="UnsupportedContentType",
        error_message=f"content type {media_type!r} is not wanted here{expected}"
        if wanted
        else f"content type {media_type!r} is not textual",
        **common,
    )


def _timeout_result(original: str, url: str, progress: _Progress) -> FetchResult:
    return FetchResult(
        url=original,
        final_url=url,
        outcome="timeout",
        status=progress.status,
        nbytes=progress.wire,
        error_class="TotalTimeout",
        error_message="total_timeout exceeded",
    )


def _classify(exc: BaseException) -> tuple[str, str]:
    """Map a transport exception to (outcome, error_class)."""
    if isinstance(exc, requests.ConnectTimeout):
        return "timeout", "ConnectTimeout"
    if isinstance(exc, requests.ReadTimeout | ReadTimeoutError | TimeoutError):
        return "timeout", "ReadTimeout"
    if isinstance(exc, requests.exceptions.SSLError):
        return "connection_error", "SSLError"
    if isinstance(exc, requests.exceptions.InvalidURL | requests.exceptions.InvalidSchema):
        return "invalid_url", "InvalidURL"
    if isinstance(exc, requests.ConnectionError):
        reason = exc.args[0] if exc.args else None
        if isinstance(reason, MaxRetryError):
            reason = reason.reason
        if isinstance(reason, NameResolutionError):
            return "connection_error", "NameResolutionError"
        return "connection_error", "ConnectionError"
    if isinstance(exc, ProtocolError):
        return "connection_error", "ProtocolError"
    if isinstance(exc, zlib.error):
        return "http_error", "ContentDecodingError"
    return "connection_error", type(exc).__name__


def _is_transient(result: FetchResult) -> bool:
    """Connect failures, 429 and 5xx (except 501) are worth retrying; nothing else is."""
    if result.outcome == "http_error":
        status = result.status or 0
        return status == 429 or (500 <= status < 600 and status != 501)
    return result.outcome in ("connection_error", "timeout") and (
        result.error_class in TRANSIENT_ERROR_CLASSES
    )
