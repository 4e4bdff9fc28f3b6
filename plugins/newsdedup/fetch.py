"""Polite HTTP fetcher, the only way the pipeline talks to the web: the crawl policy over the guarded transport.

Per request: URL check, origin health, address guard, robots.txt, per-host pacing, then one GET
through newsdedup.transport; redirects are followed by hand (each hop checked again), transient
failures retried (newsdedup.outcomes.worth_retry), conditional GET validators kept on a 304.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit, urlunsplit

from tenacity import RetryCallState, Retrying, stop_after_attempt, wait_exponential, wait_random

from newsdedup import settings, urls
from newsdedup.netguard import AddressRefused, check_url, parse_networks, to_ascii_host
from newsdedup.outcomes import FetchResult, Outcome, failed, worth_retry
from newsdedup.politeness import HostHealth, HostThrottle, connection_slots
from newsdedup.robots import RobotsCache, RobotsStore
from newsdedup.textsafe import one_line
from newsdedup.transport import Deadline, Request, Transport

logger = logging.getLogger(__name__)

MAX_RETRY_AFTER = 10.0  # longer waits are the scheduler's job, not a blocked worker's
MAX_HOST_BACKOFF = 3600.0  # a longer Retry-After leaves the host alone this long at most
MAX_URL_LENGTH = 16 * 1024


@dataclass
class FetchPolicy:
    """Limits, politeness and safety settings for a Fetcher (defaults: newsdedup.settings)."""

    user_agent: str = settings.setting("user_agent")
    connect_timeout: float = 5.0
    read_timeout: float = 15.0
    total_timeout: float = settings.setting("fetch_timeout")
    max_bytes: int = settings.setting("max_page_bytes")
    max_decompressed_bytes: int = 2 * settings.DEFAULTS.max_page_bytes
    max_redirects: int = 5
    min_host_delay: float = settings.setting("min_host_delay")
    respect_robots: bool = True
    robots_ttl: float = settings.setting("robots_ttl")
    allow_networks: tuple[str, ...] = settings.setting("allow_networks")
    retries: int = settings.setting("retries")
    retry_backoff: float = 0.5  # first back-off in seconds; doubles per retry, plus jitter
    max_connections: int = settings.setting("max_connections")  # in flight in this process, all Fetchers
    max_host_failures: int = settings.setting("host_max_failures")  # timeouts/connection errors in a row
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
        return settings.configured(
            cls,
            env,
            # One knob for operators: no phase of a request may outlast the whole request.
            connect_timeout=min(cls.connect_timeout, env.fetch_timeout),
            read_timeout=min(cls.read_timeout, env.fetch_timeout),
            max_decompressed_bytes=2 * env.max_page_bytes,
        )


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


@dataclass
class _Call:
    """Options of one get() that every hop and attempt of it shares."""

    request: Request
    host_delay: float | None = None
    robots: list[FetchResult] = field(default_factory=list)


class _Retries:
    """Tenacity's callbacks for one fetch, with the state they share: attempts made, Retry-After honoured."""

    def __init__(self, url: str, backoff: Callable[[RetryCallState], float]) -> None:
        self.url = url
        self.attempts = 0
        self.honoured_retry_after = False
        self._backoff = backoff

    def should_retry(self, state: RetryCallState) -> bool:
        """One Retry-After within MAX_RETRY_AFTER is waited for; otherwise the retry rule decides."""
        result: FetchResult = state.outcome.result()  # type: ignore[union-attr]
        if result.retry_after is not None:
            return not self.honoured_retry_after and result.retry_after <= MAX_RETRY_AFTER
        return worth_retry(result)

    def wait(self, state: RetryCallState) -> float:
        """Seconds before the next attempt: the server's Retry-After, else exponential back-off with jitter."""
        result: FetchResult = state.outcome.result()  # type: ignore[union-attr]
        if result.retry_after is not None:
            self.honoured_retry_after = True
            return result.retry_after
        return self._backoff(state)

    def log(self, state: RetryCallState) -> None:
        """Log the retry about to happen."""
        result: FetchResult = state.outcome.result()  # type: ignore[union-attr]
        logger.info(
            "retrying %s after %s (%s), attempt %d",
            one_line(self.url),
            result.outcome,
            result.status or result.error_class,
            state.attempt_number + 1,
        )


