"""The alerts log in PostgreSQL (migration 0007): claiming an event (the de-duplication decision),
recording its delivery, reading the log, and the one query error-rate alerts need."""

from __future__ import annotations

from typing import Any

import orjson
import psycopg
from psycopg.rows import dict_row

from nexus.alert_events import AlertEvent
from nexus.alerts import message
from nexus.alerts.rules import ErrorWindow

_LOCK_CLASS = 0x414C5254  # "ALRT": the advisory lock space of alert keys

COLUMNS = (
    "id, created_at, kind, level, team, subject, message, facts, dedup_key, window_s, repeats,"
    " last_seen_at, delivered, errors, delivered_at"
)


def claim(conn: psycopg.Connection, event: AlertEvent) -> int | None:
    """Log ``event`` and return its row id, or None when its dedup key already has a row inside the
    event's window (that row's ``repeats`` goes up). One transaction, serialised per key by an
    advisory lock: two processes claiming the same key at once raise one alert."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (_LOCK_CLASS, event.dedup_key))
        seen = conn.execute(
            "SELECT id FROM alerts WHERE dedup_key = %s"
            " AND created_at > clock_timestamp() - make_interval(secs => %s)"
            " ORDER BY created_at DESC LIMIT 1",
            (event.dedup_key, event.window_s),
        ).fetchone()
        if seen is not None:
            conn.execute(
                "UPDATE alerts SET repeats = repeats + 1, last_seen_at = clock_timestamp() WHERE id = %s",
                (seen[0],),
            )
            return None
        row = conn.execute(
            "INSERT INTO alerts (created_at, last_seen_at, kind, level, team, subject, message, facts,"
            " dedup_key, window_s) VALUES (clock_timestamp(), clock_timestamp(),"
            " %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
            (
                event.kind,
                event.level,
                event.team,
                message.redact(event.subject),
                message.redact(event.message),
                orjson.dumps(message.redact_facts(event.facts), default=str).decode(),
                event.dedup_key,
                event.window_s,
            ),
        ).fetchone()
        assert row is not None
        return int(row[0])


def record_delivery(
    conn: psycopg.Connection, alert_id: int, delivered: list[str], errors: dict[str, str]
) -> None:
    with conn.transaction():
        conn.execute(
            "UPDATE alerts SET delivered = %s, errors = %s, delivered_at = clock_timestamp() WHERE id = %s",
            (delivered, orjson.dumps(errors).decode(), alert_id),
        )


def recent(
    conn: psycopg.Connection,
    team: str | None = None,
    kind: str | None = None,
    limit: int = 100,
    before_id: int | None = None,
    teams: list[str] | None = None,
) -> list[dict[str, Any]]:
    """The log, newest first; ``team``/``kind`` narrow it, and so does ``teams`` (only alerts of
    these teams: a dashboard member's or viewer's; the stage's own alerts have no team)."""
    where: list[str] = []
    args: list[object] = []
    if teams is not None:
        where.append("team = ANY(%s)")
        args.append(teams)
    for col, value in (("team", team), ("kind", kind)):
        if value is not None:
            where.append(f"{col} = %s")
            args.append(value)
    if before_id is not None:
        where.append("id < %s")
        args.append(before_id)
    sql = f"SELECT {COLUMNS} FROM alerts"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY created_at DESC, id DESC LIMIT %s"
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(sql, [*args, limit]).fetchall()


def kinds_and_teams(conn: psycopg.Connection) -> tuple[list[str], list[str]]:
    """What the log's filters can choose from."""
    kinds = [r[0] for r in conn.execute("SELECT DISTINCT kind FROM alerts ORDER BY 1")]
    teams = [r[0] for r in conn.execute("SELECT DISTINCT team FROM alerts WHERE team IS NOT NULL ORDER BY 1")]
    return kinds, teams


# A failure as nexus.alerts.rules.is_failure decides it, in SQL.
FAILURE_SQL = "(r.status >= 500 OR (r.status = 429 AND r.response_headers <> '[]'::jsonb))"


def error_counts(conn: psycopg.Connection, window: ErrorWindow) -> dict[str | None, tuple[int, int]]:
    """Per team: (requests, failures) received in the team's window up to ``window.until``. One query."""
    teams = list(window.teams)
    rows = conn.execute(
        "SELECT w.team, count(r.id), count(r.id) FILTER (WHERE " + FAILURE_SQL + ")"
        " FROM unnest(%s::text[], %s::int[]) AS w(team, secs)"
        " JOIN requests r ON r.team IS NOT DISTINCT FROM w.team"
        " AND r.received_at > %s - make_interval(secs => w.secs) AND r.received_at <= %s"
        " GROUP BY w.team",
        (teams, [window.teams[t] for t in teams], window.until, window.until),
    ).fetchall()
    return {team: (int(n), int(f)) for team, n, f in rows}
