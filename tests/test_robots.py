"""robots.txt: rules from each kind of answer, the product token, origins, the cache and its expiry."""

from __future__ import annotations

import threading

import pytest
from newsdedup.fetch import FetchResult
from newsdedup.robots import (
    MAX_CRAWL_DELAY,
    RobotsCache,
    StoredRobots,
    product_token,
    robots_origin,
    rules_from_result,
)


def result(
    outcome: str = "ok", status: int | None = 200, body: bytes = b"", error_class: str | None = None
) -> FetchResult:
    return FetchResult(
        url="https://n.example/robots.txt",
        final_url="https://n.example/robots.txt",
        outcome=outcome,
        status=status,
        body=body,
        error_class=error_class,
    )


ROBOTS = b"""User-agent: newsdedup
Disallow: /private/
Crawl-delay: 2

User-agent: *
Disallow: /
"""


@pytest.mark.parametrize(
    ("url", "origin"),
    [
        ("https://N.example/a/b?c", "https://n.example"),
        ("https://n.example:443/a", "https://n.example"),
        ("http://n.example:8080/a", "http://n.example:8080"),
        ("http://[::1]:8080/a", "http://[::1]:8080"),
    ],
)
def test_robots_origin(url: str, origin: str) -> None:
    assert robots_origin(url) == origin


def test_product_token() -> None:
    assert product_token("newsdedup/0.1 (+https://x.example)") == "newsdedup"
    assert product_token("Mozilla/5.0 compatible") == "Mozilla"
    assert product_token("  ") == "*"


def test_parsed_rules_use_our_group() -> None:
    rules = rules_from_result("https://n.example", result(body=ROBOTS), now=0.0)
    assert rules.verdict == "parsed"
    assert rules.allowed("https://n.example/news/1", "newsdedup")
    assert not rules.allowed("https://n.example/private/x", "newsdedup")
    assert not rules.allowed("https://n.example/news/1", "otherbot")


@pytest.mark.parametrize("status", [401, 403, 404, 410])
def test_client_errors_mean_no_rules(status: int) -> None:
    rules = rules_from_result("https://n.example", result("http_error", status), now=0.0)
    assert rules.verdict == "allow_all" and rules.allowed("https://n.example/anything", "newsdedup")


@pytest.mark.parametrize(
    ("fetched", "reason"),
    [
        (result("http_error", 500), "robots.txt unavailable (HTTP 500)"),
        (result("http_error", 429), "robots.txt unavailable (HTTP 429)"),
        (result("timeout", None, error_class="TotalTimeout"), "robots.txt unavailable (TotalTimeout)"),
        (result("connection_error", None, error_class="ConnectionError"), "robots.txt unavailable (ConnectionError)"),
    ],
)
def test_unavailable_robots_means_stay_away(fetched: FetchResult, reason: str) -> None:
    rules = rules_from_result("https://n.example", fetched, now=0.0)
    assert rules.verdict == "disallow_all" and rules.reason == reason
    assert not rules.allowed("https://n.example/", "newsdedup")


def test_redirect_trouble_is_like_404() -> None:
    rules = rules_from_result("https://n.example", result("redirect_error", None, error_class="RedirectLoop"), now=0.0)
    assert rules.verdict == "allow_all"


def test_garbage_and_bom_are_tolerated() -> None:
    body = "\ufeffUser-agent: *\nDisallow: /x\n\x00\xff garbage line\n".encode("utf-8", "surrogatepass")
    rules = rules_from_result("https://n.example", result(body=body), now=0.0)
    assert not rules.allowed("https://n.example/x", "newsdedup") and rules.allowed("https://n.example/y", "newsdedup")


