"""Nexus client keys and per-team upstream access.

A key looks like ``nxk_<id>_<secret>``. Only its SHA-256 is stored (keys are 190-bit random, so a
plain hash is enough; no slow KDF needed). The id part makes lookup a dict probe.

Teams choose one mode:
- ``passthrough``: the client's own Anthropic credentials go upstream; the client proves membership
  with its Nexus key in the ``X-Nexus-Key`` header.
- ``team-key``: the client sends its Nexus key as ``x-api-key`` (or Bearer) and the proxy sends the
  team's Anthropic API key upstream.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from nexus.headers import NEXUS_KEY_HEADER
from nexus.secret_store import SecretStore

KEYS_SECRET = "nexus/keys"
TEAMS_SECRET = "nexus/teams"
DASHBOARD_KEY_SECRET = "nexus/dashboard-key"
KEY_PREFIX = "nxk_"
MODES = ("passthrough", "team-key")
MEMORY_MODES = ("off", "on", "per-request")  # the gateway's memory (nexus.memory.policy)
FORCED_REFRESH_S = 1.0


class UnknownKey(Exception):
    """No key with this id in the access store (revoking one that was never created)."""

    def __init__(self, key_id: str) -> None:
        super().__init__(f"no key with id {key_id!r}")
        self.key_id = key_id


def team_api_key_secret(team: str) -> str:
    return f"nexus/team/{team}/anthropic-api-key"


@dataclass(slots=True)
class KeyRecord:
    id: str
    hash: str
    team: str
    user: str
    created_at: str
    revoked_at: str | None = None
    name: str | None = None
    memory: str | None = None  # the gateway's memory for this key (MEMORY_MODES); None: the team's


@dataclass(frozen=True, slots=True)
class Principal:
    team: str | None
    user: str | None
    key_id: str | None
    mode: str  # passthrough | team-key | open (keys optional on localhost)


# Fields a key's document holds only when set: a document without them reads as before.
_OPTIONAL = frozenset({"memory"})
_FIELDS = frozenset(KeyRecord.__dataclass_fields__)


def _record(doc: dict[str, Any]) -> KeyRecord:
    """A key's document as a record; fields a newer Nexus wrote are ignored, not fatal."""
    return KeyRecord(**{k: v for k, v in doc.items() if k in _FIELDS})


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def parse_key_id(key: str) -> str | None:
    if not key.startswith(KEY_PREFIX):
        return None
    key_id, sep, rest = key[len(KEY_PREFIX) :].partition("_")
    return key_id if sep and key_id and rest else None


