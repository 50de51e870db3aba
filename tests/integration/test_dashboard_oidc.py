"""Signing in through OpenID Connect, against a local provider stand-in that signs real ID tokens
(tests/support/oidc_provider.py): the browser's three hops (dashboard -> provider -> callback) made
by hand, so each check on the dashboard's side can be seen to refuse what it must: another issuer or
audience, an expired token, a wrong nonce, a key the issuer does not publish, a forged state."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import pytest
from nexus_dashboard import oidc
from nexus_dashboard.app import create_app

from tests.integration.http import Response, request
from tests.support import dashboard
from tests.support.oidc_provider import OidcProvider, Person

KEY = "nxd_oidc_" + "k" * 30


@pytest.fixture(scope="module")
def provider() -> Iterator[OidcProvider]:
    p = OidcProvider().start()
    yield p
    p.stop()


@pytest.fixture(scope="module")
def served(pg_server, provider) -> Iterator[dashboard.Served]:
    url = dashboard.database(pg_server)
    ids = dashboard.seed(url)
    config = oidc.Config(provider.issuer, provider.client_id, label="Test IdP")
    app = create_app(url, KEY, None, oidc_config=config)
    with dashboard.serve(app) as base:
        yield dashboard.Served(base, url, KEY, app, ids)


@pytest.fixture(autouse=True)
def behaving(provider) -> None:
    provider.reset()


def _cookie(resp: Response, name: str) -> str | None:
    for k, v in resp.headers:
        if k.lower() == "set-cookie" and v.startswith(f"{name}=") and not v.startswith(f'{name}=""'):
            return v.split(";")[0]
    return None


def _get(url: str, headers: dict[str, str] | None = None) -> Response:
    u = urlsplit(url)
    return request(
        f"{u.scheme}://{u.netloc}", "GET", u.path + (f"?{u.query}" if u.query else ""), None, headers or {}
    )


def sign_in(served: dashboard.Served) -> tuple[Response, str | None]:
    """The browser's hops; the callback's response and the session cookie it set, if any."""
    start = request(served.url, "GET", "/login/oidc")
    assert start.status == 303, start.body[:300]
    flow = _cookie(start, oidc.COOKIE)
    assert flow is not None
    at_provider = _get(start.header("location") or "")
    assert at_provider.status == 302
    back = at_provider.header("location") or ""
    assert back.startswith(served.url + "/login/oidc/callback?")
    done = _get(back, {"cookie": flow})
    return done, _cookie(done, "nexus_session")


def test_the_login_page_offers_the_provider(served) -> None:
    page = request(served.url, "GET", "/login")
    assert b'href="/login/oidc"' in page.body and b"Sign in with Test IdP" in page.body


def test_a_member_signs_in_with_pkce_and_sees_their_team(served, provider) -> None:
    done, session = sign_in(served)
    assert done.status == 303 and done.header("location") == "/" and session
    me = request(served.url, "GET", "/api/session", headers={"cookie": session}).json()
    assert (me["principal"], me["role"], me["teams"]) == ("oidc:ann@example.com", "member", ["alpha"])
    listed = request(served.url, "GET", "/api/conversations?period=all", headers={"cookie": session}).json()
    assert [c["team"] for c in listed["conversations"]] == ["alpha"]
    sent = provider.token_requests[-1]
    assert sent["client_id"] == provider.client_id and len(sent["code_verifier"]) >= 43  # PKCE, public client
    # The start page's authorization request asked for S256 and carried a nonce.
    start = request(served.url, "GET", "/login/oidc")
    q = parse_qs(urlsplit(start.header("location") or "").query)
    assert q["code_challenge_method"] == ["S256"] and q["nonce"][0] and q["state"][0]


def test_the_admin_group_gives_every_team(served, provider) -> None:
    provider.person = Person("sub-root", "root@example.com", ["admin"])
    _, session = sign_in(served)
    me = request(served.url, "GET", "/api/session", headers={"cookie": session or ""}).json()
    assert (me["role"], me["teams"]) == ("admin", None)


def test_someone_without_a_role_group_is_refused(served, provider) -> None:
    provider.person = Person("sub-eve", "eve@example.com", ["team:alpha"])
    done, session = sign_in(served)
    assert done.status == 403 and session is None and b"no dashboard role" in done.body


@pytest.mark.parametrize(
    ("knob", "value", "says"),
    [
        ("token_audience", "another-client", b"Audience"),
        ("token_issuer", "https://evil.example", b"Invalid issuer"),
        ("expires_in", -3600, b"expired"),
        ("wrong_nonce", True, b"nonce"),
        ("foreign_key", True, b"Signature verification failed"),
    ],
)
def test_an_id_token_that_fails_a_check_signs_no_one_in(served, provider, knob, value, says) -> None:
    setattr(provider, knob, value)
    done, session = sign_in(served)
    assert done.status == 401 and session is None, done.body[:300]
    assert says in done.body


def test_a_forged_state_or_a_missing_flow_cookie_is_refused(served) -> None:
    start = request(served.url, "GET", "/login/oidc")
    flow = _cookie(start, oidc.COOKIE) or ""
    back = _get(start.header("location") or "").header("location") or ""
    forged = back.replace("state=", "state=x")
    refused = _get(forged, {"cookie": flow})
    assert refused.status == 400 and _cookie(refused, "nexus_session") is None
    no_cookie = _get(back)
    assert no_cookie.status == 400 and b"not started here" in no_cookie.body
    tampered = flow[:-3] + ("AAA" if not flow.endswith("AAA") else "BBB")
    assert _get(back, {"cookie": tampered}).status == 400


def test_an_admin_sees_who_signed_in_through_the_provider_and_can_sign_them_out(served, provider) -> None:
    """People from the identity provider have no local account: /users lists them under "Signed in
    now" (and /api/sign-ins), where an admin ends a session; the action is audited."""
    _, session = sign_in(served)  # ann, a member of alpha
    assert session
    admin = {"authorization": f"Bearer {served.key}"}
    listed = request(served.url, "GET", "/api/sign-ins", headers=admin).json()["sessions"]
    mine = hashlib.sha256(session.split("=", 1)[1].encode()).hexdigest()  # ids are the token's hash
    [ann] = [s for s in listed if s["id"] == mine]
    assert ann["principal"] == "oidc:ann@example.com"
    assert ann["live"] and ann["role"] == "member" and ann["teams"] == ["alpha"]
    page = request(served.url, "GET", "/users", headers=admin).body.decode()
    assert f'action="/sign-ins/{ann["id"]}/revoke"' in page and "oidc:ann@example.com" in page
    # A member may not see or end anyone's sessions.
    assert request(served.url, "GET", "/api/sign-ins", headers={"cookie": session}).status == 403

    ended = request(served.url, "POST", f"/api/sign-ins/{ann['id']}/revoke", b"", admin)
    assert ended.status == 200 and ended.json() == {"ended": 1}
    assert request(served.url, "GET", "/api/session", headers={"cookie": session}).status == 401
    again = request(served.url, "POST", f"/api/sign-ins/{ann['id']}/revoke", b"", admin)
    assert again.status == 404 and "no live session" in again.json()["error"]["message"]
    [entry] = [
        e
        for e in request(served.url, "GET", "/api/audit?action=session.end", headers=admin).json()["entries"]
        if e["target"] == "oidc:ann@example.com"
    ]
    assert entry["detail"]["session"] == ann["id"][:16]
