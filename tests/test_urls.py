"""URL canonicalisation: tracking parameters, fragments, ports, case, dot segments, www variants."""

import pytest
from newsdedup.urls import canonicalize, host_key, site, url_key, url_variants


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://WWW.Example.com:443/a/b?utm_source=x&b=2&a=1#frag", "https://www.example.com/a/b?a=1&b=2"),
        ("http://example.com:80/x?fbclid=1&gclid=2", "http://example.com/x"),
        ("https://example.com/x?ref=rss&utm_campaign=a&utm_medium=feed", "https://example.com/x"),
        ("http://example.com/a/../b/./c", "http://example.com/b/c"),
        ("http://example.com/../x", "http://example.com/x"),
        ("http://example.com", "http://example.com/"),
        ("HTTPS://example.com/x/", "https://example.com/x/"),
        ("https://example.com:8080/x", "https://example.com:8080/x"),
        ("  https://example.com/x  ", "https://example.com/x"),
        ("https://example.com/haber/ı", "https://example.com/haber/%C4%B1"),
    ],
)
def test_canonicalize(url: str, expected: str) -> None:
    assert canonicalize(url) == expected


def test_site_specific_query_parameters_are_kept() -> None:
    # courlan's strict mode would drop `story`: every article of such a site would become one URL.
    assert canonicalize("https://ex.com/news.php?story=123&utm_source=x") == "https://ex.com/news.php?story=123"
    assert canonicalize("https://ex.com/news.php?story=1") != canonicalize("https://ex.com/news.php?story=2")


@pytest.mark.parametrize(
    "url",
    ["ftp://example.com/x", "javascript:alert(1)", "/relative/path", "", "https://example.com:99999/x", "http:///x"],
)
def test_not_http_urls(url: str) -> None:
    assert canonicalize(url) is None
    assert url_key(url) is None
    assert url_variants(url) == []


def test_www_and_scheme_variants_are_one_article() -> None:
    keys = {
        url_key(u)
        for u in (
            "https://www.example.com/a?utm_source=x",
            "http://example.com/a#top",
            "https://EXAMPLE.com:443/a",
            "http://www.example.com:80/a",
        )
    }
    assert keys == {"//example.com/a"}
    assert url_key("https://example.com/a") != url_key("https://example.org/a")
    assert url_key("https://example.com:8080/a") != url_key("https://example.com/a")


def test_variants_start_with_the_canonical_form() -> None:
    variants = url_variants("https://www.example.com/a?b=1")
    assert variants[0] == "https://www.example.com/a?b=1"
    assert set(variants) == {
        "https://www.example.com/a?b=1",
        "https://example.com/a?b=1",
        "http://example.com/a?b=1",
        "http://www.example.com/a?b=1",
    }
    # No www. spelling for an IP literal.
    assert url_variants("http://127.0.0.1:8000/a") == ["http://127.0.0.1:8000/a", "https://127.0.0.1:8000/a"]


def test_idn_hosts_compare_equal_to_punycode() -> None:
    assert url_key("https://kıyı.example/x") == url_key("https://xn--ky-hpab.example/x")


@pytest.mark.parametrize(
    ("url", "host", "site_key"),
    [
        ("https://WWW.N.example/a", "www.n.example", "n.example:443"),
        ("http://n.example/a", "n.example", "n.example:80"),
        ("http://n.example:8080/a", "n.example", "n.example:8080"),
        ("http://[::1]:8080/a", "::1", "::1:8080"),
        ("http://n.example:bad/a", "n.example", "n.example:0"),
    ],
)
def test_host_and_site(url: str, host: str, site_key: str) -> None:
    assert (host_key(url), site(url)) == (host, site_key)