class FakeFetch:
    """Counts robots.txt fetches and answers from a table."""

    def __init__(self, answers: dict[str, FetchResult]) -> None:
        self.answers = answers
        self.calls: list[str] = []
        self.validators: list[tuple[str | None, str | None]] = []
        self.lock = threading.Lock()

    def __call__(self, url: str, etag: str | None = None, last_modified: str | None = None) -> FetchResult:
        with self.lock:
            self.calls.append(url)
            self.validators.append((etag, last_modified))
        return self.answers[url]


def test_cache_fetches_once_per_origin_and_expires() -> None:
    now = [1000.0]
    fetch = FakeFetch({"https://n.example/robots.txt": result(body=ROBOTS)})
    cache = RobotsCache(fetch, "newsdedup/0.1 (+https://x.example)", ttl=60, clock=lambda: now[0])
    rules, fetched = cache.rules_and_fetch("https://n.example/a")
    assert fetched is not None and fetched.status == 200 and rules.crawl_delay == 2.0
    assert cache.rules_and_fetch("https://n.example/b") == (rules, None)
    assert cache.allowed("https://n.example/c") and not cache.allowed("https://n.example/private/1")
    assert fetch.calls == ["https://n.example/robots.txt"]
    now[0] += 61
    assert cache.rules_and_fetch("https://n.example/a")[1] is not None
    assert len(fetch.calls) == 2
    cache.clear()
    cache.crawl_delay("https://n.example/a")
    assert len(fetch.calls) == 3


