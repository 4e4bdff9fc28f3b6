"""robots.txt cache: one parsed file per origin (scheme://host:port), fetched through the guarded client.

Two levels: rules in memory for this process, and optionally a shared store (the `robots_txt` table)
so that every process of a deployment (each Airflow task is one) reuses one copy until it expires and
then asks again with a conditional GET. Only files that were read (or found missing) are shared; an
unreachable robots.txt means "stay away" in this process only, and a shared copy younger than a day
is used instead when there is one (RFC 9309, section 2.4).
"""

from __future__ import annotations

import dataclasses
import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

# Protego (Scrapy's parser) matches as RFC 9309 says (wildcards, `$`, longest match, Allow wins
# ties) and parses text we fetched ourselves, so the download goes through our address guard.
from protego import Protego

from newsdedup import urls
from newsdedup.outcomes import FetchResult, Outcome

logger = logging.getLogger(__name__)

MAX_ROBOTS_BYTES = 500 * 1024  # parsed; the rest is ignored (RFC 9309, 2.5: at least 500 KiB)
MAX_CRAWL_DELAY = 60.0  # a hostile Crawl-delay must not park a worker for hours
MAX_STALE = 24 * 3600.0  # an unreachable robots.txt may be replaced by a copy this old (RFC 9309)


@dataclass
class RobotsRules:
    """Parsed robots.txt for one origin plus how it was obtained."""

    origin: str
    verdict: str  # 'parsed' | 'allow_all' | 'disallow_all'
    reason: str
    fetched_at: float
    crawl_delay: float | None = None
    parser: Protego = field(default_factory=lambda: Protego.parse(""), repr=False)

    def allowed(self, url: str, agent: str) -> bool:
        """True when agent may fetch url under these rules."""
        if self.verdict == "allow_all":
            return True
        if self.verdict == "disallow_all":
            return False
        return self.parser.can_fetch(_slashes(url), _group_key(agent))

    def delay_for(self, agent: str) -> float | None:
        """The Crawl-delay the group of agent asks for, if any."""
        return self.parser.crawl_delay(_group_key(agent)) if self.verdict == "parsed" else None

    def sitemaps(self) -> list[str]:
        """The Sitemap URLs this robots.txt names (RFC 9309, 2.3.5), as written."""
        return list(self.parser.sitemaps) if self.verdict == "parsed" else []


@dataclass
class StoredRobots:
    """A robots.txt copy as shared between processes."""

    origin: str
    verdict: str  # 'parsed' | 'allow_all'
    reason: str
    body: str | None
    etag: str | None
    last_modified: str | None
    fetched_at: float  # wall-clock seconds (time.time())


class RobotsStore(Protocol):
    """Where robots.txt copies are shared (newsdedup.store.RobotsTable keeps them in PostgreSQL)."""

    def load(self, origin: str) -> StoredRobots | None:
        """Return the stored copy for origin, if any."""

    def save(self, robots: StoredRobots) -> None:
        """Store (replace) the copy for robots.origin."""


def product_token(user_agent: str) -> str:
    """Return the robots.txt product token of a User-Agent ('newsdedup/0.1 (...)' -> 'newsdedup')."""
    token = user_agent.strip().split("/", 1)[0].split(" ", 1)[0]
    return token or "*"


def rules_from_result(origin: str, result: FetchResult, now: float) -> RobotsRules:
    """Turn a robots.txt fetch result into rules, following Google's documented error handling."""
    text = _text_of(result)
    if text is not None:
        reason = f"HTTP {result.status}"
        if len(result.body or b"") > MAX_ROBOTS_BYTES:
            reason += f", only the first {MAX_ROBOTS_BYTES // 1024} KiB parsed"
        return parsed_rules(origin, text, reason, now)
    status = result.status
    if _no_file(result):
        return RobotsRules(origin, "allow_all", f"robots.txt HTTP {status}: no rules", now)
    if result.outcome == Outcome.REDIRECT_ERROR:
        # Google treats a robots.txt it cannot reach within its redirect limit like a 404.
        return RobotsRules(origin, "allow_all", f"robots.txt {result.error_class}", now)
    detail = f"HTTP {status}" if status is not None else (result.error_class or result.outcome)
    return RobotsRules(origin, "disallow_all", f"robots.txt unavailable ({detail})", now)


def _no_file(result: FetchResult) -> bool:
    """True for a robots.txt answered 4xx (but 429): no rules, everything allowed (RFC 9309, 2.3.1.3)."""
    status = result.status
    return result.outcome == Outcome.HTTP_ERROR and status is not None and 400 <= status < 500 and status != 429


def as_logged(result: FetchResult) -> FetchResult:
    """A robots.txt fetch as crawl_log keeps it: a 4xx answer told us the rules (none) and is not a failure."""
    if _no_file(result):
        return dataclasses.replace(result, outcome=Outcome.OK, error_class=None, error_message=None)
    return result


def parsed_rules(origin: str, text: str, reason: str, now: float) -> RobotsRules:
    """Rules from the text of a robots.txt file."""
    lines = [_group_line(line) if _URL_LINE.match(line) is None else line
             for line in text.lstrip("\ufeff").splitlines()]
    return RobotsRules(origin, "parsed", reason, now, parser=Protego.parse("\n".join(lines)))


# RFC 9309 (2.2.2) matches `/foo/bar?baz=https://foo.bar` and `...https%3A%2F%2Ffoo.bar` alike;
# Protego keeps `%2F` apart from `/`, so both rules and URLs are given `/` (but not Sitemap/Host URLs).
_ENCODED_SLASH = re.compile("%2F", re.IGNORECASE)
_URL_LINE = re.compile(r"\s*(site-?maps?|host)\b", re.IGNORECASE)


