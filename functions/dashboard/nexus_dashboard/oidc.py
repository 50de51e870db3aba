"""Signing in through an OpenID Connect provider (ADR 0025): the authorization-code flow with PKCE
against a configured issuer (a Cognito user pool in the stack, or any external provider).

``/login/oidc`` sends the browser to the provider with a fresh ``state``, ``nonce`` and PKCE
verifier, kept in a short-lived cookie signed with a key derived from the dashboard key; the
callback checks ``state``, trades the code for tokens at the token endpoint (with the verifier), and
accepts the ID token only if its signature verifies against the issuer's JWKS and its issuer,
audience, expiry and nonce are right. The person's role and teams come from a claim (``cognito:groups``
by default): a group named ``admin``, ``member`` or ``viewer`` gives the role (the highest wins) and
each group ``team:<name>`` a team. Someone in none of the role groups is refused. The session that
follows is the same server-side session as a local user's, named ``oidc:<email>`` (a verified
e-mail) or ``oidc:<sub>``.

The discovery document and the JWKS are fetched once per process and kept an hour (a key the JWKS
does not hold yet makes PyJWT fetch it again).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

import jwt
import orjson

from nexus_dashboard.scope import ROLES, Principal, Role

COOKIE = "nexus_oidc"
FLOW_S = 600  # a sign-in must come back from the provider within this
DISCOVERY_TTL_S = 3600
TIMEOUT_S = 10
ALGORITHMS = ["RS256", "RS384", "RS512", "ES256", "ES384", "PS256"]
LEEWAY_S = 60
_CONTEXT = b"nexus-dashboard-oidc-v1"


class SignInError(Exception):
    """The sign-in cannot go on; the message is for the person (never a token or a secret)."""

    def __init__(self, message: str, status: int = 401) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class Config:
    issuer: str
    client_id: str
    client_secret: str | None = None  # a confidential client; None: a public client (PKCE only)
    groups_claim: str = "cognito:groups"
    label: str = "your identity provider"
    scopes: str = "openid email profile"


@dataclass(frozen=True, slots=True)
class Provider:
    authorization_endpoint: str
    token_endpoint: str
    jwks: jwt.PyJWKClient


_providers: dict[str, tuple[float, Provider]] = {}
_lock = threading.Lock()


def _get_json(url: str, data: bytes | None = None, headers: dict[str, str] | None = None) -> Any:
    req = urllib.request.Request(url, data=data, headers={"accept": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=TIMEOUT_S) as resp:
            return orjson.loads(resp.read())
    except urllib.error.HTTPError as exc:
        raise SignInError(f"the identity provider refused: HTTP {exc.code} from {url}", 502) from None
    except (urllib.error.URLError, OSError, orjson.JSONDecodeError) as exc:
        raise SignInError(f"the identity provider did not answer ({url}): {exc}", 502) from None


def provider(config: Config) -> Provider:
    """The issuer's endpoints and keys, from its discovery document (kept an hour)."""
    with _lock:
        found = _providers.get(config.issuer)
        if found and time.monotonic() - found[0] < DISCOVERY_TTL_S:
            return found[1]
    doc = _get_json(config.issuer.rstrip("/") + "/.well-known/openid-configuration")
    if not isinstance(doc, dict) or doc.get("issuer") != config.issuer:
        raise SignInError("the identity provider's discovery document names another issuer", 502)
    try:
        made = Provider(
            str(doc["authorization_endpoint"]),
            str(doc["token_endpoint"]),
            jwt.PyJWKClient(
                str(doc["jwks_uri"]), cache_keys=True, lifespan=DISCOVERY_TTL_S, timeout=TIMEOUT_S
            ),
        )
    except KeyError as exc:
        raise SignInError(f"the identity provider's discovery document has no {exc}", 502) from None
    with _lock:
        _providers[config.issuer] = (time.monotonic(), made)
    return made


# The flow's state, in a cookie the browser brings back to the callback.


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(dashboard_key: str, payload: str) -> str:
    key = hmac.new(dashboard_key.encode(), _CONTEXT, hashlib.sha256).digest()
    return _b64(hmac.new(key, payload.encode(), hashlib.sha256).digest())


@dataclass(frozen=True, slots=True)
class Flow:
    state: str
    nonce: str
    verifier: str

    @property
    def challenge(self) -> str:
        return _b64(hashlib.sha256(self.verifier.encode()).digest())