class AccessStore:
    """Reads and writes keys and team settings in a SecretStore."""

    def __init__(self, store: SecretStore) -> None:
        self.store = store

    def _load(self, name: str) -> dict[str, Any]:
        raw = self.store.get(name)
        return json.loads(raw) if raw else {}

    def keys(self) -> dict[str, KeyRecord]:
        return {k: _record(v) for k, v in self._load(KEYS_SECRET).items()}

    def teams(self) -> dict[str, dict[str, Any]]:
        return self._load(TEAMS_SECRET)

    def create_key(self, team: str, user: str, name: str | None = None) -> tuple[str, KeyRecord]:
        key_id = secrets.token_hex(5)
        key = f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(24)}"
        rec = KeyRecord(id=key_id, hash=_hash(key), team=team, user=user, created_at=_now(), name=name)
        keys = self._load(KEYS_SECRET)
        keys[key_id] = {k: v for k, v in asdict(rec).items() if v is not None or k not in _OPTIONAL}
        self.store.put(KEYS_SECRET, json.dumps(keys))
        teams = self.teams()
        if team not in teams:
            self.set_team(team, "passthrough")
        return key, rec

    def revoke_key(self, key_id: str) -> KeyRecord:
        keys = self._load(KEYS_SECRET)
        if key_id not in keys:
            raise UnknownKey(key_id)
        keys[key_id]["revoked_at"] = keys[key_id].get("revoked_at") or _now()
        self.store.put(KEYS_SECRET, json.dumps(keys))
        return _record(keys[key_id])

    def set_team(self, team: str, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}")
        teams = self.teams()
        teams[team] = {**teams.get(team, {}), "mode": mode}
        self.store.put(TEAMS_SECRET, json.dumps(teams))

    def set_team_request_cap(self, team: str, usd: float | None) -> None:
        """The most one gateway request of the team may spend (None: the gateway's default)."""
        if usd is not None and usd <= 0:
            raise ValueError("the cap must be a positive number of US dollars")
        teams = self.teams()
        conf = {**teams.get(team, {"mode": "passthrough"})}
        if usd is None:
            conf.pop("gateway_request_cap_usd", None)
        else:
            conf["gateway_request_cap_usd"] = usd
        teams[team] = conf
        self.store.put(TEAMS_SECRET, json.dumps(teams))

    def set_team_memory(
        self,
        team: str,
        mode: str | None = None,
        sharing: bool | None = None,
        keep_days: int | None = None,
    ) -> dict[str, Any]:
        """The gateway's memory for the team's keys (``mode``: MEMORY_MODES), whether teammates
        recall each other's turns (``sharing``) and how many days a turn is kept (``keep_days``, 0:
        for good); None leaves a setting as it is. Returns the team's settings."""
        if mode is not None and mode not in MEMORY_MODES:
            raise ValueError(f"memory must be one of {', '.join(MEMORY_MODES)}")
        if keep_days is not None and not 0 <= keep_days <= 36_500:
            raise ValueError(
                "keep days must be a whole number of days from 1 to 36500, or 0 to keep for good"
            )
        teams = self.teams()
        conf = {**teams.get(team, {"mode": "passthrough"})}
        if mode is not None:
            conf["memory"] = mode
        if sharing is not None:
            conf["memory_sharing"] = sharing
        if keep_days == 0:
            conf.pop("memory_keep_days", None)
        elif keep_days is not None:
            conf["memory_keep_days"] = keep_days
        teams[team] = conf
        self.store.put(TEAMS_SECRET, json.dumps(teams))
        return conf

    def set_key_memory(self, key_id: str, mode: str | None) -> KeyRecord:
        """The gateway's memory for one key (MEMORY_MODES), or None to follow its team's."""
        if mode is not None and mode not in MEMORY_MODES:
            raise ValueError(f"memory must be one of {', '.join(MEMORY_MODES)}")
        keys = self._load(KEYS_SECRET)
        if key_id not in keys:
            raise UnknownKey(key_id)
        if mode is None:
            keys[key_id].pop("memory", None)
        else:
            keys[key_id]["memory"] = mode
        self.store.put(KEYS_SECRET, json.dumps(keys))
        return _record(keys[key_id])

    def set_team_api_key(self, team: str, api_key: str) -> None:
        self.store.put(team_api_key_secret(team), api_key)
        # Touch the team document: proxies watch its version, so a rotated key is picked up at their
        # next check instead of whenever their cache happens to be dropped.
        teams = self.teams()
        conf = {k: v for k, v in teams.get(team, {}).items() if k != "credential"}  # an API key again
        teams[team] = {**conf, "api_key_set_at": _now()}
        self.store.put(TEAMS_SECRET, json.dumps(teams))


class AuthError(Exception):
    """The request's credentials are missing or wrong; the message is safe to show the client."""


@dataclass(slots=True)
class Grant:
    principal: Principal
    # Header changes to apply before forwarding: names to drop, and (name, value) pairs to set.
    drop: tuple[str, ...]
    set: tuple[tuple[str, str], ...]
    credential: str | None  # the upstream credential in use (for the account fingerprint only)


