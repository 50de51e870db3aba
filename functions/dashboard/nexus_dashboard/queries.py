"""Read models of the dashboard: SQL lives here, routes stay thin."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson
import psycopg
from nexus.db.records import request_body
from nexus.pricing import context_window
from psycopg.rows import dict_row

LIST_FIELDS = (
    "id, received_at, team, user_id AS user, session_id, agent_id, model, kind, path, stream, status, "
    "error, stop_reason, input_tokens, output_tokens, cache_creation_input_tokens, "
    "cache_creation_5m_tokens, cache_creation_1h_tokens, cache_read_input_tokens, "
    "cost_usd::float8 AS cost_usd, cost_flag, price_version, ttfb_ms, duration_ms, message_count, body_size, "
    "conversation_id::text, parent_request_id::text, link, branch, is_subtask, parent_task_request_id::text, "
    "task_tool_use_id, context_tokens"
)


def _where(filters: list[tuple[str, Any]]) -> tuple[str, list[Any]]:
    """`` WHERE a AND b`` from (condition with one %s, value) pairs whose value is set."""
    used = [(cond, value) for cond, value in filters if value]
    if not used:
        return "", []
    return " WHERE " + " AND ".join(c for c, _ in used), [v for _, v in used]


def list_requests(
    conn: psycopg.Connection, limit: int, session_id: str | None, since: datetime | None
) -> list[dict[str, Any]]:
    where, args = _where([("session_id = %s", session_id), ("received_at >= %s", since)])
    sql = f"SELECT {LIST_FIELDS} FROM requests{where} ORDER BY received_at DESC, id DESC LIMIT %s"
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(sql, [*args, limit]).fetchall()
    for r in rows:
        r["id"] = str(r["id"])
    return rows


def get_request(conn: psycopg.Connection, request_id: str) -> dict[str, Any] | None:
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            f"SELECT {LIST_FIELDS}, method, query, auth_mode, key_id, account, upstream,"
            " request_headers, response_headers, ratelimit, body_layout, messages_chain, response"
            " FROM requests WHERE id = %s",
            (request_id,),
        ).fetchone()
    if row is None:
        return None
    row["id"] = str(row["id"])
    body = request_body(conn, row.pop("body_layout"), _b(row.pop("messages_chain")))
    headers_hash = _b(row.pop("request_headers"))
    headers = conn.execute("SELECT data FROM blobs WHERE hash = %s", (headers_hash,)).fetchone()
    row["request_headers"] = orjson.loads(headers[0]) if headers else []
    try:
        row["request_body"] = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        row["request_body"] = body.decode("utf-8", "replace")
    return row


def raw_request_body(conn: psycopg.Connection, request_id: str) -> bytes | None:
    row = conn.execute(
        "SELECT body_layout, messages_chain FROM requests WHERE id = %s", (request_id,)
    ).fetchone()
    if row is None:
        return None
    return request_body(conn, row[0], _b(row[1]))


def raw_response_body(conn: psycopg.Connection, request_id: str) -> tuple[bytes, dict[str, str]] | None:
    """The response bytes as received, or, for a complete stream (stored as its rebuilt message
    only), that message as JSON, marked with ``x-nexus-rebuilt``."""
    row = conn.execute(
        "SELECT response_raw, response_headers, response FROM requests WHERE id = %s", (request_id,)
    ).fetchone()
    if row is None:
        return None
    raw, headers, rebuilt = row
    if raw is None and rebuilt is not None:
        return orjson.dumps(rebuilt), {"content-type": "application/json", "x-nexus-rebuilt": "from-stream"}
    keep = {k: v for k, v in headers if k in ("content-type", "content-encoding")}
    return bytes(raw or b""), keep


def _b(v: Any) -> bytes | None:
    return bytes(v) if v is not None else None


CONVERSATION_FIELDS = (
    "id::text, team, user_id AS user, title, models, session_ids, request_count, input_tokens, "
    "output_tokens, "
    "cache_creation_input_tokens, cache_read_input_tokens, cost_usd::float8 AS cost_usd, first_at, last_at, "
    "branch_count, subagent_count, compaction_count, latest_context_tokens, latest_model"
)


def list_conversations(
    conn: psycopg.Connection,
    *,
    team: str | None,
    user: str | None,
    model: str | None,
    since: datetime | None,
    q: str | None,
    limit: int,
    offset: int,
) -> list[dict[str, Any]]:
    where, args = _where(
        [
            ("team = %s", team),
            ("user_id = %s", user),
            ("%s = ANY(models)", model),
            ("last_at >= %s", since),
            (
                "id IN (SELECT conversation_id FROM conversation_text"
                " WHERE tsv @@ websearch_to_tsquery('english', %s))",
                q,
            ),
        ]
    )
    sql = (
        f"SELECT {CONVERSATION_FIELDS} FROM conversations{where}"
        " ORDER BY last_at DESC, id DESC LIMIT %s OFFSET %s"
    )
    with conn.cursor(row_factory=dict_row) as cur:
        return [_with_window(c) for c in cur.execute(sql, [*args, limit, offset]).fetchall()]


def _with_window(conv: dict[str, Any]) -> dict[str, Any]:
    """Latest context size against the model's context window (None when the model is unknown)."""
    window = context_window(conv.get("latest_model"))
    conv["context_window"] = window
    ctx = conv.get("latest_context_tokens")
    conv["context_fill"] = round(ctx / window, 4) if window and ctx is not None else None
    return conv


def get_conversation(conn: psycopg.Connection, conversation_id: str) -> dict[str, Any] | None:
    with conn.cursor(row_factory=dict_row) as cur:
        conv = cur.execute(
            f"SELECT {CONVERSATION_FIELDS} FROM conversations WHERE id = %s", (conversation_id,)
        ).fetchone()
        if conv is None:
            return None
        _with_window(conv)
        conv["branches"] = cur.execute(
            "SELECT name, kind, fork_request_id::text, request_count, input_tokens, output_tokens,"
            " cost_usd::float8 AS cost_usd, first_at, last_at FROM branches WHERE conversation_id = %s"
            " ORDER BY first_at, name",
            (conversation_id,),
        ).fetchall()
        requests = cur.execute(
            f"SELECT {LIST_FIELDS} FROM requests WHERE conversation_id = %s ORDER BY received_at, id",
            (conversation_id,),
        ).fetchall()
    for r in requests:
        r["id"] = str(r["id"])
    conv["requests"] = requests
    return conv
