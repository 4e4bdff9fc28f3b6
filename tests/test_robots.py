"""robots.txt: RFC 9309 matching, rules from each kind of answer, the product token, origins, the cache."""

from __future__ import annotations

import threading

import pytest
from newsdedup import urls
from newsdedup.fetch import Fetcher, FetchPolicy
from newsdedup.outcomes import FetchResult
from newsdedup.robots import (
    MAX_CRAWL_DELAY,
    MAX_ROBOTS_BYTES,
    RobotsCache,
    StoredRobots,
    parsed_rules,
    product_token,
    rules_from_result,
)

from tests.httpfixtures import LocalHTTPServer, gzipped, http_server_fixture, static  # noqa: F401


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
    assert urls.origin(url) == origin


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


# ------------------------------------------------------------------ RFC 9309 matching


def allowed(robots: str, path: str, agent: str = "newsdedup") -> bool:
    """Whether agent may fetch path under the robots.txt text (through RobotsRules, as the fetcher asks)."""
    return parsed_rules("https://n.example", robots, "test", 0.0).allowed("https://n.example" + path, agent)


# RFC 9309, section 5.1 "Simple Example", with the verdicts its text gives for each group.
RFC_5_1 = """User-Agent: *
Disallow: *.gif$
Disallow: /example/
Allow: /publications/

User-Agent: foobot
Disallow:/
Allow:/example/page.html
Allow:/example/allowed.gif

User-Agent: barbot
User-Agent: bazbot
Disallow: /example/page.html

User-Agent: quxbot

EOF
"""


@pytest.mark.parametrize(
    ("agent", "path", "verdict"),
    [
        ("foobot", "/example/page.html", True),
        ("foobot", "/example/allowed.gif", True),
        ("foobot", "/publications/", False),
        ("barbot", "/example/page.html", False),
        ("bazbot", "/example/page.html", False),
        ("bazbot", "/example/other.gif", True),
        ("quxbot", "/example/page.html", True),  # an empty group: no rules
        ("newsdedup", "/publications/a.html", True),
        ("newsdedup", "/example/a.html", False),
        ("newsdedup", "/images/logo.gif", False),  # `*` and the `$` anchor
        ("newsdedup", "/images/logo.gif?size=2", True),  # `$`: .gif must end the path
    ],
)
def test_rfc_simple_example(agent: str, path: str, verdict: bool) -> None:
    assert allowed(RFC_5_1, path, agent) is verdict


def test_rfc_longest_match_wins() -> None:
    # RFC 9309, section 5.2: the longer, more specific rule decides whatever the order of the lines.
    robots = "User-Agent: foobot\nAllow: /example/page/\nDisallow: /example/page/disallowed.gif\n"
    assert not allowed(robots, "/example/page/disallowed.gif", "foobot")
    assert allowed(robots, "/example/page/other.gif", "foobot")
    news = "User-agent: *\nDisallow: /news/\nAllow: /news/public/\n"
    assert allowed(news, "/news/public/a") and not allowed(news, "/news/private/a")


@pytest.mark.parametrize("order", ["Allow: /page\nDisallow: /page\n", "Disallow: /page\nAllow: /page\n"])
def test_rfc_equivalent_allow_and_disallow_allow_wins(order: str) -> None:
    assert allowed("User-agent: *\n" + order, "/page")


def test_rfc_wildcard_matches_any_sequence() -> None:
    robots = "User-agent: *\nDisallow: /*?print=\nDisallow: /this/*/exactly\n"
    assert not allowed(robots, "/story/1?print=1")
    assert allowed(robots, "/story/1?page=2")
    assert not allowed(robots, "/this/a/b/exactly")
    assert allowed(robots, "/this/exactly")


def test_rfc_dollar_anchors_the_end() -> None:
    robots = "User-agent: *\nDisallow: /this/path/exactly$\n"
    assert not allowed(robots, "/this/path/exactly")
    assert allowed(robots, "/this/path/exactly/more") and allowed(robots, "/this/path/exactly?x=1")


