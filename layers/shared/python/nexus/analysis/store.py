"""Analyses in PostgreSQL (migration 0008): queueing a run, reading a conversation as transcript
segments, the chunks of a run, the result or the reason it failed, and the idle-conversation sweep.

One in-flight run per conversation (a unique partial index): asking again while one is queued or
running joins it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson
import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from nexus.analysis.condense import Segment
from nexus.analysis.pipeline import EXECUTION_TIMEOUT_S
from nexus.analysis.schema import StoredAnalysis
from nexus.analysis.settings import AutoPolicy
from nexus.db.records import request_body

TRIGGERS = ("manual", "cli", "auto")


@dataclass(frozen=True, slots=True)
class Queued:
    id: str
    conversation_id: str
    created: bool  # False: joined a run already queued or running


ABANDONED_AFTER_S = EXECUTION_TIMEOUT_S + 300


def enqueue(conn: psycopg.Connection, conversation_id: str, trigger: str) -> Queued | None:
    """Queue a run for the conversation (None if there is no such conversation). A run in flight for
    longer than any execution may last (its runner died, or its execution timed out) is marked failed
    first, so it cannot block the conversation for ever."""
    with conn.transaction():
        row = conn.execute("SELECT team FROM conversations WHERE id = %s", (conversation_id,)).fetchone()
        if row is None:
            return None
        conn.execute(
            "UPDATE analyses SET status = 'failed', finished_at = now(), reason = %s"
            " WHERE conversation_id = %s AND status IN ('queued', 'running')"
            " AND created_at < now() - make_interval(secs => %s)",
            (
                f"abandoned: no result within {ABANDONED_AFTER_S // 60} minutes",
                conversation_id,
                ABANDONED_AFTER_S,
            ),
        )
        new_id = str(uuid.uuid4())
        inserted = conn.execute(
            "INSERT INTO analyses (id, conversation_id, team, trigger, status)"
            " VALUES (%s, %s, %s, %s, 'queued')"
            " ON CONFLICT (conversation_id) WHERE status IN ('queued', 'running') DO NOTHING RETURNING id",
            (new_id, conversation_id, row[0], trigger),
        ).fetchone()
        if inserted is not None:
            return Queued(new_id, conversation_id, True)
        existing = conn.execute(
            "SELECT id::text FROM analyses WHERE conversation_id = %s AND status IN ('queued', 'running')",
            (conversation_id,),
        ).fetchone()
    if existing is None:  # finished in between: queue again
        return enqueue(conn, conversation_id, trigger)
    return Queued(existing[0], conversation_id, False)


def requeue_running(conn: psycopg.Connection) -> int:
    """The local runner's start: runs left ``running`` by a previous process go back to the queue."""
    with conn.transaction():
        cur = conn.execute(
            "UPDATE analyses SET status = 'queued', started_at = NULL WHERE status = 'running'"
        )
    return cur.rowcount


def claim_queued(conn: psycopg.Connection, limit: int = 1) -> list[tuple[str, str]]:
    """Queued runs taken for this runner: (analysis id, conversation id), oldest first."""
    with conn.transaction():
        rows = conn.execute(
            "UPDATE analyses SET status = 'running', started_at = now() WHERE id IN ("
            " SELECT id FROM analyses WHERE status = 'queued' ORDER BY created_at"
            " LIMIT %s FOR UPDATE SKIP LOCKED) RETURNING id::text, conversation_id::text",
            (limit,),
        ).fetchall()
    return [(r[0], r[1]) for r in rows]


def start(conn: psycopg.Connection, analysis_id: str) -> dict[str, Any] | None:
    """Mark a run running (the state machine's first step); its row, or None if unknown or over."""
    with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "UPDATE analyses SET status = 'running', started_at = coalesce(started_at, now())"
            " WHERE id = %s AND status IN ('queued', 'running')"
            " RETURNING id::text, conversation_id::text, team, trigger",
            (analysis_id,),
        ).fetchone()


@dataclass(frozen=True, slots=True)
class Loaded:
    segments: list[Segment]
    request_count: int
    retries: int


