"""Signed dashboard sessions: authentic, expiring, and ended by rotating the dashboard key."""

from __future__ import annotations

from nexus_dashboard import sessions


def test_a_session_verifies_until_it_expires() -> None:
    cookie, s = sessions.issue("nxd_key", now=1000)
    assert sessions.verify(cookie, "nxd_key", now=1000 + sessions.MAX_AGE_S) == s
    assert sessions.verify(cookie, "nxd_key", now=1001 + sessions.MAX_AGE_S) is None
    assert sessions.verify(cookie, "nxd_key", now=999) is None  # issued in the future: refused


def test_rotating_the_dashboard_key_ends_every_session() -> None:
    cookie, _ = sessions.issue("nxd_old", now=1000)
    assert sessions.verify(cookie, "nxd_new", now=1000) is None


def test_garbage_and_tampering_are_refused_without_errors() -> None:
    cookie, _ = sessions.issue("k", now=1000)
    payload, sig = cookie.split(".")
    for bad in ("", ".", "x", "a.b", f"{payload}.", f"{payload}x.{sig}", f"{payload}.{sig}x", "é.é"):
        assert sessions.verify(bad, "k", now=1000) is None
    key = "nxd_" + "s3cr3t" * 6
    assert key not in sessions.issue(key)[0]
