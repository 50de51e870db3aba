"""The dashboard's credentials: each team's kind, state, expiry and fingerprint, never the secret;
an OAuth credential stored from the API (and the page's form) as `nexus teams set-oauth` does."""

from __future__ import annotations

import json
import time

from nexus.headers import fingerprint

from tests.integration.http import post, request
from tests.support.stack import Stack

ACCESS = "sk-ant-oat01-dashboard-access-token"


def _auth(stack: Stack) -> dict[str, str]:
    return {"authorization": f"Bearer {stack.dashboard_key}", "content-type": "application/json"}


def test_credentials_are_listed_by_fingerprint_and_stored_from_the_api(stack: Stack) -> None:
    assert stack.nexus("teams", "set-mode", "apikeyed", "team-key").returncode == 0
    assert (
        stack.nexus("teams", "set-api-key", "apikeyed", input="sk-ant-api03-dashboard-team").returncode == 0
    )
    doc = {
        "access_token": ACCESS,
        "refresh_token": "sk-ant-ort01-dash-refresh",
        "expires_at": time.time() + 3600,
    }
    made = post(stack.dashboard_url, "/api/credentials/maxed/oauth", doc, _auth(stack))
    assert made.status == 201, made.body
    shown = json.loads(made.body)
    assert shown["kind"] == "oauth" and shown["status"] == "ok" and shown["mode"] == "team-key"
    assert shown["fingerprint"] == fingerprint(ACCESS)

    status, listed = stack.api("/api/credentials")
    assert status == 200
    by_team = {c["team"]: c for c in listed["credentials"]}
    assert by_team["apikeyed"]["kind"] == "api-key" and by_team["apikeyed"]["set_at"]
    assert by_team["maxed"]["expires_at"] and by_team["maxed"]["error"] is None
    page = request(stack.dashboard_url, "GET", "/credentials", headers=_auth(stack)).body.decode()
    for text in (json.dumps(listed), page):
        assert ACCESS not in text and "dash-refresh" not in text and "sk-ant-api03" not in text
    assert fingerprint(ACCESS) in page and "maxed" in page


def test_a_bad_credential_gets_a_clear_400_and_changes_nothing(stack: Stack) -> None:
    before = stack.api("/api/credentials")[1]
    for body, says in [
        ({"access_token": "a", "refresh_token": "", "expires_at": 1}, "refresh_token"),
        ({"access_token": "a", "refresh_token": "r", "expires_at": -5}, "expires_at"),
    ]:
        r = post(stack.dashboard_url, "/api/credentials/badteam/oauth", body, _auth(stack))
        assert r.status == 400 and says in json.loads(r.body)["error"]["message"], r.body
    missing = post(stack.dashboard_url, "/api/credentials/badteam/oauth", {"access_token": "a"}, _auth(stack))
    assert missing.status == 400
    assert stack.api("/api/credentials")[1] == before


def test_the_pages_form_stores_a_credential_and_never_echoes_a_bad_one(stack: Stack) -> None:
    from urllib.parse import urlencode

    form = {
        "authorization": f"Bearer {stack.dashboard_key}",
        "content-type": "application/x-www-form-urlencoded",
    }
    bad = urlencode({"team": "formteam", "credential": '{"access_token": "sk-ant-oat01-typo-secret"'})
    r = request(stack.dashboard_url, "POST", "/credentials", bad.encode(), form)
    body = r.body.decode()
    assert r.status == 400 and "credential: not JSON" in body and "typo-secret" not in body
    assert 'value="formteam"' in body  # the team is kept for the retry
    good = {
        "access_token": "sk-ant-oat01-form-token",
        "refresh_token": "sk-ant-ort01-form",
        "expires_at": 2e9,
    }
    r = request(
        stack.dashboard_url,
        "POST",
        "/credentials",
        urlencode({"team": "formteam", "credential": json.dumps(good)}).encode(),
        form,
    )
    assert r.status == 201 and fingerprint("sk-ant-oat01-form-token") in r.body.decode()
    assert "sk-ant-oat01-form-token" not in r.body.decode()