def load_conversation(conn: psycopg.Connection, conversation_id: str) -> Loaded:
    """The conversation as transcript segments: one per branch (main, compactions, forks, sub-agents),
    each its newest request's messages and answer, messages attributed to the request that added
    them; requests numbered as the conversation page numbers them."""
    with conn.cursor(row_factory=dict_row) as cur:
        reqs = cur.execute(
            "SELECT id::text, coalesce(branch, 'main') AS branch, link, message_count,"
            " parent_task_request_id::text FROM requests WHERE conversation_id = %s ORDER BY received_at, id",
            (conversation_id,),
        ).fetchall()
        branches = cur.execute(
            "SELECT name, kind, fork_request_id::text FROM branches WHERE conversation_id = %s"
            " ORDER BY first_at, name",
            (conversation_id,),
        ).fetchall()
    number = {r["id"]: n for n, r in enumerate(reqs, 1)}
    count = {r["id"]: r["message_count"] for r in reqs}
    on: dict[str, list[dict[str, Any]]] = {}
    for r in reqs:
        on.setdefault(r["branch"], []).append(r)
    kinds = {b["name"]: b for b in branches}
    order = [b["name"] for b in branches] + sorted(set(on) - set(kinds))
    segments: list[Segment] = []
    for name in order:
        rows = on.get(name)
        if not rows:
            continue
        leaf = rows[-1]
        body, response = _body_and_response(conn, leaf["id"])
        found = body.get("messages")
        messages: list[dict[str, Any]] = found if isinstance(found, list) else []
        info = kinds.get(name, {"kind": "main", "fork_request_id": None})
        first = 0
        if info["kind"] == "branch" and info["fork_request_id"] in count:
            first = count[info["fork_request_id"]] + 1  # the fork's history is the parent branch's
        owners = []
        for j in range(len(messages)):
            owner = next((r for r in rows if r["message_count"] > j), leaf)
            owners.append(number[owner["id"]])
        spawned = rows[0]["parent_task_request_id"]
        segments.append(
            Segment(
                branch=name,
                kind=info["kind"],
                messages=messages[first:],
                owners=owners[first:],
                response=response
                if isinstance(response, dict) and response.get("type") == "message"
                else None,
                response_n=number[leaf["id"]],
                spawned_at=number.get(spawned) if spawned else None,
            )
        )
    retries = sum(1 for r in reqs if r["link"] == "retry")
    return Loaded(segments, len(reqs), retries)


def _body_and_response(conn: psycopg.Connection, request_id: str) -> tuple[dict[str, Any], Any]:
    row = conn.execute(
        "SELECT body_layout, messages_chain, response FROM requests WHERE id = %s", (request_id,)
    ).fetchone()
    if row is None:
        return {}, None
    raw = request_body(conn, row[0], bytes(row[1]) if row[1] is not None else None)
    try:
        body = orjson.loads(raw) if raw else {}
    except orjson.JSONDecodeError:
        body = {}
    return (body if isinstance(body, dict) else {}), row[2]


def done_for_input(
    conn: psycopg.Connection, conversation_id: str, prompt_version: str, input_hash: str
) -> str | None:
    row = conn.execute(
        "SELECT id::text FROM analyses WHERE conversation_id = %s AND prompt_version = %s AND input_hash = %s"
        " AND status = 'done' ORDER BY finished_at DESC LIMIT 1",
        (conversation_id, prompt_version, input_hash),
    ).fetchone()
    return row[0] if row else None


def save_chunks(
    conn: psycopg.Connection,
    analysis_id: str,
    chunks: list[str],
    *,
    prompt_version: str,
    input_hash: str,
    model: str,
    request_count: int,
    source_tokens: int,
    condensed_tokens: int,
) -> None:
    with conn.transaction():
        conn.execute("DELETE FROM analysis_chunks WHERE analysis_id = %s", (analysis_id,))
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO analysis_chunks (analysis_id, index, text) VALUES (%s, %s, %s)",
                [(analysis_id, i, c) for i, c in enumerate(chunks)],
            )
        conn.execute(
            "UPDATE analyses SET prompt_version = %s, input_hash = %s, model = %s, request_count = %s,"
            " chunk_count = %s, source_tokens = %s, condensed_tokens = %s WHERE id = %s",
            (
                prompt_version,
                input_hash,
                model,
                request_count,
                len(chunks),
                source_tokens,
                condensed_tokens,
                analysis_id,
            ),
        )


def chunk(conn: psycopg.Connection, analysis_id: str, index: int) -> str:
    row = conn.execute(
        "SELECT text FROM analysis_chunks WHERE analysis_id = %s AND index = %s", (analysis_id, index)
    ).fetchone()
    if row is None:
        raise LookupError(f"analysis {analysis_id} has no chunk {index}")
    text: str = row[0]
    return text


