"""robots.txt cache: one parsed file per scheme+host, fetched through the guarded client."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

# stdlib parser: no extra dependency, and parse() accepts text we fetched ourselves, so the
# download goes through our address guard instead of RobotFileParser.read()'s bare urllib.
from urllib.robotparser import RobotFileParser

if TYPE_CHECKING:
    from newsdedup.fetch import FetchResult

logger = logging.getLogger(__name__)

MAX_ROBOTS_BYTES = 512 * 1024  # Google reads at most 500 KiB of robots.txt
MAX_CRAWL_DELAY = 60.0  # a hostile Crawl-delay must not park a worker for hours


@dataclass
class RobotsRules:
    """Parsed robots.txt for one origin plus how it was obtained."""

    origin: str
    verdict: str  # 'parsed' | 'allow_all' | 'disallow_all'
    reason: str
    fetched_at: float
    crawl_delay: float | None = None
    parser: RobotFileParser = field(default_factory=RobotFileParser, repr=False)

    def allowed(self, url: str, agent: str) -> bool:
        """True when agent may fetch url under these rules."""
        if self.verdict == "allow_all":
            return True
        if self.verdict == "disallow_all":
            return False
        return self.parser.can_fetch(agent, url)


def robots_origin(url: str) -> str:
    """Return the scheme://host[:port] key that a robots.txt file governs."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    port = parts.port
    default = 443 if scheme == "https" else 80
    return f"{scheme}://{host}" if port in (None, default) else f"{scheme}://{host}:{port}"


def product_token(user_agent: str) -> str:
    """Return the robots.txt product token of a User-Agent ('newsdedup/0.1 (...)' -> 'newsdedup')."""
    token = user_agent.strip().split("/", 1)[0].split(" ", 1)[0]
    return token or "*"


def rules_from_result(origin: str, result: FetchResult, now: float) -> RobotsRules:
    """Turn a robots.txt fetch result into rules, following Google's documented error handling."""
    if result.outcome == "ok":
        body = result.body or b""
        text = body.decode("utf-8", errors="replace").lstrip("\ufeff")
        parser = RobotFileParser()
        parser.parse(text.splitlines())
        return RobotsRules(origin, "parsed", f"HTTP {result.status}", now, parser=parser)
    status = result.status
    if result.outcome == "http_error" and status is not None and 400 <= status < 500 and status != 429:
        return RobotsRules(origin, "allow_all", f"robots.txt HTTP {status}: no rules", now)
    if result.outcome == "redirect_error":
        # Google treats a robots.txt it cannot reach within its redirect limit like a 404.
        return RobotsRules(origin, "allow_all", f"robots.txt {result.error_class}", now)
    detail = f"HTTP {status}" if status is not None else (result.error_class or result.outcome)
    return RobotsRules(origin, "disallow_all", f"robots.txt unavailable ({detail})", now)


class RobotsCache:
    """Thread-safe robots.txt cache with TTL; each origin is fetched at most once at a time."""

    def __init__(
        self,
        fetch: Callable[[str], FetchResult],
        user_agent: str,
        ttl: float = 3600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetch = fetch
        self.agent = product_token(user_agent)
        self.ttl = ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._rules: dict[str, RobotsRules] = {}
        self._origin_locks: dict[str, threading.Lock] = {}

    def _cached(self, origin: str) -> RobotsRules | None:
        """Return fresh cached rules for origin, if any (caller holds self._lock)."""
        rules = self._rules.get(origin)
        if rules is not None and self._clock() - rules.fetched_at < self.ttl:
            return rules
        return None

    def rules_for(self, url: str) -> RobotsRules:
        """Return the rules governing url, fetching robots.txt when missing or stale."""
        return self.rules_and_fetch(url)[0]

    def rules_and_fetch(self, url: str) -> tuple[RobotsRules, FetchResult | None]:
        """Return the rules governing url and the robots.txt fetch this call made (None if cached)."""
        origin = robots_origin(url)
        with self._lock:
            rules = self._cached(origin)
            if rules is not None:
                return rules, None
            origin_lock = self._origin_locks.setdefault(origin, threading.Lock())
        with origin_lock:
            with self._lock:
                rules = self._cached(origin)
            if rules is not None:
                return rules, None
            result = self._fetch(f"{origin}/robots.txt")
            rules = rules_from_result(origin, result, self._clock())
            if rules.verdict == "parsed":
                delay = rules.parser.crawl_delay(self.agent)
                if delay is not None:
                    rules.crawl_delay = min(float(delay), MAX_CRAWL_DELAY)
            logger.debug("robots.txt for %s: %s (%s)", origin, rules.verdict, rules.reason)
            with self._lock:
                self._rules[origin] = rules
        return rules, result

    def allowed(self, url: str) -> bool:
        """True when our user agent may fetch url."""
        return self.rules_for(url).allowed(url, self.agent)

    def crawl_delay(self, url: str) -> float | None:
        """Crawl-delay (seconds) that robots.txt asks of our user agent on url's origin."""
        return self.rules_for(url).crawl_delay

    def clear(self) -> None:
        """Forget every cached robots.txt."""
        with self._lock:
            self._rules.clear()
