"""Local dashboard accounts (``nexus users``, ADR 0025): a name, an argon2id password hash, a role
and teams. Removing a user or changing their role or teams ends their sessions in the same
transaction; each change is written to the audit log by the same call.

OIDC sign-ins have no row here: their role and teams come from the ID token at each sign-in.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from datetime import datetime

import psycopg
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from nexus import audit

ROLES = ("admin", "member", "viewer")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,99}$")
MIN_PASSWORD = 12
_hasher = PasswordHasher()  # argon2id, the library's defaults (RFC 9106's second recommendation)


@functools.cache
def _dummy() -> str:
    """Verified against when the name is unknown, so an unknown name costs what a wrong password
    costs. Made on first use: hashing takes a quarter second, which every process importing this
    module (the CLI, the dashboard's cold start) would pay otherwise."""
    return _hasher.hash("nexus-no-such-user")


class AccountError(ValueError):
    """A name, role, team or password that cannot be used; the message says what to fix."""


@dataclass(frozen=True, slots=True)
class User:
    name: str
    role: str
    teams: list[str]
    created_at: datetime
    updated_at: datetime

    @property
    def principal(self) -> str:
        return principal_name(self.name)


def principal_name(name: str) -> str:
    """What sessions, throttling and the audit log call a local user."""
    return f"user:{name}"


def check(name: str, role: str, teams: list[str]) -> list[str]:
    if not _NAME.match(name):
        raise AccountError(
            f"user name {name!r}: 1-100 letters, digits and . _ @ + -, starting with a letter or digit"
        )
    if role not in ROLES:
        raise AccountError(f"role {role!r}: one of {', '.join(ROLES)}")
    cleaned = sorted({t.strip() for t in teams if t.strip()})
    if any(len(t) > 100 or not t.isprintable() for t in cleaned):
        raise AccountError("a team name is at most 100 printable characters")
    if role != "admin" and not cleaned:
        raise AccountError(f"a {role} needs at least one team (--team)")
    return cleaned


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"a password needs at least {MIN_PASSWORD} characters")
    return _hasher.hash(password)


def add(conn: psycopg.Connection, actor: str, name: str, role: str, teams: list[str], password: str) -> User:
    teams = check(name, role, teams)
    pw = hash_password(password)
    row = conn.execute(
        "INSERT INTO dashboard_users (name, password_hash, role, teams) VALUES (%s, %s, %s, %s)"
        " ON CONFLICT (name) DO NOTHING RETURNING created_at, updated_at",
        (name, pw, role, teams),
    ).fetchone()
    if row is None:
        conn.rollback()
        raise AccountError(f"user {name!r} exists (nexus users set-role, or remove it first)")
    audit.record(conn, actor, "user.add", name, {"role": role, "teams": teams}, commit=False)
    conn.commit()
    return User(name, role, teams, row[0], row[1])


def listed(conn: psycopg.Connection) -> list[User]:
    return [
        User(*r)
        for r in conn.execute(
            "SELECT name, role, teams, created_at, updated_at FROM dashboard_users ORDER BY name"
        )
    ]


def get(conn: psycopg.Connection, name: str) -> User | None:
    if not _NAME.match(name):  # no such name can exist (nor be sent to PostgreSQL: NUL)
        return None
    row = conn.execute(
        "SELECT name, role, teams, created_at, updated_at FROM dashboard_users WHERE name = %s", (name,)
    ).fetchone()
    return User(*row) if row else None


def _end_sessions(conn: psycopg.Connection, name: str) -> int:
    return conn.execute(
        "UPDATE dashboard_sessions SET revoked_at = now() WHERE principal = %s AND revoked_at IS NULL",
        (principal_name(name),),
    ).rowcount


def remove(conn: psycopg.Connection, actor: str, name: str) -> int:
    """Remove a user and end their sessions: how many were live."""
    if conn.execute("DELETE FROM dashboard_users WHERE name = %s RETURNING 1", (name,)).fetchone() is None:
        conn.rollback()
        raise AccountError(f"no user {name!r}")
    ended = _end_sessions(conn, name)
    audit.record(conn, actor, "user.remove", name, {"sessions_ended": ended}, commit=False)
    conn.commit()
    return ended


def set_role(conn: psycopg.Connection, actor: str, name: str, role: str, teams: list[str] | None) -> int:
    """Give a user another role (and teams; ``None`` keeps theirs) and end their sessions."""
    user = get(conn, name)
    if user is None:
        raise AccountError(f"no user {name!r}")
    new_teams = check(name, role, user.teams if teams is None else teams)
    conn.execute(
        "UPDATE dashboard_users SET role = %s, teams = %s, updated_at = now() WHERE name = %s",
        (role, new_teams, name),
    )
    ended = _end_sessions(conn, name)
    detail = {"role": role, "teams": new_teams, "was": {"role": user.role, "teams": user.teams}}
    audit.record(conn, actor, "user.set-role", name, {**detail, "sessions_ended": ended}, commit=False)
    conn.commit()
    return ended


def verify(conn: psycopg.Connection, name: str, password: str) -> User | None:
    """The user if the password is theirs; None otherwise (the same work either way)."""
    row = conn.execute("SELECT password_hash FROM dashboard_users WHERE name = %s", (name,)).fetchone()
    stored = row[0] if row else _dummy()
    try:
        _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return None
    if row is None:
        return None
    if _hasher.check_needs_rehash(stored):
        conn.execute(
            "UPDATE dashboard_users SET password_hash = %s WHERE name = %s", (_hasher.hash(password), name)
        )
        conn.commit()
    return get(conn, name)
