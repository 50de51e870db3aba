"""Teams' upstream credentials as the dashboard shows them: which kind, its state, expiry and last
refresh, and a fingerprint; never the secret. Storing an OAuth credential goes through
``nexus.oauth.set_team_oauth``, the same code as ``nexus teams set-oauth``."""

from __future__ import annotations

import time

from nexus.access import AccessStore, team_api_key_secret
from nexus.headers import fingerprint
from nexus.oauth import MAX_EXPIRES, CredentialError, OAuthCredential, load, set_team_oauth
from pydantic import BaseModel, ConfigDict, Field

from nexus_dashboard.audit_log import Auditor
from nexus_dashboard.keys import KeyInputError, one_line
from nexus_dashboard.schemas import TeamCredential

Token = Field(min_length=1, max_length=8192, pattern=r"\S")


class OAuthDocument(BaseModel):
    """A Claude subscription credential, as a signed-in `claude` keeps it."""

    model_config = ConfigDict(extra="forbid")
    access_token: str = Token
    refresh_token: str = Token
    expires_at: float = Field(
        gt=0,
        le=MAX_EXPIRES,
        strict=True,  # a number: JSON true is not 1 second after the epoch
        description="epoch seconds (values above 1e11 are read as milliseconds)",
    )


class CredentialInputError(ValueError):
    """A credential the dashboard refuses; the message says what to fix (and holds no secret)."""


def _oauth(access: AccessStore, team: str, mode: str) -> TeamCredential:
    problem: str | None = None
    try:
        cred = load(access.store, team)
    except CredentialError as exc:
        cred, problem = None, f"unreadable: {exc}"
    if cred is None and problem is None:
        problem = "no credential stored"
    if cred is None:
        return _row(team, mode, "oauth", "missing", error=problem)
    shown = cred.public()
    status = cred.status
    if status == "ok" and cred.expires_at <= time.time():
        status = "expired"
    return _row(
        team,
        mode,
        "oauth",
        status,
        fingerprint=shown["access_token"],
        expires_at=shown["expires_at"],
        refreshed_at=shown["refreshed_at"],
        error=cred.error,
    )


def _row(team: str, mode: str, kind: str | None, status: str, **rest: str | None) -> TeamCredential:
    return {
        "team": team,
        "mode": mode,
        "kind": kind,
        "status": status,
        "fingerprint": rest.get("fingerprint"),
        "expires_at": rest.get("expires_at"),
        "refreshed_at": rest.get("refreshed_at"),
        "set_at": rest.get("set_at"),
        "error": rest.get("error"),
    }


def list_credentials(access: AccessStore) -> list[TeamCredential]:
    out = []
    for team, conf in sorted(access.teams().items()):
        mode = str(conf.get("mode", "passthrough"))
        if conf.get("credential") == "oauth":
            out.append(_oauth(access, team, mode))
        elif conf.get("api_key_set_at"):
            key = access.store.get(team_api_key_secret(team))
            out.append(
                _row(
                    team,
                    mode,
                    "api-key",
                    "ok" if key else "missing",
                    fingerprint=fingerprint(key) if key else None,
                    set_at=conf["api_key_set_at"],
                )
            )
        else:  # pass-through: members bring their own credentials
            out.append(_row(team, mode, None, "members' own" if mode == "passthrough" else "missing"))
    return out


def store_oauth(
    access: AccessStore, team: str, document: str | dict[str, object], log: Auditor
) -> TeamCredential:
    """Store a team's OAuth credential (never logged: the audit entry names the team and expiry)."""
    try:
        team = one_line(team, "team")
    except KeyInputError as exc:
        raise CredentialInputError(str(exc)) from None
    try:
        cred = OAuthCredential.parse(document)
    except CredentialError as exc:
        raise CredentialInputError(f"credential: {exc}") from None
    set_team_oauth(access.store, team, cred)
    stored = next(c for c in list_credentials(access) if c["team"] == team)
    log("credential.store", team, {"kind": "oauth", "expires_at": stored.get("expires_at")})
    return stored
