"""Read models of the dashboard: SQL lives here, routes stay thin."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson
import psycopg
from nexus.db.records import request_body
from psycopg.rows import dict_row

LIST_FIELDS = (
    "id, received_at, team, user_id AS user, session_id, agent_id, model, kind, path, stream, status, "
    "error, stop_reason, input_tokens, output_tokens, cache_creation_input_tokens, "
    "cache_creation_5m_tokens, cache_creation_1h_tokens, cache_read_input_tokens, "
    "cost_usd::float8 AS cost_usd, cost_flag, price_version, ttfb_ms, duration_ms, message_count, body_size"
)


def list_requests(
    conn: psycopg.Connection, limit: int, session_id: str | None, since: datetime | None
) -> list[dict[str, Any]]:
    where, args = [], []
    if session_id:
        where.append("session_id = %s")
        args.append(session_id)
    if since:
        where.append("received_at >= %s")
        args.append(since)
    sql = f"SELECT {LIST_FIELDS} FROM requests"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY received_at DESC, id DESC LIMIT %s"
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


def raw_response_body(conn: psycopg.Connection, request_id: str) -> tuple[bytes, list] | None:
    row = conn.execute(
        "SELECT response_raw, response_headers FROM requests WHERE id = %s", (request_id,)
    ).fetchone()
    if row is None:
        return None
    return bytes(row[0] or b""), row[1]


def _b(v: Any) -> bytes | None:
    return bytes(v) if v is not None else None
