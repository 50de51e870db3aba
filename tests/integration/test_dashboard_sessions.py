"""Dashboard sessions live in PostgreSQL: the cookie is a random token whose hash is the only thing
stored, logging out ends the session for good, and rotating the dashboard key ends every session."""

from __future__ import annotations

import hashlib
from urllib.parse import quote

import psycopg

from tests.integration.http import Response, request
from tests.support.stack import Stack, running_stack

FORM = "application/x-www-form-urlencoded"


def login(stack: Stack, key: str | None = None) -> Response:
    body = f"key={quote(key or stack.dashboard_key)}".encode()
    headers = {"content-type": FORM, "user-agent": "session-test/1.0"}
    return request(stack.dashboard_url, "POST", "/login", body, headers)


def session_cookie(resp: Response) -> str:
    assert resp.status == 303, (resp.status, resp.body[:200])
    value = next(v for k, v in resp.headers if k.lower() == "set-cookie" and v.startswith("nexus_session="))
    return value.split(";")[0]


def me(stack: Stack, cookie: str) -> Response:
    return request(stack.dashboard_url, "GET", "/api/session", headers={"cookie": cookie})


def test_logging_out_ends_the_session_server_side(stack) -> None:
    cookie = session_cookie(login(stack))
    csrf = me(stack, cookie).json()["csrf_token"]
    other = session_cookie(login(stack))  # another browser's session is not touched
    headers = {"cookie": cookie, "content-type": FORM}
    out = request(stack.dashboard_url, "POST", "/logout", f"csrf_token={csrf}".encode(), headers)
    assert out.status == 303 and out.header("location") == "/login"
    # The browser drops the cookie; one kept (copied, stolen) is refused all the same.
    gone = me(stack, cookie)
    assert gone.status == 401 and gone.json()["error"]["status"] == 401
    assert request(stack.dashboard_url, "GET", "/", headers={"cookie": cookie}).header("location") == "/login"
    assert me(stack, other).status == 200


def test_the_cookie_is_a_random_token_and_only_its_hash_is_stored(stack) -> None:
    cookie = session_cookie(login(stack))
    token = cookie.split("=", 1)[1]
    assert len(token) >= 40 and stack.dashboard_key not in token
    with psycopg.connect(stack.database_url) as conn:
        row = conn.execute(
            "SELECT principal, client_address, user_agent, created_at, expires_at - created_at, revoked_at,"
            " csrf_token FROM dashboard_sessions WHERE token_hash = %s",
            (hashlib.sha256(token.encode()).digest(),),
        ).fetchone()
        raw = conn.execute("SELECT count(*) FROM dashboard_sessions WHERE token_hash = %s", (token.encode(),))
        assert raw.fetchone()[0] == 0
    assert row is not None
    principal, address, agent, _, lifetime, revoked_at, csrf = row
    assert principal == "dashboard-key" and address == "127.0.0.1" and agent == "session-test/1.0"
    assert lifetime.total_seconds() == 12 * 3600 and revoked_at is None
    assert me(stack, cookie).json()["csrf_token"] == csrf


def test_an_expired_or_unknown_session_is_refused(stack) -> None:
    cookie = session_cookie(login(stack))
    token = cookie.split("=", 1)[1]
    with psycopg.connect(stack.database_url) as conn:
        conn.execute(
            "UPDATE dashboard_sessions SET expires_at = now() - interval '1 second' WHERE token_hash = %s",
            (hashlib.sha256(token.encode()).digest(),),
        )
    assert me(stack, cookie).status == 401
    for forged in ("nexus_session=" + token[:-2] + "AA", "nexus_session=", "nexus_session=" + "x" * 5000):
        assert me(stack, forged).status == 401


def test_rotating_the_dashboard_key_ends_every_session(pg_server, fake_upstream, tmp_path) -> None:
    with running_stack(pg_server, fake_upstream, tmp_path / "one") as first:
        cookie = session_cookie(login(first))
        assert me(first, cookie).status == 200
        url = first.database_url
    rotated = Stack(tmp_path / "two", fake_upstream.url, url)  # same database, a new dashboard key
    rotated.start()
    try:
        assert me(rotated, cookie).status == 401
        assert me(rotated, session_cookie(login(rotated))).status == 200
    finally:
        rotated.stop()
