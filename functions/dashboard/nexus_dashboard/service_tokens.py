"""Service tokens: API credentials for automation with their own role, teams and expiry (ADR 0025).

A token is ``nxt_<id>_<secret>``, sent as ``Authorization: Bearer``; only its SHA-256 is kept, looked
up by id. Created and revoked by admins (``/api/tokens``), each action in the audit log. The dashboard
key stays what it was: an admin credential without expiry.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from datetime import datetime
from typing import Any

import psycopg
from nexus import audit
from psycopg.rows import dict_row

from nexus_dashboard.scope import ROLES, Principal, principal

PREFIX = "nxt_"
MAX_DAYS = 366


class TokenInputError(ValueError):
    pass


def _hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def parse_id(token: str) -> str | None:
    if not token.startswith(PREFIX):
        return None
    token_id, sep, secret = token[len(PREFIX) :].partition("_")
    return token_id if sep and secret and re.fullmatch(r"[0-9a-f]{1,32}", token_id) else None


def resolve(conn: psycopg.Connection, token: str) -> Principal | None:
    """The principal a live token stands for, or None (unknown, wrong secret, revoked, expired)."""
    token_id = parse_id(token)
    if token_id is None:
        return None
    row = conn.execute(
        "SELECT secret_hash, role, teams FROM dashboard_tokens"
        " WHERE id = %s AND revoked_at IS NULL AND expires_at > now()",
        (token_id,),
    ).fetchone()
    if row is None or not hmac.compare_digest(bytes(row[0]), _hash(token)):
        return None
    return principal(f"token:{token_id}", row[1], row[2])


def account(token: str) -> str:
    """The throttle's account for a token attempt."""
    token_id = parse_id(token)
    return f"token:{token_id}" if token_id else "token:?"


def create(
    conn: psycopg.Connection,
    actor: str,
    name: str,
    role: str,
    teams: list[str],
    days: int,
    client_address: str | None = None,
) -> tuple[str, dict[str, Any]]:
    name = name.strip()
    if not name or len(name) > 100 or not name.isprintable():
        raise TokenInputError("name: 1-100 printable characters")
    if role not in ROLES:
        raise TokenInputError(f"role {role!r}: one of {', '.join(ROLES)}")
    clean = sorted({t.strip() for t in teams if t.strip()})
    if role != "admin" and not clean:
        raise TokenInputError(f"a {role} token needs at least one team")
    if not 1 <= days <= MAX_DAYS:
        raise TokenInputError(f"days: 1 to {MAX_DAYS}")
    token_id = secrets.token_hex(8)
    token = f"{PREFIX}{token_id}_{secrets.token_urlsafe(32)}"
    stored_teams = None if role == "admin" else clean
    conn.execute(
        "INSERT INTO dashboard_tokens (id, secret_hash, name, role, teams, created_by, expires_at)"
        " VALUES (%s, %s, %s, %s, %s, %s, now() + make_interval(days => %s))",
        (token_id, _hash(token), name, role, stored_teams, actor, days),
    )
    audit.record(
        conn,
        actor,
        "token.create",
        token_id,
        {"name": name, "role": role, "teams": stored_teams, "days": days},
        client_address,
        commit=False,
    )
    conn.commit()
    found = get(conn, token_id)
    assert found is not None
    return token, found


_FIELDS = (
    "id, name, role, teams, created_by, created_at, expires_at, revoked_at,"
    " (revoked_at IS NULL AND expires_at > now()) AS live"
)


def get(conn: psycopg.Connection, token_id: str) -> dict[str, Any] | None:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(f"SELECT {_FIELDS} FROM dashboard_tokens WHERE id = %s", (token_id,)).fetchone()


def listed(conn: psycopg.Connection) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            f"SELECT {_FIELDS} FROM dashboard_tokens"
            " ORDER BY (revoked_at IS NULL AND expires_at > now()) DESC, created_at DESC"
        ).fetchall()


def revoke(
    conn: psycopg.Connection, actor: str, token_id: str, client_address: str | None = None
) -> datetime | None:
    """Revoke a token: when, or None if there is no such token (revoking twice keeps the first time)."""
    if not re.fullmatch(r"[0-9a-f]{1,32}", token_id):
        return None
    row = conn.execute(
        "UPDATE dashboard_tokens SET revoked_at = coalesce(revoked_at, now()) WHERE id = %s"
        " RETURNING revoked_at",
        (token_id,),
    ).fetchone()
    if row is None:
        conn.rollback()
        return None
    audit.record(conn, actor, "token.revoke", token_id, {}, client_address, commit=False)
    conn.commit()
    revoked: datetime = row[0]
    return revoked