def start(config: Config, dashboard_key: str, redirect_uri: str) -> tuple[str, str]:
    """Where to send the browser, and the cookie value that carries the flow's secrets."""
    flow = Flow(secrets.token_urlsafe(24), secrets.token_urlsafe(24), secrets.token_urlsafe(48))
    payload = _b64(
        orjson.dumps({"s": flow.state, "n": flow.nonce, "v": flow.verifier, "e": int(time.time()) + FLOW_S})
    )
    query = urllib.parse.urlencode(
        {
            "response_type": "code",
            "client_id": config.client_id,
            "redirect_uri": redirect_uri,
            "scope": config.scopes,
            "state": flow.state,
            "nonce": flow.nonce,
            "code_challenge": flow.challenge,
            "code_challenge_method": "S256",
        }
    )
    endpoint = provider(config).authorization_endpoint
    return f"{endpoint}{'&' if '?' in endpoint else '?'}{query}", f"{payload}.{_mac(dashboard_key, payload)}"


def _flow(cookie: str | None, dashboard_key: str) -> Flow:
    payload, _, mac = (cookie or "").partition(".")
    if not payload or not hmac.compare_digest(mac.encode(), _mac(dashboard_key, payload).encode()):
        raise SignInError(
            "this sign-in was not started here (or the browser dropped its cookie): start again", 400
        )
    data = orjson.loads(_unb64(payload))
    if int(data["e"]) < time.time():
        raise SignInError("this sign-in took too long: start again", 400)
    return Flow(str(data["s"]), str(data["n"]), str(data["v"]))


def finish(
    config: Config, dashboard_key: str, cookie: str | None, params: dict[str, str], redirect_uri: str
) -> Principal:
    """The principal an authorization response signs in, or SignInError."""
    flow = _flow(cookie, dashboard_key)
    if "error" in params:
        raise SignInError(
            f"the identity provider said: {params['error']} {params.get('error_description', '')}".strip()
        )
    if not hmac.compare_digest(params.get("state", "").encode(), flow.state.encode()):
        raise SignInError("the sign-in's state does not match: start again", 400)
    code = params.get("code")
    if not code:
        raise SignInError("the identity provider sent no code", 400)
    p = provider(config)
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect_uri,
        "code_verifier": flow.verifier,
    }
    headers = {"content-type": "application/x-www-form-urlencoded"}
    if config.client_secret:
        basic = f"{urllib.parse.quote(config.client_id)}:{urllib.parse.quote(config.client_secret)}"
        headers["authorization"] = "Basic " + base64.b64encode(basic.encode()).decode()
    else:
        form["client_id"] = config.client_id
    tokens = _get_json(p.token_endpoint, urllib.parse.urlencode(form).encode(), headers)
    id_token = tokens.get("id_token") if isinstance(tokens, dict) else None
    if not isinstance(id_token, str):
        raise SignInError("the identity provider sent no ID token", 502)
    return principal_of(config, verify(config, p, id_token, flow.nonce))


def verify(config: Config, p: Provider, id_token: str, nonce: str) -> dict[str, Any]:
    """The ID token's claims, if its signature, issuer, audience, expiry and nonce are right."""
    try:
        key = p.jwks.get_signing_key_from_jwt(id_token)
        claims: dict[str, Any] = jwt.decode(
            id_token,
            key.key,
            algorithms=ALGORITHMS,
            audience=config.client_id,
            issuer=config.issuer,
            leeway=LEEWAY_S,
            options={"require": ["exp", "iat", "iss", "aud", "sub"]},
        )
    except jwt.PyJWKClientError as exc:
        raise SignInError(f"the ID token's signing key is not the issuer's: {exc}") from None
    except jwt.InvalidTokenError as exc:
        raise SignInError(f"the ID token was refused: {exc}") from None
    if not hmac.compare_digest(str(claims.get("nonce", "")).encode(), nonce.encode()):
        raise SignInError("the ID token was refused: its nonce is not this sign-in's")
    aud = claims.get("aud")
    if isinstance(aud, list) and len(aud) > 1 and claims.get("azp") != config.client_id:
        raise SignInError("the ID token was refused: it was issued to another client (azp)")
    return claims


def principal_of(config: Config, claims: dict[str, Any]) -> Principal:
    groups = claims.get(config.groups_claim) or []
    if isinstance(groups, str):
        groups = groups.replace(",", " ").split()
    names = {str(g) for g in groups}
    roles = [r for r in ROLES if r in names]  # ROLES is ordered admin, member, viewer
    if not roles:
        raise SignInError(
            f"you are signed in with the identity provider but have no dashboard role: ask an admin to add "
            f"you to the group admin, member or viewer ({config.groups_claim})",
            403,
        )
    role: Role = roles[0]
    teams = frozenset(g.removeprefix("team:") for g in names if g.startswith("team:") and len(g) > 5)
    email = claims.get("email")
    who = (
        email
        if isinstance(email, str) and email and claims.get("email_verified") in (True, "true")
        else claims["sub"]
    )
    return Principal(f"oidc:{who}", role, None if role == "admin" else teams)