def test_rfc_encoded_special_characters_match_verbatim() -> None:
    # RFC 9309, 2.2.3: `%2A` and `%24` stand for a literal `*` and `$`, not for a wildcard or an anchor.
    robots = "User-agent: *\nDisallow: /path/file-with-a-%2A.html\nDisallow: /path/foo-%24\n"
    assert not allowed(robots, "/path/file-with-a-*.html") and allowed(robots, "/path/file-with-a-b.html")
    assert not allowed(robots, "/path/foo-$")


@pytest.mark.parametrize(
    ("rule", "path"),
    [
        # RFC 9309, 2.2.2: a path and its percent-encoded form are the same path.
        ("/foo/bar?baz=https://foo.bar", "/foo/bar?baz=https%3A%2F%2Ffoo.bar"),
        ("/foo/bar?baz=https%3A%2F%2Ffoo.bar", "/foo/bar?baz=https://foo.bar"),
        ("/foo/bar/\u30c4", "/foo/bar/%E3%83%84"),
        ("/foo/bar/%E3%83%84", "/foo/bar/\u30c4"),
        ("/haber/%C5%9Fehir", "/haber/\u015fehir"),
    ],
)
def test_rfc_percent_encoding_is_equivalent(rule: str, path: str) -> None:
    assert not allowed(f"User-agent: *\nDisallow: {rule}\n", path)


def test_rfc_user_agent_groups() -> None:
    # RFC 9309, 2.2.1: case-insensitive product-token match; groups of one agent are merged; else `*`.
    robots = (
        "User-agent: NewsDedup\nDisallow: /foo\n\n"
        "User-agent: otherbot\nDisallow: /\n\n"
        "user-agent: newsdedup\ndisallow: /baz\n\n"
        "User-agent: *\nDisallow: /bar\n"
    )
    assert not allowed(robots, "/foo") and not allowed(robots, "/baz")
    assert allowed(robots, "/bar")  # our own group replaces the `*` group
    assert not allowed(robots, "/bar", "somebot")
    assert allowed("User-agent: otherbot\nDisallow: /\n", "/x")  # no group for us, no `*`: no rules


def test_a_group_applies_only_to_its_whole_product_token() -> None:
    # RFC 9309, 2.2.1: "news" is another crawler's token, not a prefix of ours (Protego alone takes it).
    robots = "User-agent: news\nDisallow: /\nCrawl-delay: 30\n\nUser-agent: *\nDisallow: /private/\n"
    assert allowed(robots, "/a") and not allowed(robots, "/private/a")
    assert not allowed(robots, "/a", "news")
    rules = parsed_rules("https://n.example", robots, "test", 0.0)
    assert rules.delay_for("newsdedup") is None and rules.delay_for("News") == 30


def test_rfc_product_token_of_a_full_user_agent() -> None:
    robots = "User-agent: newsdedup\nDisallow: /private/\n\nUser-agent: *\nDisallow: /\n"
    cache = RobotsCache(FakeFetch({URL: result(body=robots.encode())}), "newsdedup/1.2 (+https://x.example/bot)")
    assert cache.agent == "newsdedup"
    assert cache.allowed("https://n.example/news/1") and not cache.allowed("https://n.example/private/1")


def test_rfc_robots_txt_itself_is_always_allowed() -> None:
    assert allowed("User-agent: *\nDisallow: /\n", "/robots.txt")


def test_sitemap_lines_keep_their_urls() -> None:
    robots = "Sitemap: https://n.example/a%2Fb.xml\nUser-agent: *\nDisallow: /x\n"
    assert list(parsed_rules("https://n.example", robots, "test", 0.0).parser.sitemaps) == [
        "https://n.example/a%2Fb.xml"
    ]


# ------------------------------------------------------------------ the 500 KiB parsing limit


