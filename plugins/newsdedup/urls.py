"""URLs: canonical forms with courlan (tracking parameters, fragments, default ports, case), hosts, origins."""

from __future__ import annotations

from urllib.parse import urljoin, urlsplit, urlunsplit

import courlan

from newsdedup.netguard import literal_ip, to_ascii_host


def canonicalize(url: str) -> str | None:
    """Return the canonical form of an http(s) URL, or None when it is not one.

    Lower-cased scheme and host, no default port, no fragment, dot segments resolved, tracking
    parameters (utm_*, fbclid, gclid, ref, ...) removed and the remaining query sorted. courlan's
    strict mode is not used: it drops every parameter outside a short list, so `?story=123`
    pages of one site would collapse into one URL.
    """
    url = (url or "").strip()
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    try:
        normal = courlan.normalize_url(parts._replace(path=_remove_dot_segments(parts.path), fragment=""))
    except ValueError:
        return None
    clean = urlsplit(normal)
    return urlunsplit(clean._replace(path=clean.path or "/", fragment=""))


def absolute_url(base_url: str, link: str) -> str | None:
    """The canonical absolute form of a link found in a document, or None when it is unusable."""
    try:
        return canonicalize(urljoin(base_url, link))
    except ValueError:  # "http://[::1" and the like: a broken link, not a broken page or source
        return None

def url_key(url: str) -> str | None:
    """Identity of an article URL for "already stored?": canonical, without scheme or a leading `www.`.

    `http://www.example.com/a` and `https://example.com/a` are one article.
    """
    canonical = canonicalize(url)
    if canonical is None:
        return None
    parts = urlsplit(canonical)
    host = _ascii(parts.hostname or "").removeprefix("www.")
    return urlunsplit(("", _netloc(host, parts.port), parts.path, parts.query, ""))


def url_variants(url: str) -> list[str]:
    """Canonical spellings of the same article URL: http/https, with and without `www.` (canonical first)."""
    canonical = canonicalize(url)
    if canonical is None:
        return []
    parts = urlsplit(canonical)
    host = (parts.hostname or "").removeprefix("www.")
    hosts = [host] if literal_ip(host) is not None else [host, "www." + host]
    variants = [canonical]
    for scheme in ("https", "http"):
        for name in hosts:
            candidate = urlunsplit((scheme, _netloc(name, parts.port), parts.path, parts.query, ""))
            if candidate not in variants:
                variants.append(candidate)
    return variants


DEFAULT_PORTS = {"http": 80, "https": 443}


def host_key(url: str) -> str:
    """The lower-cased host name of url ('' without one): the unit of per-host politeness."""
    return (urlsplit(url).hostname or "").lower()


def endpoint(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of url, lower-cased, the port defaulted from the scheme; ValueError on a bad port."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    return scheme, host_key(url), parts.port or DEFAULT_PORTS.get(scheme, 80)


def origin(url: str) -> str:
    """scheme://host[:port] of url, without a default port: what one robots.txt governs (RFC 9309)."""
    scheme, host, port = endpoint(url)
    return f"{scheme}://{_netloc(host, None if port == DEFAULT_PORTS.get(scheme, 80) else port)}"


def site(url: str) -> str:
    """host:port of url without a leading `www.`: one site (two ports of one host are two sites)."""
    try:
        _scheme, host, port = endpoint(url)
    except ValueError:
        host, port = host_key(url), 0
    return f"{host.removeprefix('www.')}:{port}"


def _ascii(host: str) -> str:
    """IDNA form of a host name, so that `kıyı.example` and its punycode compare equal."""
    try:
        return to_ascii_host(host)
    except ValueError:
        return host.lower()


def _netloc(host: str, port: int | None) -> str:
    """host[:port], with brackets for IPv6 literals."""
    if ":" in host:
        host = f"[{host}]"
    return f"{host}:{port}" if port else host


def _remove_dot_segments(path: str) -> str:
    """RFC 3986 section 5.2.4: resolve `.` and `..` segments of an absolute path."""
    if "." not in path:
        return path
    out: list[str] = []
    segments = path.split("/")
    for i, segment in enumerate(segments):
        last = i == len(segments) - 1
        if segment == ".":
            if last:
                out.append("")
        elif segment == "..":
            if len(out) > 1:
                out.pop()
            if last:
                out.append("")
        else:
            out.append(segment)
    result = "/".join(out)
    return result if result.startswith("/") or not path.startswith("/") else "/" + result
