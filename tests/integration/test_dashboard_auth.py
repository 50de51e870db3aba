"""Dashboard auth against the running stack: key login, session cookie, CSRF, headers."""

from __future__ import annotations

import json

from tests.integration.http import request


def _cookie(resp) -> str | None:
    for k, v in resp.headers:
        if k.lower() == "set-cookie" and v.startswith("nexus_session="):
            return v
    return None


def _login(stack, key: str, origin: str | None = None):
    headers = {"content-type": "application/x-www-form-urlencoded"}
    if origin:
        headers["origin"] = origin
    return request(stack.dashboard_url, "POST", "/login", f"key={key}".encode(), headers)


def _session(stack) -> tuple[str, str]:
    resp = _login(stack, stack.dashboard_key)
    assert resp.status == 303 and resp.header("location") == "/"
    set_cookie = _cookie(resp)
    assert set_cookie is not None
    attrs = {a.strip().split("=")[0].lower() for a in set_cookie.split(";")}
    assert {"httponly", "samesite", "path"} <= attrs
    cookie = set_cookie.split(";")[0]
    assert stack.dashboard_key not in cookie, "the cookie must never hold the key"
    me = request(stack.dashboard_url, "GET", "/api/session", headers={"cookie": cookie})
    return cookie, json.loads(me.body)["csrf_token"]


def test_login_with_the_key_gives_a_session_that_reads_the_api(stack) -> None:
    cookie, csrf = _session(stack)
    assert request(stack.dashboard_url, "GET", "/api/requests", headers={"cookie": cookie}).status == 200
    home = request(stack.dashboard_url, "GET", "/", headers={"cookie": cookie})
    assert home.status == 200 and csrf.encode() in home.body  # the logout form carries the token


def test_a_wrong_key_or_a_forged_cookie_gets_nothing(stack) -> None:
    bad = _login(stack, "nxd_wrong")
    assert bad.status == 401 and _cookie(bad) is None and b"not the dashboard key" in bad.body
    cookie, _ = _session(stack)
    forged = cookie[:-2] + ("AA" if not cookie.endswith("AA") else "BB")
    assert request(stack.dashboard_url, "GET", "/api/requests", headers={"cookie": forged}).status == 401
    assert request(stack.dashboard_url, "GET", "/", headers={"cookie": forged}).header("location") == "/login"
    assert request(stack.dashboard_url, "GET", "/api/conversations").status == 401


def test_state_changes_need_the_sessions_csrf_token(stack) -> None:
    cookie, csrf = _session(stack)
    form = {"cookie": cookie, "content-type": "application/x-www-form-urlencoded"}
    assert request(stack.dashboard_url, "POST", "/logout", b"", form).status == 403
    assert request(stack.dashboard_url, "POST", "/logout", b"csrf_token=nope", form).status == 403
    other_cookie, other_csrf = _session(stack)  # another session's token does not fit this one
    assert (
        request(stack.dashboard_url, "POST", "/logout", f"csrf_token={other_csrf}".encode(), form).status
        == 403
    )
    out = request(stack.dashboard_url, "POST", "/logout", f"csrf_token={csrf}".encode(), form)
    assert out.status == 303 and out.header("location") == "/login"
    assert 'nexus_session=""' in (_cookie(out) or "") or "max-age=0" in (_cookie(out) or "").lower()
    header = request(
        stack.dashboard_url, "POST", "/logout", b"", {"cookie": other_cookie, "x-csrf-token": other_csrf}
    )
    assert header.status == 303


def test_a_cross_site_login_is_refused(stack) -> None:
    assert _login(stack, stack.dashboard_key, origin="https://evil.example").status == 403


def test_every_response_carries_security_headers(stack) -> None:
    for path in ("/login", "/api/requests", "/health"):
        r = request(stack.dashboard_url, "GET", path)
        assert "frame-ancestors 'none'" in (r.header("content-security-policy") or ""), path
        assert r.header("x-content-type-options") == "nosniff"
        assert r.header("cache-control") == "no-store"
        assert r.header("x-frame-options") == "DENY"
