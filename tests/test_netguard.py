"""Address guard: what the fetcher may and may not contact."""

from __future__ import annotations

import ipaddress
import socket

import pytest
from newsdedup.fetch import FetchPolicy
from newsdedup.netguard import (
    AddressRefused,
    check_ip,
    check_url,
    parse_networks,
    refusal_reason,
    resolve_checked,
)


@pytest.fixture
def no_dns(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if anything tries to resolve a name."""

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"unexpected DNS lookup: {args}")

    monkeypatch.setattr(socket, "getaddrinfo", forbidden)


def fake_dns(monkeypatch: pytest.MonkeyPatch, table: dict[str, list[str]]) -> None:
    """Answer getaddrinfo from table instead of the network."""

    def getaddrinfo(host: str, port: int, *args: object, **kwargs: object) -> list:
        if host not in table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        out = []
        for addr in table[host]:
            if ":" in addr:
                out.append((socket.AF_INET6, socket.SOCK_STREAM, 6, "", (addr, port, 0, 0)))
            else:
                out.append((socket.AF_INET, socket.SOCK_STREAM, 6, "", (addr, port)))
        return out

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/",
        "http://127.8.9.10:8080/x",
        "http://10.1.2.3/",
        "http://192.168.0.1/",
        "http://172.16.5.4/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/",
        "http://[fd00:ec2::254]/",
        "http://[fe80::1]/",
        "http://224.0.0.1/",
        "http://[ff02::1]/",
        "http://0.0.0.0/",
        "http://[::]/",
        "http://100.64.0.1/",
        "http://[::ffff:127.0.0.1]/",
        "http://[::ffff:10.0.0.1]/",
        "http://[2002:7f00:1::]/",  # 6to4 wrapping 127.0.0.1
        "http://[64:ff9b::a9fe:a9fe]/",  # NAT64 wrapping 169.254.169.254
        "http://255.255.255.255/",
    ],
)
def test_non_public_literals_are_refused_without_dns(url: str, no_dns: None) -> None:
    with pytest.raises(AddressRefused):
        check_url(url)


def test_public_literal_ip_is_allowed_without_network(no_dns: None) -> None:
    check_url("http://93.184.216.34/index.html")
    check_url("https://[2606:2800:220:1:248:1893:25c8:1946]:8443/")


def test_loopback_allowed_when_in_allow_list(no_dns: None) -> None:
    check_url("http://127.0.0.1:8080/", ("127.0.0.0/8",))
    check_url("http://[::1]/", ["::1/128"])
    check_url("http://10.9.8.7/", parse_networks(["10.0.0.0/8"]))


def test_allow_list_is_exact() -> None:
    with pytest.raises(AddressRefused):
        check_url("http://127.0.0.2/", ("127.0.0.1/32",))
    with pytest.raises(AddressRefused):
        check_url("http://192.168.1.1/", ("10.0.0.0/8",))


def test_metadata_needs_an_exact_allow_entry() -> None:
    with pytest.raises(AddressRefused, match="metadata"):
        check_ip("169.254.169.254", ("169.254.0.0/16",))
    check_ip("169.254.169.254", ("169.254.169.254/32",))
    check_ip("169.254.1.1", ("169.254.0.0/16",))


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://93.184.216.34/file", "scheme"),
        ("file:///etc/passwd", "scheme"),
        ("gopher://93.184.216.34/", "scheme"),
        ("http://user:secret@93.184.216.34/", "credentials"),
        ("http://user@93.184.216.34/", "credentials"),
        ("http:///nohost", "no host"),
        ("http://93.184.216.34:99999/", "unparseable"),
    ],
)
def test_bad_urls_are_refused(url: str, reason: str, no_dns: None) -> None:
    with pytest.raises(AddressRefused, match=reason):
        check_url(url)


def test_every_resolved_address_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_dns(
        monkeypatch,
        {"mixed.test": ["93.184.216.34", "10.0.0.5"], "public.test": ["93.184.216.34", "2606:2800::1"]},
    )
    with pytest.raises(AddressRefused, match="10.0.0.5"):
        check_url("http://mixed.test/")
    check_url("http://public.test/")
    infos = resolve_checked("public.test", 80)
    assert [sa[0] for *_x, sa in infos] == ["93.184.216.34", "2606:2800::1"]


def test_hostnames_resolving_to_loopback_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_dns(monkeypatch, {"localtest.me": ["127.0.0.1"], "evil.test": ["169.254.169.254"]})
    with pytest.raises(AddressRefused, match="loopback"):
        check_url("http://localtest.me/")
    with pytest.raises(AddressRefused, match="metadata"):
        check_url("https://evil.test/")


def test_resolution_failure_is_an_oserror_not_a_refusal(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_dns(monkeypatch, {})
    with pytest.raises(socket.gaierror):
        check_url("http://nonexistent.test/")


def test_bad_cidr_gives_clear_error() -> None:
    with pytest.raises(ValueError, match=r"'10\.0\.0\.0/33'"):
        parse_networks(["127.0.0.0/8", "10.0.0.0/33"])
    with pytest.raises(ValueError, match="'not-a-network'"):
        parse_networks(["not-a-network"])
    with pytest.raises(ValueError, match="invalid network"):
        FetchPolicy(allow_networks=("127.0.0.0/8", "bogus"))


def test_from_env_names_the_bad_entry() -> None:
    with pytest.raises(ValueError, match=r"NEWSDEDUP_ALLOW_NETWORKS.*'192\.168\.1\.300/32'"):
        FetchPolicy.from_env({"NEWSDEDUP_ALLOW_NETWORKS": "127.0.0.0/8, 192.168.1.300/32"})


def test_parse_networks_accepts_bare_addresses_and_host_bits() -> None:
    nets = parse_networks(["127.0.0.1", "10.1.2.3/8", "::1"])
    assert nets == (
        ipaddress.ip_network("127.0.0.1/32"),
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("::1/128"),
    )


def test_refusal_reason_names_the_category() -> None:
    assert refusal_reason(ipaddress.ip_address("8.8.8.8")) is None
    assert refusal_reason(ipaddress.ip_address("127.0.0.1")) == "loopback address"
    assert refusal_reason(ipaddress.ip_address("10.0.0.1")) == "private address"
    assert refusal_reason(ipaddress.ip_address("224.0.0.251")) == "multicast address"
    assert refusal_reason(ipaddress.ip_address("fd00:ec2::254")) == "cloud metadata address"
