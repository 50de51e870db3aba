"""The address failed sign-ins are counted against: the peer as the server saw it, an IPv6 client's
whole /64 (one host usually holds one), never a forwarding header."""

from __future__ import annotations

from fastapi import Request
from nexus_dashboard.throttle import client_address


def _request(client: tuple[str, int] | None, headers: list[tuple[bytes, bytes]] | None = None) -> Request:
    return Request(
        {"type": "http", "method": "POST", "path": "/login", "headers": headers or [], "client": client}
    )


def test_ipv4_is_counted_as_is_and_forwarding_headers_are_ignored() -> None:
    spoof = [(b"x-forwarded-for", b"203.0.113.7"), (b"forwarded", b"for=203.0.113.8")]
    assert client_address(_request(("198.51.100.4", 5000), spoof)) == "198.51.100.4"


def test_ipv6_addresses_of_one_64_count_as_one() -> None:
    a = client_address(_request(("2001:db8:1:2:aaaa::1", 1)))
    b = client_address(_request(("2001:db8:1:2:ffff:ffff:ffff:ffff", 1)))
    assert a == b == "2001:db8:1:2::/64"
    assert client_address(_request(("2001:db8:1:3::1", 1))) != a
    assert client_address(_request(("::ffff:192.0.2.9", 1))) == "192.0.2.9"  # IPv4 over a dual stack


def test_a_client_without_an_ip_still_has_an_address() -> None:
    assert client_address(_request(("testclient", 50000))) == "testclient"
    assert client_address(_request(None)) == "unknown"
    assert len(client_address(_request(("x" * 500, 1)))) == 100
