"""The prompt library in PostgreSQL (migration 0009): applying a synced snapshot (new versions only
for changed templates, removals marked, the sync recorded), reading the library, logging use."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson
import psycopg
from psycopg.rows import dict_row

from nexus.prompts.source import Snapshot
from nexus.prompts.template import Argument, Template

_LOCK_ID = 0x50524D54  # "PRMT": one sync at a time


@dataclass(slots=True)
class SyncResult:
    sync_id: int
    commit: str
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        return {
            "sync_id": self.sync_id,
            "commit": self.commit,
            "added": self.added,
            "changed": self.changed,
            "removed": self.removed,
            "unchanged": len(self.unchanged),
            "errors": self.errors,
        }


def apply(conn: psycopg.Connection, snap: Snapshot) -> SyncResult:
    """Make the library match ``snap``, in one transaction. Idempotent: the same commit again adds no
    version (a template's version changes only when its content hash does)."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_ID,))
        row = conn.execute(
            "INSERT INTO prompt_syncs (repo, ref, path, commit, errors)"
            " VALUES (%s, %s, %s, %s, %s) RETURNING id",
            (snap.repo, snap.ref, snap.path, snap.commit, orjson.dumps(snap.errors).decode()),
        ).fetchone()
        assert row is not None
        result = SyncResult(int(row[0]), snap.commit, errors=dict(snap.errors))
        current = {
            name: (version, removed, chash)
            for name, version, removed, chash in conn.execute(
                "SELECT p.name, p.version, p.removed_at IS NOT NULL, v.content_hash FROM prompts p"
                " JOIN prompt_versions v ON v.name = p.name AND v.version = p.version"
            )
        }
        for t in snap.templates:
            seen = current.get(t.name)
            if seen is not None and seen[2] == t.content_hash and not seen[1]:
                result.unchanged.append(t.name)
                continue
            version = 1 if seen is None else seen[0] + 1
            if seen is None:
                conn.execute("INSERT INTO prompts (name, version) VALUES (%s, %s)", (t.name, version))
                result.added.append(t.name)
            else:
                conn.execute(
                    "UPDATE prompts SET version = %s, removed_at = NULL, updated_at = now() WHERE name = %s",
                    (version, t.name),
                )
                (result.added if seen[1] else result.changed).append(t.name)
            conn.execute(
                "INSERT INTO prompt_versions (name, version, commit, path, description, arguments, body,"
                " content_hash, sync_id) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                (
                    t.name,
                    version,
                    snap.commit,
                    t.path,
                    t.description,
                    orjson.dumps([a.to_json() for a in t.arguments]).decode(),
                    t.body,
                    t.content_hash,
                    result.sync_id,
                ),
            )
        names = {t.name for t in snap.templates}
        for name, (_, removed, _) in current.items():
            if name not in names and not removed:
                conn.execute(
                    "UPDATE prompts SET removed_at = now(), updated_at = now() WHERE name = %s", (name,)
                )
                result.removed.append(name)
        conn.execute(
            "UPDATE prompt_syncs SET added = %s, changed = %s, removed = %s, unchanged = %s WHERE id = %s",
            (
                len(result.added),
                len(result.changed),
                len(result.removed),
                len(result.unchanged),
                result.sync_id,
            ),
        )
    return result


def template_of(row: dict[str, Any]) -> Template:
    """A stored version as a template (to render it)."""
    args = tuple(
        Argument(a["name"], a.get("description"), bool(a.get("required", True))) for a in row["arguments"]
    )
    return Template(row["name"], row["description"], args, row["body"], row["path"])


_LIST = (
    "SELECT p.name, p.version, v.description, v.arguments, v.path, v.commit, v.created_at AS updated_at,"
    " p.removed_at, coalesce(u.uses, 0) AS uses, u.last_used_at"
    " FROM prompts p JOIN prompt_versions v ON v.name = p.name AND v.version = p.version"
    " LEFT JOIN (SELECT name, count(*)::int AS uses, max(used_at) AS last_used_at FROM prompt_usage"
    " GROUP BY name) u ON u.name = p.name"
)


def library(
    conn: psycopg.Connection, query: str | None = None, include_removed: bool = False
) -> list[dict[str, Any]]:
    """The current prompts by name (``query``: a case-insensitive match on name, description or body)."""
    where, args = [], []
    if not include_removed:
        where.append("p.removed_at IS NULL")
    if query:
        where.append("(p.name ILIKE %s OR v.description ILIKE %s OR v.body ILIKE %s)")
        like = "%" + query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        args += [like, like, like]
    sql = _LIST + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY p.name"
    with conn.cursor(row_factory=dict_row) as cur:
        return list(cur.execute(sql, args))


def version(conn: psycopg.Connection, name: str, number: int | None = None) -> dict[str, Any] | None:
    """One version of a prompt (default: its current one), with ``removed_at`` from the prompt; None
    if there is no such prompt or version."""
    sql = (
        "SELECT v.name, v.version, v.commit, v.path, v.description, v.arguments, v.body, v.created_at,"
        " p.version AS current_version, p.removed_at FROM prompt_versions v JOIN prompts p ON p.name = v.name"
        " WHERE v.name = %s AND v.version = " + ("%s" if number is not None else "p.version")
    )
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(sql, (name, number) if number is not None else (name,)).fetchone()


def versions(conn: psycopg.Connection, name: str) -> list[dict[str, Any]]:
    """Every version of a prompt, newest first, with how often each was used."""
    with conn.cursor(row_factory=dict_row) as cur:
        return list(
            cur.execute(
                "SELECT v.version, v.commit, v.path, v.created_at,"
                " (SELECT count(*)::int FROM prompt_usage u"
                "  WHERE u.name = v.name AND u.version = v.version) AS uses"
                " FROM prompt_versions v WHERE v.name = %s ORDER BY v.version DESC",
                (name,),
            )
        )


def usage(conn: psycopg.Connection, name: str, limit: int = 50) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        return list(
            cur.execute(
                'SELECT used_at, version, key_id, team, "user", source FROM prompt_usage WHERE name = %s'
                " ORDER BY used_at DESC LIMIT %s",
                (name, limit),
            )
        )


def last_sync(conn: psycopg.Connection) -> dict[str, Any] | None:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT id, synced_at, repo, ref, path, commit, added, changed, removed, unchanged, errors"
            " FROM prompt_syncs ORDER BY id DESC LIMIT 1"
        ).fetchone()


def record_use(
    conn: psycopg.Connection, name: str, number: int, key_id: str | None, team: str | None, user: str | None
) -> None:
    with conn.transaction():
        conn.execute(
            'INSERT INTO prompt_usage (name, version, key_id, team, "user") VALUES (%s, %s, %s, %s, %s)',
            (name, number, key_id, team, user),
        )