def big_robots(tail_rule: str) -> bytes:
    """A robots.txt over the limit: an early rule, comment padding, then a rule past 500 KiB."""
    head = b"User-agent: *\nDisallow: /early/\n"
    padding = b"# " + b"x" * 97 + b"\n"
    body = head + padding * (MAX_ROBOTS_BYTES // len(padding) + 1)
    return body + tail_rule.encode() + b"\n"


def test_only_the_first_500_kib_are_parsed() -> None:
    body = big_robots("Disallow: /late/")
    assert len(body) > MAX_ROBOTS_BYTES == 500 * 1024
    rules = rules_from_result("https://n.example", result(body=body), now=0.0)
    assert rules.verdict == "parsed" and "only the first 500 KiB parsed" in rules.reason
    assert not rules.allowed("https://n.example/early/1", "newsdedup")
    assert rules.allowed("https://n.example/late/1", "newsdedup")


def test_a_line_cut_at_the_limit_is_dropped() -> None:
    head, kept = b"User-agent: *\nDisallow: /news/\n", b"Allow: /news/p"
    fill = b"#" * (MAX_ROBOTS_BYTES - len(head) - len(kept) - 1) + b"\n"
    body = head + fill + kept + b"rivate-area/\n"
    assert len(head + fill + kept) == MAX_ROBOTS_BYTES
    rules = rules_from_result("https://n.example", result(body=body), now=0.0)
    # Read as cut, the last line would say "Allow: /news/p" and open /news/politics.
    assert not rules.allowed("https://n.example/news/politics", "newsdedup")


def robots_fetcher() -> Fetcher:
    return Fetcher(FetchPolicy(allow_networks=("127.0.0.0/8",), min_host_delay=0.0, retries=0))


@pytest.mark.parametrize("encoded", [False, True])
def test_fetcher_parses_a_huge_robots_txt_instead_of_giving_up(http_server: LocalHTTPServer, encoded: bool) -> None:
    body = big_robots("Disallow: /late/") + b"#" * (300 * 1024)
    handler = gzipped(body, "text/plain") if encoded else static(body, content_type="text/plain")
    http_server.route("/robots.txt", handler)
    http_server.route("/late/1", static("<p>late</p>"))
    with robots_fetcher() as fetcher:
        assert fetcher.get(http_server.url("/late/1")).ok
        blocked = fetcher.get(http_server.url("/early/1"))
        rules = fetcher.robots.rules_for(http_server.url("/"))
    assert blocked.outcome == "robots_disallowed"
    assert "only the first 500 KiB parsed" in rules.reason


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


@pytest.mark.parametrize("status", [401, 403, 404, 410])
def test_a_robots_txt_answered_4xx_is_logged_ok_not_as_a_failure(status: int) -> None:
    """RFC 9309: 4xx means no rules; crawl_log keeps the request as `ok` with its status, never as a failed one."""
    cache, _fetch = cache_with(DictStore(), {URL: result("http_error", status, error_class="HTTPError")}, [10_000.0])
    rules, fetched = cache.rules_and_fetch("https://n.example/x")
    assert rules.verdict == "allow_all"
    assert fetched is not None
    assert (fetched.outcome, fetched.status, fetched.error_class, fetched.error_message) == ("ok", status, None, None)


@pytest.mark.parametrize(
    "answer",
    [
        result("http_error", 500, error_class="HTTPError"),
        result("http_error", 429, error_class="HTTPError"),
        result("connection_error", None, error_class="ConnectionError"),
    ],
)
def test_a_robots_txt_answered_5xx_or_not_at_all_stays_a_failure(answer: FetchResult) -> None:
    cache, _fetch = cache_with(DictStore(), {URL: answer}, [10_000.0])
    rules, fetched = cache.rules_and_fetch("https://n.example/x")
    assert rules.verdict == "disallow_all"
    assert fetched is not None and fetched.outcome == answer.outcome and fetched.error_class == answer.error_class


def test_fetcher_reports_a_missing_robots_txt_as_ok(http_server: LocalHTTPServer) -> None:
    http_server.route("/news/1", static("<p>news</p>"))  # no /robots.txt route: the server answers 404
    with robots_fetcher() as fetcher:
        page = fetcher.get(http_server.url("/news/1"))
    assert page.ok and [(r.outcome, r.status) for r in page.robots] == [("ok", 404)]