class Fetcher:
    """Fetch URLs safely (address guard, size/time caps), politely (robots, delays), never raising.

    One Fetcher is shared by threads. Requests to one host are spaced by the per-host delay
    (HostThrottle: a lock per host, so different hosts never wait on each other); requests in
    flight across the whole process are capped by a semaphore (`max_connections`).
    """

    def __init__(self, policy: FetchPolicy | None = None, robots_store: RobotsStore | None = None) -> None:
        self.policy = policy or FetchPolicy()
        self.transport = Transport(self.policy)
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
        self.transport.close()

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
            message = "not sent: the source's time budget for this run is used up"
            return failed(str(url), str(url), Outcome.DEFERRED, "OutOfTime", message)
        headers = _validators(etag, last_modified)
        if accept:
            headers["Accept"] = accept
        request = Request(
            headers, accept_types=frozenset(accept_types) if accept_types is not None else None, gunzip=gunzip
        )
        call = _Call(request, host_delay=host_delay)
        try:
            result = self._fetch(url, call)
        except Exception as exc:  # get() must not raise: an unexpected bug becomes a result
            logger.exception("unexpected error fetching %r", url)
            message = one_line(f"unexpected error: {exc}")
            result = failed(str(url), str(url), Outcome.CONNECTION_ERROR, type(exc).__name__, message)
        if result.outcome == Outcome.NOT_MODIFIED:
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
        headers = {"Accept": "text/plain,*/*;q=0.5"} | _validators(etag, last_modified)
        result = self._fetch(robots_url, _Call(Request(headers, for_robots=True)))
        result.elapsed_ms = int((time.monotonic() - started) * 1000)
        return result

    def _fetch(self, url: str, call: _Call) -> FetchResult:
        """Validate url, then run attempts with tenacity for transient failures."""
        reason = invalid_url_reason(url)
        if reason is not None:
            return failed(str(url), str(url), Outcome.INVALID_URL, "InvalidURL", reason)
        base = self.policy.retry_backoff
        retries = _Retries(url, wait_exponential(multiplier=base, max=30.0) + wait_random(0, base))

        def attempt() -> FetchResult:
            retries.attempts += 1
            return self._attempt(url.strip(), url, call)

        retrying = Retrying(
            # No retry starts after the deadline (upcoming_sleep: tenacity computes the wait first).
            stop=stop_after_attempt(self.policy.retries + 1) | (lambda s: self.out_of_time(s.upcoming_sleep)),
            wait=retries.wait,
            retry=retries.should_retry,
            before_sleep=retries.log,
            retry_error_callback=lambda state: state.outcome.result(),  # type: ignore[union-attr]
            sleep=self._sleep,
        )
        result: FetchResult = retrying(attempt)
        result.attempts = max(retries.attempts, 1)
        if result.attempts > 1 and result.error_message:
            result.error_message += f" (after {result.attempts} attempts)"
        if result.error_message:
            result.error_message = one_line(result.error_message)  # reason phrases, exception texts: from the web
        self._after(result)
        return result

    def _after(self, result: FetchResult) -> None:
        """Learn from a finished fetch: consecutive failures, and Retry-After beyond what we wait for."""
        if result.outcome == Outcome.DEFERRED:
            return
        # Back-off is per origin (one service on one port); the politeness gap is per host name.
        origin = urls.origin(result.final_url)
        self.health.record(origin, result)
        if result.retry_after is not None:
            if result.retry_after > MAX_RETRY_AFTER:
                self.health.close(
                    origin,
                    min(result.retry_after, MAX_HOST_BACKOFF),
                    f"HTTP {result.status} asked to retry after {result.retry_after:.0f} s",
                )
            else:
                self.throttle.defer(urls.host_key(result.final_url), result.retry_after)

    def _attempt(self, start_url: str, original: str, call: _Call) -> FetchResult:
        """One attempt: follow redirects by hand, re-checking address and robots on every hop."""
        max_redirects = self.policy.max_redirects
        deadline = Deadline(self.policy.total_timeout)
        current = start_url
        visited = {_without_fragment(current)}
        for hop in range(max_redirects + 1):
            refused = self._preflight(original, current, call, deadline)
            if refused is not None:
                return refused
            outcome = self._request(original, current, call, deadline)
            if isinstance(outcome, FetchResult):
                return outcome
            location = outcome
            try:
                next_url = urljoin(current, location)
            except ValueError as exc:  # "http://[broken": urljoin refuses it before any check can
                return _redirect_error(original, current, "InvalidRedirect", f"{exc}: {location!r}")
            problem = invalid_url_reason(next_url)
            if problem is not None:
                return _redirect_error(original, current, "InvalidRedirect", f"{problem}: {location!r}")
            key = _without_fragment(next_url)
            if key in visited:
                return _redirect_error(original, current, "RedirectLoop", f"redirect loop at {next_url}")
            if hop == max_redirects:
                return _redirect_error(original, current, "TooManyRedirects", f"more than {max_redirects} redirects")
            visited.add(key)
            current = next_url
        raise AssertionError("unreachable: the loop always returns")  # pragma: no cover

    def _preflight(self, original: str, url: str, call: _Call, deadline: Deadline) -> FetchResult | None:
        """Origin health, address guard, robots.txt and politeness delay for one hop."""
        host = urls.host_key(url)
        origin = urls.origin(url)
        closed = self.health.closed(origin)
        if closed is not None:
            return failed(original, url, Outcome.DEFERRED, "HostBackoff", f"{origin}: {closed}")
        try:
            check_url(url, self.transport.networks)
        except AddressRefused as exc:
            return failed(original, url, Outcome.ADDRESS_REFUSED, "AddressRefused", str(exc))
        except OSError as exc:
            message = f"cannot resolve {urlsplit(url).hostname}: {exc}"
            return failed(original, url, Outcome.CONNECTION_ERROR, "NameResolutionError", message)
        began = time.monotonic()
        if call.host_delay:
            self.throttle.set_delay(host, call.host_delay)
        if self.policy.respect_robots and not call.request.for_robots:
            rules, fetched = self.robots.rules_and_fetch(url)
            if fetched is not None:
                call.robots.append(fetched)
            if rules.crawl_delay:
                self.throttle.set_delay(host, rules.crawl_delay)
            if not rules.allowed(url, self.robots.agent):
                message = f"robots.txt of {rules.origin} disallows this URL ({rules.reason})"
                return failed(original, url, Outcome.ROBOTS_DISALLOWED, "RobotsDisallowed", message)
        self.throttle.wait(host)
        deadline.extend(time.monotonic() - began)
        return None

    def _request(self, original: str, url: str, call: _Call, deadline: Deadline) -> FetchResult | str:
        """Send one GET (holding a process-wide connection slot); return the redirect Location or a result."""
        queued = time.monotonic()
        with self.slots:
            deadline.extend(time.monotonic() - queued)
            return self.transport.send(original, url, call.request, deadline)


def _validators(etag: str | None, last_modified: str | None) -> dict[str, str]:
    """Conditional GET headers for the validators given."""
    headers: dict[str, str] = {}
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    return headers


def _redirect_error(original: str, url: str, error_class: str, message: str) -> FetchResult:
    """A redirect that is not followed."""
    return failed(original, url, Outcome.REDIRECT_ERROR, error_class, message)
