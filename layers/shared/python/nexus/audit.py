"""The audit log of admin actions (ADR 0025): who created or revoked a key, set a budget, stored a
credential, changed a user or a role, made a service token, synced prompts. One row per action in
``dashboard_audit`` and one JSON line on the ``nexus.audit`` logger (CloudWatch keeps those in AWS).

``record`` is called where the action is done (the dashboard's admin routes, ``nexus users``), with
the connection of the action's own transaction where the action is a database change.
"""

from __future__ import annotations

import csv
import io
import logging
from datetime import datetime
from typing import Any

import orjson
import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

log = logging.getLogger("nexus.audit")
log.setLevel(logging.INFO)


class Line(dict[str, Any]):
    """One action as a log record's message: JSON as text (a plain formatter writes one JSON line),
    a dict to Powertools' formatter (in AWS it becomes the line's ``message`` object, which CloudWatch
    Logs Insights queries as ``message.action``, ``message.actor``...)."""

    def __str__(self) -> str:
        return orjson.dumps(self).decode()


COLUMNS = ("id", "at", "actor", "action", "target", "detail", "client_address")


def record(
    conn: psycopg.Connection,
    actor: str,
    action: str,
    target: str,
    detail: dict[str, Any] | None = None,
    client_address: str | None = None,
    commit: bool = True,
) -> None:
    """Write one action (committed unless ``commit`` is False: then it rides the caller's
    transaction) and log it as a JSON line."""
    row = conn.execute(
        "INSERT INTO dashboard_audit (actor, action, target, detail, client_address)"
        " VALUES (%s, %s, %s, %s, %s) RETURNING id, at",
        (actor, action, target, Jsonb(detail or {}), client_address),
    ).fetchone()
    if commit:
        conn.commit()
    assert row is not None
    line = Line(
        {
            "audit": True,
            "id": row[0],
            "at": row[1].isoformat(),
            "actor": actor,
            "action": action,
            "target": target,
            "detail": detail or {},
            "client_address": client_address,
        }
    )
    log.info(line)


def recent(
    conn: psycopg.Connection,
    limit: int = 200,
    actor: str | None = None,
    action: str | None = None,
    since: datetime | None = None,
) -> list[dict[str, Any]]:
    """The log, newest first, narrowed by actor, action and time."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            f"SELECT {', '.join(COLUMNS)} FROM dashboard_audit"
            " WHERE (%(actor)s::text IS NULL OR actor = %(actor)s)"
            " AND (%(action)s::text IS NULL OR action = %(action)s)"
            " AND (%(since)s::timestamptz IS NULL OR at >= %(since)s)"
            " ORDER BY at DESC, id DESC LIMIT %(limit)s",
            {"actor": actor, "action": action, "since": since, "limit": limit},
        ).fetchall()


def to_csv(rows: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(COLUMNS)
    for r in rows:
        w.writerow(
            [
                r["id"],
                r["at"].isoformat(),
                r["actor"],
                r["action"],
                r["target"],
                orjson.dumps(r["detail"], option=orjson.OPT_SORT_KEYS).decode(),
                r["client_address"] or "",
            ]
        )
    return out.getvalue()