class Authenticator:
    """Decides, per request, who is calling and which credential goes upstream.

    The key and team documents are cached in memory and reloaded when the store's version token
    changes, checked at most once per ``refresh_s``: revocations apply within that interval.
    """

    def __init__(self, store: SecretStore, require_keys: bool, refresh_s: float = 1.0) -> None:
        self.access = AccessStore(store)
        self.store = store
        self.require_keys = require_keys
        self.refresh_s = refresh_s
        self._checked = 0.0
        self._version: object = object()
        self._keys: dict[str, KeyRecord] = {}
        self._teams: dict[str, dict[str, Any]] = {}
        self._team_keys: dict[str, str | None] = {}
        self._asked: dict[str, float] = {}

    def _refresh(self, force: bool = False) -> None:
        now = time.monotonic()
        # With a remote store (long refresh_s), a forced check (an unknown key id) runs at most once a
        # second: random key ids must not each become a Secrets Manager call (billed, throttled).
        # Locally the check is a stat and a brand-new key must work at once.
        forced_every = FORCED_REFRESH_S if self.refresh_s > FORCED_REFRESH_S else 0.0
        if now - self._checked < (forced_every if force else self.refresh_s):
            return
        self._checked = now
        version = (self.store.version(KEYS_SECRET), self.store.version(TEAMS_SECRET))
        if version == self._version:
            return
        self._version = version
        self._keys = self.access.keys()
        self._teams = self.access.teams()
        self._team_keys = {}

    def _team_api_key(self, team: str) -> str | None:
        if team not in self._team_keys:
            self._team_keys[team] = self.store.get(team_api_key_secret(team))
        return self._team_keys[team]

    def _team_oauth_token(self, team: str) -> str:
        """The team's current OAuth access token (read only: the refresher is its one writer)."""
        from nexus.oauth import RELOGIN, CredentialError, credential_secret, load

        cached = self._team_keys.get(credential_secret(team))
        if cached is None:
            try:
                cred = load(self.store, team)
            except CredentialError:
                cred = None
            if cred is None:
                raise AuthError(f"team {team!r} has no usable Claude subscription credential configured")
            if cred.status == RELOGIN and cred.expires_at <= time.time():
                raise AuthError(
                    f"team {team!r}'s Claude subscription credential needs a new sign-in "
                    f"(an admin runs `nexus teams set-oauth {team}`)"
                )
            cached = self._team_keys[credential_secret(team)] = cred.access_token
        return cached

    def ask_refresh(self, team: str | None) -> bool:
        """The upstream refused this team's OAuth token (401): ask the refresher for an early
        refresh, at most once a minute per team from this process. True if asked."""
        if not team or self._teams.get(team, {}).get("credential") != "oauth":
            return False
        now = time.monotonic()
        if now - self._asked.get(team, -3600.0) < 60:
            return False
        self._asked[team] = now
        from nexus.oauth import request_refresh

        request_refresh(self.store, team)
        return True

    def _verify(self, key: str) -> KeyRecord:
        key_id = parse_key_id(key)
        if key_id and key_id not in self._keys:
            self._refresh(force=True)  # a key created a moment ago works at once (the check is a stat)
        rec = self._keys.get(key_id) if key_id else None
        if rec is None or not hmac.compare_digest(rec.hash, _hash(key)):
            raise AuthError("invalid Nexus key")
        if rec.revoked_at:
            raise AuthError("this Nexus key has been revoked")
        return rec

    def identify(self, key: str) -> tuple[KeyRecord, dict[str, Any]]:
        """A valid, unrevoked key's record and its team's settings (``mode`` defaulted): the
        gateway's check, which decides itself what to send the proxy. Raises AuthError."""
        self._refresh()
        rec = self._verify(key.strip())
        return rec, {"mode": "passthrough", **self._teams.get(rec.team, {})}

    def authorize(self, headers: dict[str, str]) -> Grant:
        """``headers``: lower-cased request headers. Raises AuthError with a client-safe message."""
        self._refresh()
        nexus_key = headers.get(NEXUS_KEY_HEADER)
        api_key = headers.get("x-api-key")
        bearer = headers.get("authorization", "")
        bearer_token = bearer[7:].strip() if bearer[:7].lower() == "bearer " else None
        client_cred = api_key or bearer_token

        if nexus_key is not None:
            rec = self._verify(nexus_key.strip())
            mode = self._teams.get(rec.team, {}).get("mode", "passthrough")
            if mode != "passthrough":
                raise AuthError(
                    f"team {rec.team!r} uses a team key: send your Nexus key as x-api-key, not X-Nexus-Key"
                )
            if not client_cred:
                raise AuthError("pass-through mode: send your own Anthropic credentials with X-Nexus-Key")
            if client_cred.startswith(KEY_PREFIX):
                raise AuthError(
                    "pass-through mode: your Nexus key goes only in X-Nexus-Key, "
                    "never as the Anthropic API key"
                )
            return Grant(
                Principal(rec.team, rec.user, rec.id, "passthrough"), (NEXUS_KEY_HEADER,), (), client_cred
            )

        if client_cred and client_cred.startswith(KEY_PREFIX):
            rec = self._verify(client_cred)
            mode = self._teams.get(rec.team, {}).get("mode", "passthrough")
            if mode != "team-key":
                raise AuthError(
                    f"team {rec.team!r} uses pass-through: send your Anthropic credentials and put "
                    "your Nexus key in the X-Nexus-Key header (ANTHROPIC_CUSTOM_HEADERS)"
                )
            if self._teams.get(rec.team, {}).get("credential") == "oauth":
                token = self._team_oauth_token(rec.team)
                beta = headers.get("anthropic-beta", "")
                betas = [b.strip() for b in beta.split(",") if b.strip()]
                from nexus.oauth import OAUTH_BETA

                if OAUTH_BETA not in betas:
                    betas.append(OAUTH_BETA)
                return Grant(
                    Principal(rec.team, rec.user, rec.id, "team-key"),
                    ("authorization", "x-api-key", "anthropic-beta"),
                    (("authorization", f"Bearer {token}"), ("anthropic-beta", ",".join(betas))),
                    token,
                )
            upstream_key = self._team_api_key(rec.team)
            if not upstream_key:
                raise AuthError(f"team {rec.team!r} has no upstream API key configured")
            return Grant(
                Principal(rec.team, rec.user, rec.id, "team-key"),
                ("authorization", "x-api-key"),
                (("x-api-key", upstream_key),),
                upstream_key,
            )

        if self.require_keys:
            raise AuthError(
                "missing Nexus key: send it as X-Nexus-Key (pass-through teams) "
                "or as x-api-key (team-key teams)"
            )
        return Grant(Principal(None, None, None, "open"), (), (), client_cred)
