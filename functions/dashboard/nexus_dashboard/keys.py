"""Nexus client keys as the dashboard manages them: the access store's records joined with each
key's usage. Creating and revoking go through ``nexus.access.AccessStore``, the same code as the
``nexus keys`` CLI, so both see one list."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, cast

import psycopg
from nexus.access import AccessStore
from psycopg.rows import dict_row
from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic_core import PydanticCustomError

from nexus_dashboard.audit_log import Auditor
from nexus_dashboard.filters import CONTROL_CHARS, Filters
from nexus_dashboard.overview import USAGE_SUMS, usage_where
from nexus_dashboard.schemas import Key, KeyRecord, KeyUsage

NAME_MAX = 100
# A team, user or key name: one line (spaces allowed, no other whitespace, no control characters), not
# blank. The form trims what it is sent first; the JSON API documents and applies the pattern as is.
# Whitespace is listed (what str.isspace calls whitespace) rather than written \s, which JSON Schema
# (ECMA-262) and Python read differently.
_OTHER_SPACE = r"\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
_VISIBLE = f"[^ {CONTROL_CHARS}{_OTHER_SPACE}]"
ONE_LINE = f"^ *{_VISIBLE}(?: |{_VISIBLE})*$"
_ONE_LINE = re.compile(ONE_LINE)


def _one_line(value: str) -> str:
    if not _ONE_LINE.fullmatch(value):
        raise PydanticCustomError(
            "one_line", "must be one line of text, not blank (spaces allowed; no tabs, newlines or NUL)"
        )
    return value


KeyName = Annotated[
    str, Field(max_length=NAME_MAX, json_schema_extra={"pattern": ONE_LINE}), AfterValidator(_one_line)
]


class NewKey(BaseModel):
    """The JSON body that creates a key."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"team": "web", "user": "ann"}]})
    team: KeyName
    user: KeyName
    name: KeyName | None = None


class KeyInputError(ValueError):
    """A create-key form or body the dashboard refuses; the message says what to fix."""


def usage_by_key(conn: psycopg.Connection, f: Filters) -> dict[str, KeyUsage]:
    w, args = usage_where(f)
    w += " AND key_id IS NOT NULL" if w else " WHERE key_id IS NOT NULL"
    sql = f"SELECT key_id, {USAGE_SUMS}, max(last_at) AS last_used_at FROM usage_hourly{w} GROUP BY key_id"
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(sql, args).fetchall()
    # Less its key_id, a row is a KeyUsage (FastAPI checks the shape at runtime).
    return {r.pop("key_id"): cast(KeyUsage, r) for r in rows}


def list_keys(access: AccessStore, conn: psycopg.Connection, f: Filters) -> list[Key]:
    used = usage_by_key(conn, f)
    out: list[Key] = []
    for rec in access.keys().values():
        out.append(
            {  # all but the hash, which never leaves the store
                "id": rec.id,
                "team": rec.team,
                "user": rec.user,
                "created_at": datetime.fromisoformat(rec.created_at),
                "revoked_at": datetime.fromisoformat(rec.revoked_at) if rec.revoked_at else None,
                "name": rec.name,
                "usage": used.get(rec.id),
            }
        )
    out.sort(key=lambda k: (k["revoked_at"] is not None, k["team"], k["user"], k["created_at"]))
    return out


def _field(value: Any, name: str, required: bool = True) -> str | None:
    if value is not None and not isinstance(value, str):
        raise KeyInputError(f"{name} must be text")
    text = (value or "").strip()
    if not text:
        if required:
            raise KeyInputError(f"{name} is required")
        return None
    if len(text) > NAME_MAX or not _ONE_LINE.fullmatch(text):
        raise KeyInputError(f"{name} must be one line of at most {NAME_MAX} characters")
    return text


def one_line(value: Any, name: str) -> str:
    """A required one-line name (a team, a user), or KeyInputError saying what to fix."""
    text = _field(value, name)
    assert text is not None  # required: _field raised otherwise
    return text


def create_key(access: AccessStore, fields: dict[str, Any], log: Auditor) -> tuple[str, KeyRecord]:
    """A new key for a team member: the key itself (shown once, never stored) and its record; the
    action goes to the audit log."""
    team = _field(fields.get("team"), "team")
    user = _field(fields.get("user"), "user")
    name = _field(fields.get("name"), "name", required=False)
    assert team and user
    key, rec = access.create_key(team, user, name)
    record: KeyRecord = {  # all but the hash, which never leaves the store
        "id": rec.id,
        "team": rec.team,
        "user": rec.user,
        "created_at": rec.created_at,
        "revoked_at": rec.revoked_at,
        "name": rec.name,
    }
    log("key.create", rec.id, {"team": rec.team, "user": rec.user, "name": rec.name})
    return key, record


def revoke_key(access: AccessStore, key_id: str, log: Auditor) -> str:
    """Revoke a key (UnknownKey if there is none): when; the action goes to the audit log."""
    rec = access.revoke_key(key_id)
    assert rec.revoked_at is not None  # revoke_key sets it
    log("key.revoke", rec.id, {"team": rec.team, "user": rec.user})
    return rec.revoked_at
