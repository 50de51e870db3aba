"""Throttling of failed dashboard sign-ins (the login form and Bearer keys), per client address and
per account, kept in PostgreSQL so every dashboard process counts the same failures.

An address that fails ``failures`` times within a window is locked out for ``lockout_s``; each
lockout in a row lasts twice the one before, up to ``max_lockout_s``, and a quiet day (or a success
from the address) forgets them. While locked out, attempts are refused with 429 before the key is
looked at, so a correct key is refused too and guessing learns nothing. The account (today: the
dashboard key) has the same rule with a far higher limit: many addresses must fail together before
everyone has to wait. ADR 0011 explains the numbers.

Cost: a successful Bearer request makes one indexed read (``_STATE``); a failure makes two upserts.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

import psycopg
from fastapi import Request

ACCOUNT = "dashboard-key"  # the dashboard key's account; a user's is user:<name>, a token's token:<id>


@dataclass(frozen=True, slots=True)
class Limit:
    failures: int  # the failure that reaches this count locks the subject out
    window_s: int  # failures older than this (counted from the first of the window) are forgotten
    lockout_s: int  # the first lockout; each one in a row doubles
    max_lockout_s: int
    forget_s: int = 86_400  # a day without failures forgets earlier lockouts

    def __post_init__(self) -> None:
        assert self.failures >= 2 and 0 < self.lockout_s <= self.max_lockout_s


@dataclass(frozen=True, slots=True)
class Policy:
    address: Limit
    account: Limit


DEFAULT = Policy(
    address=Limit(failures=5, window_s=900, lockout_s=60, max_lockout_s=3600),
    account=Limit(failures=100, window_s=900, lockout_s=60, max_lockout_s=900),
)


@dataclass(frozen=True, slots=True)
class Verdict:
    ok: bool
    retry_after: int | None = None  # set: refused for now (429), whatever the key was


def client_address(request: Request) -> str:
    """The peer address as the server saw it (Mangum: the function URL's sourceIp). Forwarding
    headers are not read: a client can write any. An IPv6 client usually holds a whole /64, so that
    is the unit."""
    host = request.client.host if request.client else ""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host[:100] or "unknown"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network(f"{ip}/64", strict=False))
    return str(ip)


_STATE = (
    "SELECT scope, ceil(extract(epoch FROM locked_until - now()))::int FROM dashboard_auth_throttle"
    " WHERE (scope = 'address' AND subject = %s) OR (scope = 'account' AND subject = %s)"
)

# One failure, atomically (concurrent failures of one subject serialise on its row). Every SET
# expression reads the row as it was: the window restarts when it has run out, the lockout streak
# when the last failure is a day old; the failure that reaches the limit locks and restarts the count.
_FRESH = "(t.window_start <= now() - make_interval(secs => %(window_s)s))"
_COUNT = f"(CASE WHEN {_FRESH} THEN 0 ELSE t.failures END + 1)"
_LOCKS = f"({_COUNT} >= %(failures)s)"
_STREAK = (
    "(CASE WHEN t.last_failure_at <= now() - make_interval(secs => %(forget_s)s) THEN 0 ELSE t.lockouts END)"
)
_FAIL = f"""
INSERT INTO dashboard_auth_throttle AS t (scope, subject, failures, window_start, last_failure_at)
VALUES (%(scope)s, %(subject)s, 1, now(), now())
ON CONFLICT (scope, subject) DO UPDATE SET
    failures = CASE WHEN {_LOCKS} THEN 0 ELSE {_COUNT} END,
    window_start = CASE WHEN {_LOCKS} OR {_FRESH} THEN now() ELSE t.window_start END,
    lockouts = {_STREAK} + CASE WHEN {_LOCKS} THEN 1 ELSE 0 END,
    locked_until = CASE WHEN {_LOCKS} THEN now() + make_interval(
        secs => least(%(lockout_s)s * power(2, {_STREAK}), %(max_lockout_s)s)) ELSE t.locked_until END,
    last_failure_at = now()
RETURNING ceil(extract(epoch FROM t.locked_until - now()))::int
"""


def attempt(
    conn: psycopg.Connection, policy: Policy, address: str, account: str, correct: bool, dry_run: bool = False
) -> Verdict:
    """Decide a sign-in attempt whose key was ``correct`` or not; failures are recorded and
    committed at once (the error response that follows must not roll them back). ``dry_run``: only
    whether the address or account is locked out now (before a password costs a hash)."""
    waits = {scope: wait for scope, wait in conn.execute(_STATE, (address, account))}
    wait = max((w for w in waits.values() if w and w > 0), default=None)
    if wait is not None:
        return Verdict(False, wait)
    if dry_run:
        return Verdict(True)
    if correct:
        if "address" in waits:  # earlier typos from here are forgiven (a write only when there were any)
            conn.execute(
                "DELETE FROM dashboard_auth_throttle WHERE scope = 'address' AND subject = %s", (address,)
            )
            conn.commit()
        return Verdict(True)
    found = [
        _fail(conn, "address", address, policy.address),
        _fail(conn, "account", account, policy.account),
    ]
    conn.commit()
    wait = max((w for w in found if w and w > 0), default=None)
    return Verdict(False, wait)


def _fail(conn: psycopg.Connection, scope: str, subject: str, limit: Limit) -> int | None:
    row = conn.execute(
        _FAIL,
        {
            "scope": scope,
            "subject": subject,
            "failures": limit.failures,
            "window_s": limit.window_s,
            "lockout_s": limit.lockout_s,
            "max_lockout_s": limit.max_lockout_s,
            "forget_s": limit.forget_s,
        },
    ).fetchone()
    return row[0] if row else None


def forget_old(conn: psycopg.Connection, policy: Policy) -> None:
    """Drop subjects whose failures every limit has forgotten (run now and then: at login)."""
    conn.execute(
        "DELETE FROM dashboard_auth_throttle WHERE last_failure_at < now() - make_interval(secs => %s)"
        " AND (locked_until IS NULL OR locked_until < now())",
        (max(policy.address.forget_s, policy.account.forget_s),),
    )
