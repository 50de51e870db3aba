"""Browser sessions for the dashboard, kept in PostgreSQL so that logging out ends a session for good
on every dashboard process (Lambda instances share nothing else).

The cookie holds a random token and nothing else; the database keeps its SHA-256, so a copy of the
table cannot be replayed as cookies. Each session records which dashboard key issued it (as an HMAC
fingerprint, never the key): rotating the key ends every session. Each carries its own CSRF token;
state-changing requests made with the cookie must echo it (``X-CSRF-Token`` header or ``csrf_token``
form field). Bearer-key API clients carry no ambient credential, so CSRF does not apply to them.

Cost per request: one indexed statement (``_LOOKUP``), which also refreshes ``last_seen_at`` at most
once a minute.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime

import psycopg

COOKIE = "nexus_session"
MAX_AGE_S = 12 * 3600
SEEN_EVERY_S = 60
TOKEN_MAX = 100  # longer cookies are not ours: refused without a query
KEEP_ENDED_S = 30 * 86_400  # expired sessions stay listed this long, then are deleted
_CONTEXT = b"nexus-dashboard-session-v2"


@dataclass(frozen=True, slots=True)
class Session:
    token_hash: bytes
    principal: str
    csrf: str
    expires_at: datetime


def key_fingerprint(dashboard_key: str) -> bytes:
    return hmac.new(dashboard_key.encode(), _CONTEXT, hashlib.sha256).digest()


def _hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def issue(
    conn: psycopg.Connection,
    dashboard_key: str,
    principal: str,
    client_address: str | None,
    user_agent: str | None,
) -> tuple[str, Session]:
    """A new session: the cookie's token (shown only here) and the session. Committed at once, so
    the browser's next request finds it on any dashboard process."""
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(24)
    row = conn.execute(
        "INSERT INTO dashboard_sessions (token_hash, principal, key_fingerprint, csrf_token, expires_at,"
        " client_address, user_agent) VALUES (%s, %s, %s, %s, now() + make_interval(secs => %s), %s, %s)"
        " RETURNING expires_at",
        (
            _hash(token),
            principal,
            key_fingerprint(dashboard_key),
            csrf,
            MAX_AGE_S,
            client_address,
            (user_agent or "")[:500] or None,
        ),
    ).fetchone()
    assert row is not None
    conn.commit()
    return token, Session(_hash(token), principal, csrf, row[0])


_LOOKUP = """
WITH found AS (
    SELECT token_hash, principal, csrf_token, expires_at, last_seen_at FROM dashboard_sessions
    WHERE token_hash = %(hash)s AND key_fingerprint = %(key)s AND revoked_at IS NULL AND expires_at > now()
), seen AS (
    UPDATE dashboard_sessions s SET last_seen_at = now() FROM found
    WHERE s.token_hash = found.token_hash AND found.last_seen_at < now() - make_interval(secs => %(every)s)
    RETURNING 1
)
SELECT principal, csrf_token, expires_at, (SELECT count(*) FROM seen) FROM found
"""


def lookup(conn: psycopg.Connection, token: str, dashboard_key: str) -> Session | None:
    """The live session the cookie's token names (issued under this dashboard key, not logged out,
    not expired), or None."""
    if not token or len(token) > TOKEN_MAX:
        return None
    row = conn.execute(
        _LOOKUP, {"hash": _hash(token), "key": key_fingerprint(dashboard_key), "every": SEEN_EVERY_S}
    ).fetchone()
    if row is None:
        return None
    principal, csrf, expires_at, touched = row
    if touched:
        conn.commit()  # release the row now, not at the end of the request
    return Session(_hash(token), principal, csrf, expires_at)


def revoke(conn: psycopg.Connection, session: Session) -> None:
    conn.execute(
        "UPDATE dashboard_sessions SET revoked_at = now() WHERE token_hash = %s AND revoked_at IS NULL",
        (session.token_hash,),
    )
    conn.commit()


def forget_old(conn: psycopg.Connection) -> None:
    """Delete sessions that expired over ``KEEP_ENDED_S`` ago, logged out or not (run at login)."""
    conn.execute(
        "DELETE FROM dashboard_sessions WHERE expires_at < now() - make_interval(secs => %s)", (KEEP_ENDED_S,)
    )
