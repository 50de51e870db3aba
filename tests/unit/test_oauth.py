"""Team OAuth credentials: what a stored document may hold, when the one refresher renews, and what
may be shown of a credential."""

from __future__ import annotations

import json

import pytest
from nexus.alert_events import LogOnly
from nexus.oauth import RELOGIN, CredentialError, OAuthCredential, Refresher, set_team_oauth
from nexus.secret_store import LocalSecretStore

NOW = 1_800_000_000.0


def test_a_credential_document_is_validated_with_readable_errors():
    ok = OAuthCredential.parse({"access_token": "a", "refresh_token": "r", "expires_at": NOW})
    assert ok.expires_at == NOW
    millis = OAuthCredential.parse({"access_token": "a", "refresh_token": "r", "expires_at": NOW * 1000})
    assert millis.expires_at == NOW  # Claude Code's own credentials file counts milliseconds
    for doc, says in [
        ("{", "not JSON"),
        ("[]", "JSON object"),
        ({"refresh_token": "r", "expires_at": NOW}, "access_token"),
        ({"access_token": "a", "refresh_token": " ", "expires_at": NOW}, "refresh_token"),
        ({"access_token": "a", "refresh_token": "r", "expires_at": "soon"}, "expires_at"),
        ({"access_token": "a", "refresh_token": "r", "expires_at": True}, "expires_at"),
    ]:
        with pytest.raises(CredentialError, match=says):
            OAuthCredential.parse(doc if isinstance(doc, str) else json.dumps(doc))


def test_what_is_shown_of_a_credential_holds_no_token():
    cred = OAuthCredential("sk-ant-oat01-secret-access", "sk-ant-ort01-secret-refresh", NOW)
    shown = json.dumps(cred.public())
    assert "secret" not in shown and "2027-01-15" in shown


def _refresher(tmp_path, answers: list[tuple[int, dict]], now: float = NOW) -> tuple[Refresher, list[dict]]:
    calls: list[dict] = []

    def post(url: str, body: dict, timeout: float) -> tuple[int, dict]:
        calls.append(body)
        return answers.pop(0)

    store = LocalSecretStore(tmp_path / "secrets.json")
    return Refresher(store, LogOnly(), post=post, clock=lambda: now), calls


def test_renewal_happens_inside_the_last_five_minutes_and_not_before(tmp_path):
    fresh = {"access_token": "new", "refresh_token": "r2", "expires_in": 28800}
    refresher, calls = _refresher(tmp_path, [(200, fresh)])
    set_team_oauth(refresher.store, "t", OAuthCredential("old", "r1", NOW + 301))
    assert refresher.run_once() == {"t": "fresh"} and calls == []
    set_team_oauth(refresher.store, "t", OAuthCredential("old", "r1", NOW + 299))
    assert refresher.run_once() == {"t": "refreshed"}
    assert calls == [{"grant_type": "refresh_token", "refresh_token": "r1", "client_id": refresher.client_id}]
    stored = json.loads(refresher.store.get("nexus/team/t/oauth") or "")
    assert (stored["access_token"], stored["refresh_token"], stored["expires_at"]) == (
        "new",
        "r2",
        NOW + 28800,
    )


def test_invalid_grant_stops_refreshing_and_alerts_once(tmp_path):
    refresher, calls = _refresher(tmp_path, [(400, {"error": "invalid_grant"})])
    set_team_oauth(refresher.store, "t", OAuthCredential("old", "r1", NOW + 10))
    assert refresher.run_once() == {"t": RELOGIN}
    assert refresher.run_once() == {"t": RELOGIN} and len(calls) == 1  # no retry loop
    [event] = refresher.notifier.seen  # type: ignore[attr-defined]
    assert event.kind == "credential_failed" and event.team == "t" and "r1" not in event.message


def test_a_transient_failure_is_retried_after_a_pause(tmp_path):
    refresher, calls = _refresher(tmp_path, [(503, {}), (200, {"access_token": "new", "expires_in": 60})])
    set_team_oauth(refresher.store, "t", OAuthCredential("old", "r1", NOW + 10))
    assert refresher.run_once() == {"t": "failed"}
    assert refresher.run_once() == {"t": "retry_later"} and len(calls) == 1  # not before the pause
    refresher.clock = lambda: NOW + 61
    assert refresher.run_once() == {"t": "refreshed"}
    stored = json.loads(refresher.store.get("nexus/team/t/oauth") or "")
    assert stored["refresh_token"] == "r1"  # the endpoint sent none: the old one stays
