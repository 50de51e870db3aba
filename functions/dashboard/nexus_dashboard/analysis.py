"""The analysis read model and trigger: a conversation's analysis status, queueing a run, and the
team view of the most frequent tips."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

import psycopg
from nexus.analysis import store
from nexus.analysis.launch import Launcher

from nexus_dashboard.schemas import AnalysisStatus, TeamTips, TipCount
from nexus_dashboard.scope import Scope


def status(conn: psycopg.Connection, conversation_id: str) -> AnalysisStatus:
    newest, done = store.latest(conn, conversation_id)
    count = conn.execute(
        "SELECT request_count FROM conversations WHERE id = %s", (conversation_id,)
    ).fetchone()
    analysis = cast(Any, done["analysis"]) if done else None
    seen = analysis["facts"]["request_count"] if analysis else None
    return {
        "status": newest["status"] if newest else "none",
        "run_id": newest["id"] if newest else None,
        "trigger": newest["trigger"] if newest else None,
        "reason": newest["reason"] if newest and newest["status"] == "failed" else None,
        "run_cost_usd": newest["cost_usd"] if newest else None,
        "stale": bool(analysis and count and count[0] > seen),
        "analysed_at": done["finished_at"] if done else None,
        "analysis": analysis,
    }


def request(
    conn: psycopg.Connection, launcher: Launcher, conversation_id: str, trigger: str
) -> AnalysisStatus | None:
    """Queue a run (or join the one in flight) and start it; None for an unknown conversation."""
    queued = store.enqueue(conn, conversation_id, trigger)
    if queued is None:
        return None
    if queued.created:
        try:
            launcher.start(queued.id, conversation_id)
        except Exception as exc:
            store.fail(conn, queued.id, f"could not start the pipeline: {type(exc).__name__}: {exc}")
            raise
    return status(conn, conversation_id)


def top_tips(
    conn: psycopg.Connection, team: str | None, since: datetime | None, scope: Scope, limit: int = 20
) -> TeamTips:
    """Tips of the newest done analysis per conversation, grouped by their advice (exact text), of
    the conversations ``scope`` may read."""
    teams = None if scope.teams is None else sorted(scope.teams)
    rows = conn.execute(
        "WITH newest AS (SELECT DISTINCT ON (conversation_id) conversation_id, analysis FROM analyses"
        " WHERE status = 'done' AND (%(team)s::text IS NULL OR team = %(team)s)"
        " AND (%(teams)s::text[] IS NULL OR team = ANY(%(teams)s))"
        " AND (%(since)s::timestamptz IS NULL OR finished_at >= %(since)s)"
        " ORDER BY conversation_id, finished_at DESC)"
        " SELECT (SELECT count(*) FROM newest), t->>'advice', count(*),"
        " (array_agg(n.conversation_id::text ORDER BY n.conversation_id))[1],"
        " (array_agg(t->>'request_id' ORDER BY n.conversation_id))[1],"
        " (array_agg(t->>'quote' ORDER BY n.conversation_id))[1]"
        " FROM newest n, jsonb_array_elements(n.analysis->'tips') t"
        " GROUP BY t->>'advice' ORDER BY count(*) DESC, t->>'advice' LIMIT %(limit)s",
        {"team": team, "since": since, "limit": limit, "teams": teams},
    ).fetchall()
    total = conn.execute(
        "SELECT count(DISTINCT conversation_id) FROM analyses WHERE status = 'done'"
        " AND (%(team)s::text IS NULL OR team = %(team)s)"
        " AND (%(teams)s::text[] IS NULL OR team = ANY(%(teams)s))"
        " AND (%(since)s::timestamptz IS NULL OR finished_at >= %(since)s)",
        {"team": team, "since": since, "teams": teams},
    ).fetchone()
    tips: list[TipCount] = [
        {"advice": r[1], "count": int(r[2]), "conversation_id": r[3], "request_id": r[4], "quote": r[5]}
        for r in rows
    ]
    return {"team": team, "analyses": int(total[0]) if total else 0, "tips": tips}