# RFC 9309 (2.2.1): a group applies to the crawler whose product token equals its user-agent value, case
# aside. Protego also takes a value that only starts the token ("news" for "newsdedup"): every value but
# "*" is closed with a mark, and the token is looked up with the same mark, so only whole tokens meet.
_GROUP_END = "|"
_AGENT_LINE = re.compile(r"(\s*user-agent\s*:\s*)([^#\s]+)(.*)", re.IGNORECASE)


def _group_key(agent: str) -> str:
    """The product token as it is looked up among the marked user-agent values."""
    return f"{agent.strip().lower()}{_GROUP_END}"


def _group_line(line: str) -> str:
    """A robots.txt line with %2F as / and, on a user-agent line, its value closed with the mark."""
    agent = _AGENT_LINE.match(line)
    if agent and agent[2] != "*":
        return f"{agent[1]}{agent[2]}{_GROUP_END}{agent[3]}"
    return _slashes(line)


def _slashes(text: str) -> str:
    """text with every %2F written as /."""
    return _ENCODED_SLASH.sub("/", text)


def _text_of(result: FetchResult) -> str | None:
    """The parsed part of a successful fetch: its first MAX_ROBOTS_BYTES, without a cut last line."""
    if result.outcome != Outcome.OK:
        return None
    body = result.body or b""
    if len(body) > MAX_ROBOTS_BYTES:
        # A cut "Allow: /private/x" would read as "Allow: /": drop the incomplete line.
        body = body[:MAX_ROBOTS_BYTES].rpartition(b"\n")[0]
    return body.decode("utf-8", errors="replace")


class RobotsCache:
    """Thread-safe robots.txt cache with TTL; each origin is fetched at most once at a time."""

    def __init__(
        self,
        fetch: Callable[..., FetchResult],
        user_agent: str,
        ttl: float = 3600.0,
        clock: Callable[[], float] = time.monotonic,
        store: RobotsStore | None = None,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._fetch = fetch  # fetch(url, etag=None, last_modified=None) -> FetchResult
        self.agent = product_token(user_agent)
        self.ttl = ttl
        self.store = store
        self._clock = clock
        self._wall = wall
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
        origin = urls.origin(url)
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
            rules, result = self._refresh(origin)
            if rules.verdict == "parsed":
                delay = rules.delay_for(self.agent)
                if delay is not None:
                    rules.crawl_delay = min(float(delay), MAX_CRAWL_DELAY)
            logger.debug("robots.txt for %s: %s (%s)", origin, rules.verdict, rules.reason)
            with self._lock:
                self._rules[origin] = rules
        return rules, result

    def _refresh(self, origin: str) -> tuple[RobotsRules, FetchResult | None]:
        """Rules from a fresh shared copy, else from a (conditional) fetch, sharing what was learnt."""
        stored = self._load(origin)
        age = self._wall() - stored.fetched_at if stored is not None else None
        if stored is not None and age is not None and 0 <= age < self.ttl:
            return self._from_stored(stored, self._clock() - age, f"{stored.reason}, shared copy"), None
        result = self._fetch(
            f"{origin}/robots.txt",
            etag=stored.etag if stored else None,
            last_modified=stored.last_modified if stored else None,
        )
        now = self._clock()
        if result.outcome == Outcome.NOT_MODIFIED and stored is not None:
            stored.fetched_at = self._wall()
            stored.etag = result.etag or stored.etag
            stored.last_modified = result.last_modified or stored.last_modified
            self._save(stored)
            return self._from_stored(stored, now, "HTTP 304, unchanged"), result
        rules = rules_from_result(origin, result, now)
        if rules.verdict == "disallow_all":
            if stored is not None and age is not None and age < MAX_STALE:
                reason = f"{rules.reason}; using the copy from {age / 60:.0f} min ago"
                return self._from_stored(stored, now, reason), result
            return rules, result
        text = _text_of(result)
        self._save(
            StoredRobots(origin, rules.verdict, rules.reason, text, result.etag, result.last_modified, self._wall())
        )
        return rules, as_logged(result)

    def _from_stored(self, stored: StoredRobots, fetched_at: float, reason: str) -> RobotsRules:
        if stored.verdict == "parsed":
            return parsed_rules(stored.origin, stored.body or "", reason, fetched_at)
        return RobotsRules(stored.origin, "allow_all", reason, fetched_at)

    def _load(self, origin: str) -> StoredRobots | None:
        """The shared copy, or None (also when the store fails: robots.txt is then simply fetched)."""
        if self.store is None:
            return None
        try:
            return self.store.load(origin)
        except Exception:  # the shared copy is an optimisation; never let it stop a crawl
            logger.warning("cannot read shared robots.txt copies; this process keeps its own", exc_info=True)
            self.store = None
            return None

    def _save(self, robots: StoredRobots) -> None:
        """Share a copy; failures only cost a later re-fetch."""
        if self.store is None:
            return
        try:
            self.store.save(robots)
        except Exception:
            logger.warning("cannot share robots.txt copies; this process keeps its own", exc_info=True)
            self.store = None

    def allowed(self, url: str) -> bool:
        """True when our user agent may fetch url."""
        return self.rules_for(url).allowed(url, self.agent)

    def crawl_delay(self, url: str) -> float | None:
        """Crawl-delay (seconds) that robots.txt asks of our user agent on url's origin."""
        return self.rules_for(url).crawl_delay

    def clear(self) -> None:
        """Forget every robots.txt cached in memory."""
        with self._lock:
            self._rules.clear()