def drop(conn: psycopg.Connection, analysis_id: str) -> None:
    """A run that turned out unnecessary (its input was analysed already)."""
    with conn.transaction():
        conn.execute("DELETE FROM analyses WHERE id = %s", (analysis_id,))


def request_ids(conn: psycopg.Connection, conversation_id: str) -> dict[int, str]:
    rows = conn.execute(
        "SELECT id::text FROM requests WHERE conversation_id = %s ORDER BY received_at, id",
        (conversation_id,),
    ).fetchall()
    return {n: r[0] for n, r in enumerate(rows, 1)}


def finish(conn: psycopg.Connection, analysis_id: str, analysis: StoredAnalysis) -> None:
    f = analysis.facts
    with conn.transaction():
        conn.execute(
            "UPDATE analyses SET status = 'done', finished_at = now(), reason = NULL, analysis = %s,"
            " outcome = %s, task_success = %s, prompt_clarity = %s, efficiency = %s, model = %s,"
            " input_tokens = %s, output_tokens = %s, cost_usd = %s, calls = %s WHERE id = %s",
            (
                Jsonb(analysis.model_dump(mode="json")),
                analysis.outcome,
                analysis.scores.task_success.value,
                analysis.scores.prompt_clarity.value,
                analysis.scores.efficiency.value,
                f.model,
                f.input_tokens,
                f.output_tokens,
                f.cost_usd,
                f.calls,
                analysis_id,
            ),
        )
        conn.execute("DELETE FROM analysis_chunks WHERE analysis_id = %s", (analysis_id,))


def fail(
    conn: psycopg.Connection, analysis_id: str, reason: str, usage: dict[str, Any] | None = None
) -> None:
    u = usage or {}
    with conn.transaction():
        conn.execute(
            "UPDATE analyses SET status = 'failed', finished_at = now(), reason = %s,"
            " input_tokens = %s, output_tokens = %s, cost_usd = %s, calls = %s WHERE id = %s",
            (
                reason[:2000],
                u.get("input_tokens", 0),
                u.get("output_tokens", 0),
                u.get("cost_usd"),
                u.get("calls", 0),
                analysis_id,
            ),
        )
        conn.execute("DELETE FROM analysis_chunks WHERE analysis_id = %s", (analysis_id,))


def latest(
    conn: psycopg.Connection, conversation_id: str
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """The newest run of the conversation, and its newest done one (may be the same)."""
    cols = (
        "id::text, status, trigger, reason, analysis, created_at, finished_at, prompt_version,"
        " request_count, cost_usd::float8 AS cost_usd"
    )
    with conn.cursor(row_factory=dict_row) as cur:
        newest = cur.execute(
            f"SELECT {cols} FROM analyses WHERE conversation_id = %s ORDER BY created_at DESC LIMIT 1",
            (conversation_id,),
        ).fetchone()
        if newest is None or newest["status"] == "done":
            return newest, newest
        done = cur.execute(
            f"SELECT {cols} FROM analyses WHERE conversation_id = %s AND status = 'done'"
            " ORDER BY finished_at DESC LIMIT 1",
            (conversation_id,),
        ).fetchone()
    return newest, done


def idle_candidates(conn: psycopg.Connection, policies: dict[str, AutoPolicy], now: datetime) -> list[str]:
    """Conversations of opted-in teams idle for their team's ``idle_minutes``, not analysed since
    their last request, within the team's daily cap (runs queued today by this sweep count)."""
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    out: list[str] = []
    for team, policy in sorted(policies.items()):
        used = conn.execute(
            "SELECT count(*) FROM analyses WHERE team = %s AND trigger = 'auto' AND created_at >= %s",
            (team, day),
        ).fetchone()
        room = policy.daily_cap - int(used[0] if used else 0)
        if room <= 0:
            continue
        rows = conn.execute(
            "SELECT c.id::text FROM conversations c WHERE c.team = %s AND c.last_at <= %s"
            " AND c.last_at >= %s AND NOT EXISTS (SELECT 1 FROM analyses a WHERE a.conversation_id = c.id"
            " AND (a.status IN ('queued', 'running') OR a.created_at >= c.last_at))"
            " ORDER BY c.last_at DESC LIMIT %s",
            (team, now - timedelta(minutes=policy.idle_minutes), now - timedelta(days=2), room),
        ).fetchall()
        out += [r[0] for r in rows]
    return out
