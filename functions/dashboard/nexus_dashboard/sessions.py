"""Browser sessions for the dashboard: an HMAC-signed cookie that never holds the dashboard key.

The signing key is derived from the dashboard key, so rotating the dashboard key ends every session.
Each session carries its own CSRF token; state-changing requests made with the cookie must echo it
(``X-CSRF-Token`` header or ``csrf_token`` form field). Bearer-key API clients carry no ambient
credential, so CSRF does not apply to them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

import orjson

COOKIE = "nexus_session"
MAX_AGE_S = 12 * 3600
_CONTEXT = b"nexus-dashboard-session-v1"


@dataclass(frozen=True)
class Session:
    issued_at: int
    csrf: str


def _signing_key(dashboard_key: str) -> bytes:
    return hmac.new(dashboard_key.encode(), _CONTEXT, hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def issue(dashboard_key: str, now: float | None = None) -> tuple[str, Session]:
    session = Session(int(now if now is not None else time.time()), secrets.token_urlsafe(24))
    payload = _b64(orjson.dumps({"iat": session.issued_at, "csrf": session.csrf}))
    sig = _b64(hmac.new(_signing_key(dashboard_key), payload.encode(), hashlib.sha256).digest())
    return f"{payload}.{sig}", session


def verify(cookie: str, dashboard_key: str, now: float | None = None) -> Session | None:
    """The session if the cookie is authentic and not expired, else None (never raises)."""
    payload, _, sig = cookie.partition(".")
    expected = _b64(hmac.new(_signing_key(dashboard_key), payload.encode(), hashlib.sha256).digest())
    if not sig or not hmac.compare_digest(sig.encode(), expected.encode()):
        return None
    try:
        doc = orjson.loads(_unb64(payload))
        session = Session(int(doc["iat"]), str(doc["csrf"]))
    except (ValueError, KeyError, TypeError, orjson.JSONDecodeError):
        return None
    age = (now if now is not None else time.time()) - session.issued_at
    return session if 0 <= age <= MAX_AGE_S else None