def test_concurrent_lookups_fetch_once() -> None:
    fetch = FakeFetch({"https://n.example/robots.txt": result(body=ROBOTS)})
    cache = RobotsCache(fetch, "newsdedup/0.1")
    fetched: list[FetchResult | None] = []
    threads = [
        threading.Thread(target=lambda: fetched.append(cache.rules_and_fetch("https://n.example/x")[1]))
        for _ in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(fetch.calls) == 1 and sum(f is not None for f in fetched) == 1


def test_hostile_crawl_delay_is_capped() -> None:
    body = b"User-agent: *\nCrawl-delay: 86400\n"
    cache = RobotsCache(FakeFetch({"https://n.example/robots.txt": result(body=body)}), "newsdedup/0.1")
    assert cache.crawl_delay("https://n.example/") == MAX_CRAWL_DELAY


# ------------------------------------------------------------------ the shared copy (RobotsStore)


class DictStore:
    """An in-memory RobotsStore."""

    def __init__(self) -> None:
        self.copies: dict[str, StoredRobots] = {}
        self.saves = 0

    def load(self, origin: str) -> StoredRobots | None:
        copy = self.copies.get(origin)
        return StoredRobots(**vars(copy)) if copy else None

    def save(self, robots: StoredRobots) -> None:
        self.saves += 1
        self.copies[robots.origin] = StoredRobots(**vars(robots))


class BrokenStore:
    def load(self, origin: str) -> StoredRobots | None:
        raise RuntimeError("database is down")

    def save(self, robots: StoredRobots) -> None:
        raise RuntimeError("database is down")


ORIGIN = "https://n.example"
URL = "https://n.example/robots.txt"


def cache_with(store: object, answers: dict[str, FetchResult], wall: list[float]) -> tuple[RobotsCache, FakeFetch]:
    fetch = FakeFetch(answers)
    return RobotsCache(fetch, "newsdedup/0.1", ttl=3600, store=store, wall=lambda: wall[0]), fetch  # type: ignore[arg-type]


def stored_copy(fetched_at: float, body: str = "User-agent: *\nDisallow: /private/\n") -> StoredRobots:
    return StoredRobots(ORIGIN, "parsed", "HTTP 200", body, '"v1"', None, fetched_at)


def test_fresh_shared_copy_is_used_without_a_request() -> None:
    store, wall = DictStore(), [10_000.0]
    store.copies[ORIGIN] = stored_copy(fetched_at=9_000.0)
    cache, fetch = cache_with(store, {}, wall)
    rules, fetched = cache.rules_and_fetch("https://n.example/private/a")
    assert fetched is None and fetch.calls == []
    assert not rules.allowed("https://n.example/private/a", "newsdedup") and "shared copy" in rules.reason


def test_stale_shared_copy_is_revalidated_conditionally() -> None:
    store, wall = DictStore(), [10_000.0]
    store.copies[ORIGIN] = stored_copy(fetched_at=1_000.0)
    cache, fetch = cache_with(store, {URL: result("not_modified", 304)}, wall)
    rules, fetched = cache.rules_and_fetch("https://n.example/private/a")
    assert fetched is not None and fetched.outcome == "not_modified"
    assert fetch.validators == [('"v1"', None)]
    assert not rules.allowed("https://n.example/private/a", "newsdedup") and rules.reason == "HTTP 304, unchanged"
    assert store.copies[ORIGIN].fetched_at == 10_000.0


def test_changed_robots_replaces_the_shared_copy() -> None:
    store, wall = DictStore(), [10_000.0]
    store.copies[ORIGIN] = stored_copy(fetched_at=1_000.0)
    new = result(body=b"User-agent: *\nDisallow: /\n")
    new.etag = '"v2"'
    cache, _fetch = cache_with(store, {URL: new}, wall)
    assert not cache.allowed("https://n.example/news")
    assert (store.copies[ORIGIN].etag, store.copies[ORIGIN].body) == ('"v2"', "User-agent: *\nDisallow: /\n")


def test_unreachable_robots_falls_back_to_a_recent_copy_and_is_never_shared() -> None:
    store, wall = DictStore(), [10_000.0]
    store.copies[ORIGIN] = stored_copy(fetched_at=10_000.0 - 7200)
    cache, _fetch = cache_with(store, {URL: result("http_error", 503)}, wall)
    rules = cache.rules_for("https://n.example/news")
    assert rules.allowed("https://n.example/news", "newsdedup")
    assert rules.reason == "robots.txt unavailable (HTTP 503); using the copy from 120 min ago"
    assert store.saves == 0


def test_unreachable_robots_with_a_day_old_copy_means_stay_away() -> None:
    store, wall = DictStore(), [100_000.0]
    store.copies[ORIGIN] = stored_copy(fetched_at=100_000.0 - 25 * 3600)
    cache, _fetch = cache_with(store, {URL: result("timeout", None, error_class="TotalTimeout")}, wall)
    rules = cache.rules_for("https://n.example/news")
    assert rules.verdict == "disallow_all" and store.saves == 0


def test_missing_robots_is_shared_as_allow_all() -> None:
    store, wall = DictStore(), [10_000.0]
    cache, _fetch = cache_with(store, {URL: result("http_error", 404)}, wall)
    assert cache.allowed("https://n.example/x")
    assert store.copies[ORIGIN].verdict == "allow_all" and store.copies[ORIGIN].body is None
    other, fetch = cache_with(store, {}, wall)
    assert other.allowed("https://n.example/y") and fetch.calls == []


def test_a_failing_store_only_costs_a_fetch() -> None:
    cache, fetch = cache_with(BrokenStore(), {URL: result(body=ROBOTS)}, [10_000.0])
    assert cache.allowed("https://n.example/news") and not cache.allowed("https://n.example/private/x")
    assert fetch.calls == [URL]


@pytest.mark.integration
def test_robots_table_round_trip(db_url: str) -> None:
    from newsdedup.store import RobotsTable

    table = RobotsTable(db_url)
    assert table.load(ORIGIN) is None
    table.save(stored_copy(fetched_at=1_700_000_000.25))
    assert table.load(ORIGIN) == stored_copy(fetched_at=1_700_000_000.25)
    table.save(StoredRobots(ORIGIN, "allow_all", "robots.txt HTTP 404: no rules", None, None, None, 1_700_000_100.0))
    copy = table.load(ORIGIN)
    assert copy is not None and (copy.verdict, copy.body, copy.fetched_at) == ("allow_all", None, 1_700_000_100.0)
