"""Nexus client keys as the dashboard manages them: the access store's records joined with each
key's usage. Creating and revoking go through ``nexus.access.AccessStore``, the same code as the
``nexus keys`` CLI, so both see one list."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Any

import psycopg
from nexus.access import AccessStore
from psycopg.rows import dict_row

from nexus_dashboard.filters import Filters
from nexus_dashboard.overview import USAGE_SUMS, usage_where

NAME_MAX = 100


class KeyInputError(ValueError):
    """A create-key form or body the dashboard refuses; the message says what to fix."""


def usage_by_key(conn: psycopg.Connection, f: Filters) -> dict[str, dict[str, Any]]:
    w, args = usage_where(f)
    w += " AND key_id IS NOT NULL" if w else " WHERE key_id IS NOT NULL"
    sql = f"SELECT key_id, {USAGE_SUMS}, max(last_at) AS last_used_at FROM usage_hourly{w} GROUP BY key_id"
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(sql, args).fetchall()
    return {r.pop("key_id"): r for r in rows}


def list_keys(access: AccessStore, conn: psycopg.Connection, f: Filters) -> list[dict[str, Any]]:
    used = usage_by_key(conn, f)
    out = []
    for rec in access.keys().values():
        row = asdict(rec)
        row.pop("hash")  # never leaves the store
        for k in ("created_at", "revoked_at"):
            row[k] = datetime.fromisoformat(row[k]) if row[k] else None
        row["usage"] = used.get(rec.id)
        out.append(row)
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
    if len(text) > NAME_MAX or any(c.isspace() and c != " " for c in text):
        raise KeyInputError(f"{name} must be one line of at most {NAME_MAX} characters")
    return text


def create_key(access: AccessStore, fields: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """A new key for a team member: the key itself (shown once, never stored) and its record."""
    team = _field(fields.get("team"), "team")
    user = _field(fields.get("user"), "user")
    name = _field(fields.get("name"), "name", required=False)
    assert team and user
    key, rec = access.create_key(team, user, name)
    row = asdict(rec)
    row.pop("hash")
    return key, row
