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
from typing import Any

import psycopg
from psycopg.rows import dict_row

from nexus_dashboard.scope import Principal, principal

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
    who: Principal  # the role and teams it was issued with (a role change revokes it)


def key_fingerprint(dashboard_key: str) -> bytes:
    return hmac.new(dashboard_key.encode(), _CONTEXT, hashlib.sha256).digest()


def _hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def issue(
    conn: psycopg.Connection,
    dashboard_key: str,
    who: Principal,
    client_address: str | None,
    user_agent: str | None,
) -> tuple[str, Session]:
    """A new session: the cookie's token (shown only here) and the session. Committed at once, so
    the browser's next request finds it on any dashboard process."""
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(24)
    row = conn.execute(
        "INSERT INTO dashboard_sessions (token_hash, principal, role, teams, key_fingerprint, csrf_token,"
        " expires_at, client_address, user_agent)"
        " VALUES (%s, %s, %s, %s, %s, %s, now() + make_interval(secs => %s), %s, %s) RETURNING expires_at",
        (
            _hash(token),
            who.name,
            who.role,
            None if who.teams is None else sorted(who.teams),
            key_fingerprint(dashboard_key),
            csrf,
            MAX_AGE_S,
            client_address,
            (user_agent or "")[:500] or None,
        ),
    ).fetchone()
    assert row is not None
    conn.commit()
    return token, Session(_hash(token), who.name, csrf, row[0], who)


_LOOKUP = """
WITH found AS (
    SELECT token_hash, principal, role, teams, csrf_token, expires_at, last_seen_at FROM dashboard_sessions
    WHERE token_hash = %(hash)s AND key_fingerprint = %(key)s AND revoked_at IS NULL AND expires_at > now()
), seen AS (
    UPDATE dashboard_sessions s SET last_seen_at = now() FROM found
    WHERE s.token_hash = found.token_hash AND found.last_seen_at < now() - make_interval(secs => %(every)s)
    RETURNING 1
)
SELECT principal, role, teams, csrf_token, expires_at, (SELECT count(*) FROM seen) FROM found
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
    name, role, teams, csrf, expires_at, touched = row
    if touched:
        conn.commit()  # release the row now, not at the end of the request
    return Session(_hash(token), name, csrf, expires_at, principal(name, role, teams))


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


def listed(conn: psycopg.Connection, name: str | None) -> list[dict[str, Any]]:
    """Sessions of one principal (``None``: everyone's), live first, newest first; ``id`` is the
    hex SHA-256 of the cookie's token (what the table keys it by; it cannot be turned into a cookie)."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT encode(token_hash, 'hex') AS id, principal, role, teams, created_at, expires_at,"
            " last_seen_at, revoked_at, client_address, user_agent,"
            " (revoked_at IS NULL AND expires_at > now()) AS live FROM dashboard_sessions"
            " WHERE %(name)s::text IS NULL OR principal = %(name)s"
            " ORDER BY (revoked_at IS NULL AND expires_at > now()) DESC, created_at DESC LIMIT 200",
            {"name": name},
        ).fetchall()


def revoke_id(conn: psycopg.Connection, session_id: str, name: str | None) -> str | None:
    """End the session with this id (of principal ``name``, or anyone's for ``None``): the principal
    whose live session it was, or None when there was none."""
    if len(session_id) != 64:
        return None
    try:
        token_hash = bytes.fromhex(session_id)
    except ValueError:
        return None
    found = conn.execute(
        "UPDATE dashboard_sessions SET revoked_at = now() WHERE token_hash = %s AND revoked_at IS NULL"
        " AND expires_at > now() AND (%s::text IS NULL OR principal = %s) RETURNING principal",
        (token_hash, name, name),
    ).fetchone()
    conn.commit()
    return None if found is None else str(found[0])


def revoke_all(conn: psycopg.Connection, name: str) -> int:
    """End every session of a principal (a user removed, or given another role); not committed, so
    it goes with the change that calls for it."""
    cur = conn.execute(
        "UPDATE dashboard_sessions SET revoked_at = now() WHERE principal = %s AND revoked_at IS NULL"
        " AND expires_at > now()",
        (name,),
    )
    return cur.rowcount
