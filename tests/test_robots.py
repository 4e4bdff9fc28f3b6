"""robots.txt: rules from each kind of answer, the product token, origins, the cache and its expiry."""

from __future__ import annotations

import threading

import pytest
from newsdedup.fetch import FetchResult
from newsdedup.robots import MAX_CRAWL_DELAY, RobotsCache, product_token, robots_origin, rules_from_result


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
        self.lock = threading.Lock()

    def __call__(self, url: str) -> FetchResult:
        with self.lock:
            self.calls.append(url)
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
