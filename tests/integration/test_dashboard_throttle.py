"""Failed dashboard sign-ins are throttled per client address and per account, in PostgreSQL (every
dashboard process sees the same counts): after a few failures an address is locked out with 429 and
Retry-After, a correct key included (brute force learns nothing), for longer each time; the account
locks only after many more, so one attacker cannot lock everyone out.

Clients connect from different loopback addresses (127.0.0.x) to look like different machines."""

from __future__ import annotations

import http.client
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

import psycopg
import pytest
from nexus_dashboard import throttle

from tests.integration.http import Response
from tests.support.stack import Stack, running_stack

FORM = "application/x-www-form-urlencoded"
ATTEMPTS = 200


@pytest.fixture
def fresh(pg_server, fake_upstream, tmp_path) -> Iterator[Stack]:
    """A stack on an empty database: each test starts with no failures recorded."""
    with running_stack(pg_server, fake_upstream, tmp_path / "nexus") as s:
        yield s


def send(
    stack: Stack, method: str, path: str, source: str, body: bytes | None = None, headers: dict | None = None
) -> Response:
    u = urlsplit(stack.dashboard_url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30, source_address=(source, 0))
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        return Response(r.status, r.getheaders(), r.read())
    finally:
        conn.close()


def login(stack: Stack, key: str, source: str) -> Response:
    return send(stack, "POST", "/login", source, f"key={quote(key)}".encode(), {"content-type": FORM})


def bearer(stack: Stack, key: str, source: str, extra: dict | None = None) -> Response:
    headers = {"authorization": f"Bearer {key}", **(extra or {})}
    return send(stack, "GET", "/api/session", source, headers=headers)


@dataclass
class Run:
    statuses: Counter
    first_429: int | None  # attempts answered before the first 429
    retry_after: set[int]
    seconds: float


def hammer(attempt, n: int = ATTEMPTS) -> Run:
    statuses: Counter = Counter()
    first = None
    waits: set[int] = set()
    t0 = time.monotonic()
    for i in range(n):
        r = attempt(i)
        statuses[r.status] += 1
        if r.status == 429:
            first = i if first is None else first
            waits.add(int(r.header("retry-after") or 0))
    return Run(statuses, first, waits, time.monotonic() - t0)


def test_wrong_keys_on_the_login_form_lock_the_address_out(fresh) -> None:
    run = hammer(lambda i: login(fresh, f"nxd_guess_{i}", "127.0.0.2"))
    limit = throttle.DEFAULT.address.failures
    print(f"\nlogin form: {dict(run.statuses)} in {run.seconds:.2f}s, first 429 after {run.first_429}")
    assert run.statuses[401] == limit - 1 and run.first_429 == limit - 1  # the limit-th failure locks
    assert run.statuses[429] == ATTEMPTS - (limit - 1)
    assert run.retry_after and min(run.retry_after) >= 1 and max(run.retry_after) <= 60

    locked = login(fresh, fresh.dashboard_key, "127.0.0.2")
    assert locked.status == 429 and "set-cookie" not in {k.lower() for k, _ in locked.headers}
    assert b"Too many failed attempts" in locked.body and int(locked.header("retry-after") or 0) >= 1
    assert bearer(fresh, fresh.dashboard_key, "127.0.0.2").status == 429  # the same key over the API

    assert login(fresh, fresh.dashboard_key, "127.0.0.3").status == 303  # another address still gets in
    assert bearer(fresh, fresh.dashboard_key, "127.0.0.3").status == 200


def test_wrong_bearer_keys_lock_the_address_out_with_a_json_429(fresh) -> None:
    run = hammer(lambda i: bearer(fresh, f"nxd_guess_{i}", "127.0.0.4"))
    print(f"\nbearer: {dict(run.statuses)} in {run.seconds:.2f}s, first 429 after {run.first_429}")
    assert run.statuses[401] == throttle.DEFAULT.address.failures - 1 and run.statuses[429] > 190
    r = bearer(fresh, fresh.dashboard_key, "127.0.0.4")
    assert r.status == 429 and r.json()["error"]["status"] == 429
    assert "Too many failed attempts" in r.json()["error"]["message"]
    assert int(r.header("retry-after") or 0) >= 1
    assert bearer(fresh, fresh.dashboard_key, "127.0.0.5").status == 200
    # X-Forwarded-For is not believed: naming other addresses gets no fresh allowance
    spoofed = bearer(fresh, "nxd_wrong", "127.0.0.4", {"x-forwarded-for": "203.0.113.9"})
    assert spoofed.status == 429


def test_each_lockout_in_a_row_lasts_twice_as_long(fresh) -> None:
    limit = throttle.DEFAULT.address.failures
    waits = []
    for _ in range(3):
        statuses = [login(fresh, "nxd_wrong", "127.0.0.6").status for _ in range(limit)]
        assert statuses == [401] * (limit - 1) + [429]
        waits.append(int(login(fresh, "nxd_wrong", "127.0.0.6").header("retry-after") or 0))
        with psycopg.connect(fresh.database_url) as conn:  # the lockout runs out (time travel)
            conn.execute(
                "UPDATE dashboard_auth_throttle SET locked_until = now() - interval '1 second',"
                " window_start = window_start - interval '1 second' WHERE scope = 'address'"
            )
    print(f"\nlockouts in a row: {waits} s")
    base = throttle.DEFAULT.address.lockout_s
    assert [round(w / base) for w in waits] == [1, 2, 4]
    assert login(fresh, fresh.dashboard_key, "127.0.0.6").status == 303  # and a success forgets them
    statuses = [login(fresh, "nxd_wrong", "127.0.0.6").status for _ in range(limit)]
    assert statuses[-1] == 429 and int(login(fresh, "x", "127.0.0.6").header("retry-after") or 0) <= base


def test_the_account_locks_only_after_many_addresses_fail(fresh) -> None:
    """A distributed guess (many addresses, each below its own limit) locks the account: new sign-ins
    wait, from anywhere; sessions already open keep working."""
    cookie = login(fresh, fresh.dashboard_key, "127.0.0.7").header("set-cookie").split(";")[0]
    per_address = throttle.DEFAULT.address.failures - 1
    needed = throttle.DEFAULT.account.failures
    sources = [f"127.0.1.{i}" for i in range(1, needed // per_address + 2)]
    statuses = Counter(login(fresh, "nxd_wrong", s).status for s in sources for _ in range(per_address))
    print(f"\naccount: {dict(statuses)} from {len(sources)} addresses")
    assert statuses[401] == needed - 1 and statuses[429] >= 1
    fresh_address = login(fresh, fresh.dashboard_key, "127.0.0.8")
    assert fresh_address.status == 429 and int(fresh_address.header("retry-after") or 0) >= 1
    me = send(fresh, "GET", "/api/session", "127.0.0.8", headers={"cookie": cookie})
    assert me.status == 200 and me.json()["auth"] == "session"
