"""Read models of the dashboard: SQL lives here, routes stay thin."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

import orjson
import psycopg
from nexus.db.records import request_body
from nexus.pricing import context_window
from psycopg.rows import dict_row

from nexus_dashboard.schemas import (
    Conversation,
    ConversationSummary,
    JsonObject,
    RequestDetail,
    RequestSummary,
    TreeRequest,
)
from nexus_dashboard.scope import Scope

LIST_FIELDS = (
    "id, received_at, team, user_id AS user, session_id, agent_id, model, kind, path, stream, status, "
    "error, stop_reason, input_tokens, output_tokens, cache_creation_input_tokens, "
    "cache_creation_5m_tokens, cache_creation_1h_tokens, cache_read_input_tokens, "
    "cost_usd::float8 AS cost_usd, cost_flag, price_version, ttfb_ms, duration_ms, message_count, body_size, "
    "conversation_id::text, parent_request_id::text, link, branch, is_subtask, parent_task_request_id::text, "
    "task_tool_use_id, context_tokens"
)


def where(filters: list[tuple[str, Any]], *, scope: Scope) -> tuple[str, list[Any]]:
    """`` WHERE a AND b`` from (condition with one %s, value) pairs whose value is set, always
    narrowed to the teams ``scope`` may read (``scope.py``)."""
    used = [(cond, value) for cond, value in filters if value]
    scoped, scope_args = scope.sql()
    conds = [c for c, _ in used] + ([] if scope.everything else [scoped])
    if not conds:
        return "", []
    return " WHERE " + " AND ".join(conds), [v for _, v in used] + scope_args


def team_of(conn: psycopg.Connection, table: str, row_id: str) -> tuple[bool, str | None]:
    """Whether a row of ``table`` (requests or conversations) exists, and its team: what
    ``Scope.allows`` decides one row by."""
    assert table in ("requests", "conversations")
    row = conn.execute(f"SELECT team FROM {table} WHERE id = %s", (row_id,)).fetchone()
    return (row is not None, row[0] if row else None)


def list_requests(
    conn: psycopg.Connection,
    limit: int,
    session_id: str | None,
    since: datetime | None,
    team: str | None = None,
    user: str | None = None,
    *,
    scope: Scope,
) -> list[RequestSummary]:
    cond, args = where(
        [
            ("session_id = %s", session_id),
            ("received_at >= %s", since),
            ("team = %s", team),
            ("user_id = %s", user),
        ],
        scope=scope,
    )
    sql = f"SELECT {LIST_FIELDS} FROM requests{cond} ORDER BY received_at DESC, id DESC LIMIT %s"
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(sql, [*args, limit]).fetchall()
    for r in rows:
        r["id"] = str(r["id"])
    return cast(list[RequestSummary], rows)  # the SELECT list is the shape's (FastAPI checks it)


def get_request(conn: psycopg.Connection, request_id: str) -> RequestDetail | None:
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
    return cast(RequestDetail, row)  # the SELECT list, headers and body: the shape (FastAPI checks it)


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
    keep.setdefault("content-type", "application/octet-stream")  # none recorded: say it is bytes
    return bytes(raw or b""), keep


def _b(v: Any) -> bytes | None:
    return bytes(v) if v is not None else None


_CONTENT = (
    "jsonb_array_elements(CASE jsonb_typeof(response->'content')"
    " WHEN 'array' THEN response->'content' ELSE '[]' END)"
)
# What a tree row shows of the answer, cut in SQL so a long conversation's rows stay small.
ANSWER_SUMMARY = (
    f"(SELECT left(string_agg(c->>'text', ' '), 240) FROM {_CONTENT} c WHERE c->>'type' = 'text')"
    " AS answer_text,"
    f" (SELECT array_agg(c->>'name') FROM {_CONTENT} c WHERE c->>'type' IN ('tool_use', 'server_tool_use'))"
    " AS tool_names"
)

CONVERSATION_FIELDS = (
    "id::text, team, user_id AS user, title, models, session_ids, request_count, input_tokens, "
    "output_tokens, "
    "cache_creation_input_tokens, cache_read_input_tokens, cost_usd::float8 AS cost_usd, first_at, last_at, "
    "branch_count, subagent_count, compaction_count, latest_context_tokens, latest_model"
)


def with_window(conv: dict[str, Any]) -> ConversationSummary:
    """Latest context size against the model's context window (None when the model is unknown),
    added to a row of ``CONVERSATION_FIELDS``, which makes it a ``ConversationSummary``."""
    window = context_window(conv.get("latest_model"))
    conv["context_window"] = window
    ctx = conv.get("latest_context_tokens")
    conv["context_fill"] = round(ctx / window, 4) if window and ctx is not None else None
    return cast(ConversationSummary, conv)  # FastAPI checks the shape at runtime


def get_conversation(conn: psycopg.Connection, conversation_id: str) -> dict[str, Any] | None:
    with conn.cursor(row_factory=dict_row) as cur:
        conv = cur.execute(
            f"SELECT {CONVERSATION_FIELDS} FROM conversations WHERE id = %s", (conversation_id,)
        ).fetchone()
        if conv is None:
            return None
        with_window(conv)
        conv["branches"] = cur.execute(
            "SELECT name, kind, fork_request_id::text, request_count, input_tokens, output_tokens,"
            " cost_usd::float8 AS cost_usd, first_at, last_at FROM branches WHERE conversation_id = %s"
            " ORDER BY first_at, name",
            (conversation_id,),
        ).fetchall()
        requests = cur.execute(
            f"SELECT {LIST_FIELDS}, {ANSWER_SUMMARY} FROM requests WHERE conversation_id = %s"
            " ORDER BY received_at, id",
            (conversation_id,),
        ).fetchall()
    for r in requests:
        r["id"] = str(r["id"])
    conv["requests"] = requests
    return conv


def last_messages(conn: psycopg.Connection, conversation_id: str) -> dict[str, JsonObject | None]:
    """Each request's newest user or assistant message (what it added to the conversation: a prompt
    or tool results), decoded; one query for the whole conversation. The two last messages are read
    because the client may append a context message of another role after the prompt."""
    rows = conn.execute(
        "SELECT r.id::text, b.data, pb.data FROM requests r"
        " JOIN message_chains mc ON mc.id = r.messages_chain JOIN blobs b ON b.hash = mc.message_hash"
        " LEFT JOIN message_chains pc ON pc.id = mc.parent_id LEFT JOIN blobs pb ON pb.hash = pc.message_hash"
        " WHERE r.conversation_id = %s",
        (conversation_id,),
    ).fetchall()
    out: dict[str, JsonObject | None] = {}
    for request_id, *candidates in rows:
        out[request_id] = None
        for data in candidates:
            try:
                message = orjson.loads(data) if data is not None else None
            except orjson.JSONDecodeError:
                message = None
            if isinstance(message, dict) and message.get("role") in ("user", "assistant"):
                out[request_id] = message
                break
    return out


class TimelineRow(TreeRequest):
    """A conversation's request with its newest user or assistant message and its response."""

    prompt: JsonObject | None
    response: JsonObject | None


def timeline(conn: psycopg.Connection, conv: Conversation) -> list[TimelineRow]:
    """The conversation's shown requests in order, each with its newest user/assistant message
    (``prompt``) and its ``response``."""
    prompts = last_messages(conn, conv["id"])
    responses: dict[str, JsonObject | None] = dict(
        conn.execute(
            "SELECT id::text, response FROM requests WHERE conversation_id = %s", (conv["id"],)
        ).fetchall()
    )
    return [
        {**r, "prompt": prompts.get(r["id"]), "response": responses.get(r["id"])} for r in conv["requests"]
    ]
