"""Team OAuth credentials (Claude Max / Pro subscriptions) and their refresh, with exactly one writer.

A team in ``team-key`` mode may hold an OAuth credential instead of an API key: the proxy then sends
``Authorization: Bearer <access token>`` upstream (with the OAuth beta flag the API requires). Access
tokens live hours; the refresh token rotates at every use, so two refreshers racing would each burn
the other's token. Hence:

- proxies only **read** the credential (and pick a new token up at their next access check);
- one **refresher** (``nexus dev``'s thread locally; in AWS a scheduled function with reserved
  concurrency 1) renews a token ``REFRESH_BEFORE_S`` before it expires, stores the rotated refresh
  token, and touches the teams document so proxies notice;
- a proxy whose token was refused (401) **asks** for an early refresh (``request_refresh``); the
  refresher decides;
- ``invalid_grant`` marks the credential "re-login needed" and raises one alert; no retry loop.

Secrets never leave this module's documents: logs, records, the dashboard and errors show
fingerprints only.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from typing import Any

from nexus.access import TEAMS_SECRET, AccessStore
from nexus.alert_events import CREDENTIAL_FAILED, AlertEvent, Notifier
from nexus.headers import fingerprint
from nexus.secret_store import SecretStore

log = logging.getLogger("nexus.oauth")

DEFAULT_TOKEN_URL = "https://console.anthropic.com/v1/oauth/token"
# The OAuth client Claude Code signs in with: refresh tokens are bound to it.
DEFAULT_CLIENT_ID = "9d1c250a-e61b-44d9-88ed-5944d1962f5e"
OAUTH_BETA = "oauth-2025-04-20"  # the Messages API takes OAuth bearer tokens only with this beta
REFRESH_BEFORE_S = 300  # renew at least five minutes before expiry
RETRY_AFTER_FAILURE_S = 60  # a transient failure (timeout, 5xx) is tried again after this
REQUESTS_SECRET = "nexus/oauth/refresh-requests"  # teams whose proxies saw a 401
MAX_EXPIRES = 32_503_680_000_000  # the year 3000, in milliseconds: anything later is not an expiry

OK = "ok"
RELOGIN = "relogin_needed"


def credential_secret(team: str) -> str:
    return f"nexus/team/{team}/oauth"


class CredentialError(ValueError):
    """A credential document that cannot be used; the message names what is wrong."""


@dataclass(frozen=True)
class OAuthCredential:
    access_token: str
    refresh_token: str
    expires_at: float  # epoch seconds
    status: str = OK
    refreshed_at: float | None = None
    error: str | None = None  # why the last refresh failed (no secret in it)
    failed_at: float | None = None

    @classmethod
    def parse(cls, raw: str | dict[str, Any]) -> OAuthCredential:
        try:
            doc = json.loads(raw) if isinstance(raw, str) else raw
        except json.JSONDecodeError as exc:
            raise CredentialError(f"not JSON: {exc.msg}") from None
        if not isinstance(doc, dict):
            raise CredentialError('expected a JSON object {"access_token", "refresh_token", "expires_at"}')
        for name in ("access_token", "refresh_token"):
            if not isinstance(doc.get(name), str) or not doc[name].strip():
                raise CredentialError(f"{name} must be a non-empty string")
        expires = doc.get("expires_at")
        if isinstance(expires, bool) or not isinstance(expires, int | float) or expires <= 0:
            raise CredentialError("expires_at must be a number of epoch seconds")
        if expires > MAX_EXPIRES:
            raise CredentialError("expires_at is not a plausible expiry (epoch seconds or milliseconds)")
        if expires > 10**11:  # milliseconds (what Claude Code's own credentials file holds)
            expires = expires / 1000
        known = {f: doc[f] for f in ("status", "refreshed_at", "error", "failed_at") if f in doc}
        return cls(doc["access_token"].strip(), doc["refresh_token"].strip(), float(expires), **known)

    def dump(self) -> str:
        return json.dumps(asdict(self))

    def public(self) -> dict[str, Any]:
        """What may be shown (dashboard, CLI, logs): no token, fingerprints only."""
        return {
            "status": self.status,
            "expires_at": _iso(self.expires_at),
            "refreshed_at": _iso(self.refreshed_at),
            "error": self.error,
            "access_token": fingerprint(self.access_token),
        }


def _iso(t: float | None) -> str | None:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="seconds") if t else None


def set_team_oauth(store: SecretStore, team: str, credential: OAuthCredential) -> None:
    """An admin stores a team's credential: the team is switched to ``team-key`` with OAuth."""
    store.put(credential_secret(team), credential.dump())
    access = AccessStore(store)
    teams = access.teams()
    conf = {**teams.get(team, {}), "mode": "team-key", "credential": "oauth"}
    conf["credential_set_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    teams[team] = conf
    store.put(TEAMS_SECRET, json.dumps(teams))


def load(store: SecretStore, team: str) -> OAuthCredential | None:
    raw = store.get(credential_secret(team))
    return OAuthCredential.parse(raw) if raw else None


def oauth_teams(store: SecretStore) -> list[str]:
    return sorted(t for t, conf in AccessStore(store).teams().items() if conf.get("credential") == "oauth")


def request_refresh(store: SecretStore, team: str) -> None:
    """A proxy's 401 on this team's token: ask the refresher to renew it now (it may decline)."""
    raw = store.get(REQUESTS_SECRET)
    asked: dict[str, float] = json.loads(raw) if raw else {}
    if team not in asked:
        asked[team] = time.time()
        store.put(REQUESTS_SECRET, json.dumps(asked))


class RefreshFailed(Exception):
    def __init__(self, message: str, permanent: bool) -> None:
        super().__init__(message)
        self.permanent = permanent


Post = Callable[[str, dict[str, Any], float], tuple[int, dict[str, Any]]]


def http_post(url: str, body: dict[str, Any], timeout: float) -> tuple[int, dict[str, Any]]:
    """POST JSON, read JSON: (status, document). Network failures raise OSError."""
    req = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"content-type": "application/json", "accept": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as exc:
        try:
            doc = json.loads(exc.read() or b"{}")
        except ValueError:
            doc = {}
        return exc.code, doc if isinstance(doc, dict) else {}


@dataclass
class Refresher:
    store: SecretStore
    notifier: Notifier
    token_url: str = DEFAULT_TOKEN_URL
    client_id: str = DEFAULT_CLIENT_ID
    post: Post = http_post
    timeout_s: float = 30.0
    clock: Callable[[], float] = time.time

    def due(self, cred: OAuthCredential, asked: bool) -> bool:
        if cred.status != OK:
            return False  # re-login needed: only an admin's new credential clears it
        now = self.clock()
        if cred.failed_at and now - cred.failed_at < RETRY_AFTER_FAILURE_S:
            return False
        if asked:
            # A 401 right after a refresh is not the token's age: do not burn refresh tokens on it.
            return not cred.refreshed_at or now - cred.refreshed_at > RETRY_AFTER_FAILURE_S
        return cred.expires_at - now <= REFRESH_BEFORE_S

    def run_once(self) -> dict[str, str]:
        """One pass over the OAuth teams: what happened to each (``refreshed``, ``fresh``...)."""
        raw = self.store.get(REQUESTS_SECRET)
        asked: dict[str, float] = json.loads(raw) if raw else {}
        outcome: dict[str, str] = {}
        for team in oauth_teams(self.store):
            try:
                cred = load(self.store, team)
            except CredentialError as exc:
                outcome[team] = f"unreadable: {exc}"
                continue
            if cred is None:
                outcome[team] = "missing"
                continue
            if not self.due(cred, team in asked):
                pausing = cred.failed_at is not None and self.clock() - cred.failed_at < RETRY_AFTER_FAILURE_S
                outcome[team] = cred.status if cred.status != OK else "retry_later" if pausing else "fresh"
                continue
            outcome[team] = self._refresh(team, cred)
        if asked:
            # Only the requests handled: one a proxy added meanwhile waits for the next pass. (A
            # document emptied, never deleted: a deleted secret's name stays taken for a while.)
            raw = self.store.get(REQUESTS_SECRET)
            now_asked = json.loads(raw) if raw else {}
            left = {t: v for t, v in now_asked.items() if t not in asked}
            self.store.put(REQUESTS_SECRET, json.dumps(left))
        return outcome

    def _refresh(self, team: str, cred: OAuthCredential) -> str:
        began = self.clock()
        try:
            new = self._exchange(cred)
        except RefreshFailed as exc:
            failed = replace(cred, error=str(exc), failed_at=self.clock())
            if exc.permanent:
                failed = replace(failed, status=RELOGIN)
                self.notifier.notify(
                    AlertEvent(
                        kind=CREDENTIAL_FAILED,
                        level="critical",
                        team=team,
                        subject=f"team:{team}",
                        message=(
                            f"Team {team}'s Claude subscription credential was refused ({exc}); its "
                            f"requests will fail once the token expires. Sign in again and store the new "
                            f"credential with `nexus teams set-oauth {team}`."
                        ),
                        dedup_key=f"credential_failed:{team}:{fingerprint(cred.refresh_token)}",
                        facts={"expires_at": _iso(cred.expires_at)},
                    )
                )
            self._save(team, failed)
            log.warning("team %s: refresh failed (%s)", team, exc)
            return RELOGIN if exc.permanent else "failed"
        self._save(team, new)
        log.info(
            "team %s: token refreshed in %.0f ms, new token %s expires %s",
            team,
            (self.clock() - began) * 1000,
            fingerprint(new.access_token),
            _iso(new.expires_at),
        )
        return "refreshed"

    def _exchange(self, cred: OAuthCredential) -> OAuthCredential:
        body = {
            "grant_type": "refresh_token",
            "refresh_token": cred.refresh_token,
            "client_id": self.client_id,
        }
        try:
            status, doc = self.post(self.token_url, body, self.timeout_s)
        except OSError as exc:
            why = f"token endpoint unreachable: {exc.__class__.__name__}"
            raise RefreshFailed(why, permanent=False) from None
        if status == 200 and isinstance(doc.get("access_token"), str):
            expires_in = float(doc.get("expires_in") or 3600)
            now = self.clock()
            return OAuthCredential(
                access_token=doc["access_token"],
                # The refresh token rotates; keep the old one only if the endpoint sent none.
                refresh_token=doc.get("refresh_token") or cred.refresh_token,
                expires_at=now + expires_in,
                refreshed_at=now,
            )
        code = str(doc.get("error") or f"HTTP {status}")
        permanent = code in ("invalid_grant", "invalid_client", "unauthorized_client") or status in (400, 401)
        return_msg = f"{code}" + (f": {doc['error_description']}" if doc.get("error_description") else "")
        raise RefreshFailed(return_msg[:200], permanent=permanent and status < 500)

    def _save(self, team: str, cred: OAuthCredential) -> None:
        self.store.put(credential_secret(team), cred.dump())
        # Touch the teams document: proxies watch its version and re-read the credential.
        access = AccessStore(self.store)
        teams = access.teams()
        if team in teams:
            teams[team] = {**teams[team], "credential_version": int(self.clock() * 1000)}
            self.store.put(TEAMS_SECRET, json.dumps(teams))
