"""Address guard: refuse URLs that point into private, local or metadata networks (SSRF)."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable, Sequence
from urllib.parse import urlsplit

import idna

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

ALLOWED_SCHEMES = frozenset({"http", "https"})

# Cloud metadata endpoints (AWS/GCP/Azure/OpenStack IPv4, AWS IPv6, Alibaba).
METADATA_ADDRESSES: frozenset[IPAddress] = frozenset(
    ipaddress.ip_address(a) for a in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200")
)

# Ranges that are not reachable "public web" but that some Python versions do not flag via
# is_private/is_reserved (ipaddress classifications were corrected across 3.11.x/3.12.x).
_EXTRA_BLOCKED: tuple[IPNetwork, ...] = tuple(
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8",
        "100.64.0.0/10",  # carrier-grade NAT
        "192.0.0.0/24",
        "192.0.2.0/24",
        "198.18.0.0/15",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "240.0.0.0/4",
        "64:ff9b:1::/48",
        "100::/64",
        "2001::/23",
        "2001:db8::/32",
        "fc00::/7",
        "fec0::/10",
    )
)


class AddressRefused(ValueError):
    """The URL or address is outside what the fetcher may contact."""


def parse_networks(specs: Iterable[str]) -> tuple[IPNetwork, ...]:
    """Parse CIDR strings (a bare address means a single host), naming any bad entry."""
    networks: list[IPNetwork] = []
    for raw in specs:
        spec = raw.strip() if isinstance(raw, str) else raw
        if not isinstance(spec, str) or not spec:
            raise ValueError(f"invalid network in allow list: {raw!r} (expected a CIDR string)")
        try:
            networks.append(ipaddress.ip_network(spec, strict=False))
        except ValueError as exc:
            raise ValueError(f"invalid network in allow list: {raw!r} ({exc})") from None
    return tuple(networks)


def _coerce_networks(allow_networks: Iterable[str | IPNetwork]) -> tuple[IPNetwork, ...]:
    """Accept already-parsed networks or CIDR strings."""
    items = tuple(allow_networks)
    if all(isinstance(n, ipaddress.IPv4Network | ipaddress.IPv6Network) for n in items):
        return items  # type: ignore[return-value]
    return parse_networks(str(n) for n in items)


_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """Return the IPv4 address carried by a mapped, 6to4 or NAT64 IPv6 address."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def refusal_reason(ip: IPAddress) -> str | None:
    """Say why an address is not public (None when it is an ordinary public address)."""
    if isinstance(ip, ipaddress.IPv6Address):
        ip = ipaddress.IPv6Address(int(ip))  # drop any zone id
        inner = _embedded_ipv4(ip)
        if inner is not None:
            reason = refusal_reason(inner)
            return f"embeds {inner}: {reason}" if reason else None
    if ip in METADATA_ADDRESSES:
        return "cloud metadata address"
    checks = (
        ("unspecified", ip.is_unspecified),
        ("loopback", ip.is_loopback),
        ("link-local", ip.is_link_local),
        ("multicast", ip.is_multicast),
        ("private", ip.is_private),
        ("reserved", ip.is_reserved),
    )
    for name, flagged in checks:
        if flagged:
            return f"{name} address"
    if any(ip.version == net.version and ip in net for net in _EXTRA_BLOCKED):
        return "special-purpose address"
    if not ip.is_global:
        return "non-global address"
    return None


def _is_allowed(ip: IPAddress, networks: Sequence[IPNetwork]) -> bool:
    """True when an allow-list entry covers the address (metadata needs an exact host entry)."""
    bare = ipaddress.IPv6Address(int(ip)) if isinstance(ip, ipaddress.IPv6Address) else ip
    for net in networks:
        if bare.version != net.version or bare not in net:
            continue
        # A broad entry such as 169.254.0.0/16 must not silently expose credentials endpoints.
        if bare in METADATA_ADDRESSES and net.num_addresses != 1:
            continue
        return True
    return False


def check_ip(ip: str | IPAddress, allow_networks: Iterable[str | IPNetwork] = ()) -> None:
    """Raise AddressRefused unless the address is public or inside an allowed network."""
    addr = ipaddress.ip_address(ip) if isinstance(ip, str) else ip
    reason = refusal_reason(addr)
    if reason is None or _is_allowed(addr, _coerce_networks(allow_networks)):
        return
    raise AddressRefused(f"refusing {addr}: {reason}")


def literal_ip(host: str) -> IPAddress | None:
    """Return the address if host is an IP literal (brackets allowed), else None."""
    candidate = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        return ipaddress.ip_address(candidate)
    except ValueError:
        return None


def resolve_checked(
    host: str,
    port: int,
    allow_networks: Iterable[str | IPNetwork] = (),
) -> list[tuple[int, int, int, tuple]]:
    """Resolve host and check every address; return (family, type, proto, sockaddr) tuples.

    Raises AddressRefused if any address is refused and socket.gaierror if resolution fails.
    """
    networks = _coerce_networks(allow_networks)
    ip = literal_ip(host)
    if ip is not None:
        check_ip(ip, networks)
        family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
        sockaddr: tuple = (str(ip), port) if ip.version == 4 else (str(ip), port, 0, 0)
        if ip.version == 6 and ip.scope_id:
            # Let the resolver turn the zone id into a numeric scope; no DNS is involved.
            infos = socket.getaddrinfo(str(ip), port, family, socket.SOCK_STREAM)
            return [(f, t, p, sa) for f, t, p, _c, sa in infos]
        return [(family, socket.SOCK_STREAM, socket.IPPROTO_TCP, sockaddr)]
    infos = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)
    if not infos:
        raise AddressRefused(f"refusing {host}: resolved to no addresses")
    # Every address is checked: a name with one public and one private record is refused,
    # otherwise the connection could land on whichever record the OS prefers.
    for *_rest, sockaddr in infos:
        try:
            check_ip(str(sockaddr[0]), networks)
        except AddressRefused as exc:
            raise AddressRefused(f"refusing {host}: {exc}") from None
    return [(f, t, p, sa) for f, t, p, _c, sa in infos]


def to_ascii_host(host: str) -> str:
    """Encode a host name the way requests does (IDNA 2008/UTS 46), raising ValueError."""
    if host.isascii():
        return host.lower()
    try:
        return idna.encode(host, uts46=True).decode("ascii")
    except idna.IDNAError as exc:
        raise ValueError(f"invalid host name {host!r}: {exc}") from None


def check_url(url: str, allow_networks: Iterable[str | IPNetwork] = ()) -> None:
    """Raise AddressRefused for non-http(s) URLs, embedded credentials or non-public hosts.

    DNS failures propagate as socket.gaierror (an OSError), not as a refusal.
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise AddressRefused(f"refusing {url!r}: unparseable URL ({exc})") from None
    scheme = parts.scheme.lower()
    if scheme not in ALLOWED_SCHEMES:
        raise AddressRefused(f"refusing {url!r}: scheme {scheme or '(none)'!r} is not http(s)")
    if parts.username is not None or parts.password is not None:
        raise AddressRefused(f"refusing {url!r}: credentials in URL")
    host = parts.hostname
    if not host:
        raise AddressRefused(f"refusing {url!r}: no host")
    if port is None:
        port = 443 if scheme == "https" else 80
    if literal_ip(host) is None:
        try:
            host = to_ascii_host(host)
        except ValueError:
            raise AddressRefused(f"refusing {url!r}: invalid host name") from None
    resolve_checked(host, port, allow_networks)
