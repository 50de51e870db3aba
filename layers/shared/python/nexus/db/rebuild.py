"""Recompute conversation links and summaries from stored records, idempotently.

Whole conversations are rebuilt (a filter selects requests; every conversation they belong to is
taken in full), through the same code as live ingest: stored record -> ``prepare`` -> keys ->
``link_request``. Running it twice gives the same result as running it once.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import psycopg

from nexus.db.records import raw_records
from nexus.db.tracking import link_request
from nexus.derive import KEY_COLUMNS, prepare
from nexus.tracking.linkable import LINKED_KINDS

CHUNK = 200


def _selected_ids(conn: psycopg.Connection, team: str | None, since: datetime | None) -> list[str]:
    where = ["(kind = ANY(%s) OR session_id IS NOT NULL)"]
    args: list[Any] = [list(LINKED_KINDS)]
    if team is not None:
        where.append("team = %s")
        args.append(team)
    if since is not None:
        where.append("received_at >= %s")
        args.append(since)
    cond = " AND ".join(where)
    rows = conn.execute(
        f"WITH picked AS (SELECT id, conversation_id FROM requests WHERE {cond})"
        " SELECT r.id::text FROM requests r WHERE r.id IN (SELECT id FROM picked)"
        " OR r.conversation_id IN (SELECT conversation_id FROM picked WHERE conversation_id IS NOT NULL)"
        " ORDER BY r.received_at, r.id",
        args,
    ).fetchall()
    return [r[0] for r in rows]


def _clear(conn: psycopg.Connection, ids: list[str]) -> None:
    conn.execute(
        "DELETE FROM conversations WHERE id IN"
        " (SELECT DISTINCT conversation_id FROM requests WHERE id = ANY(%s))",
        (ids,),
    )
    conn.execute(
        "DELETE FROM branches WHERE conversation_id IN"
        " (SELECT DISTINCT conversation_id FROM requests WHERE id = ANY(%s))",
        (ids,),
    )
    conn.execute("DELETE FROM subtask_invocations WHERE request_id = ANY(%s)", (ids,))
    conn.execute("DELETE FROM conversation_text WHERE request_id = ANY(%s)", (ids,))
    conn.execute(
        "UPDATE requests SET conversation_id = NULL, parent_request_id = NULL, link = NULL, branch = NULL,"
        " is_subtask = false, parent_task_request_id = NULL, task_tool_use_id = NULL WHERE id = ANY(%s)",
        (ids,),
    )


def rebuild(
    conn: psycopg.Connection,
    team: str | None = None,
    since: datetime | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Relink the selected requests' conversations. Returns how many requests were relinked."""
    with conn.transaction():
        ids = _selected_ids(conn, team, since)
        if ids:
            _clear(conn, ids)
    done = 0
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start : start + CHUNK]
        with conn.transaction():
            for rec in raw_records(conn, "id = ANY(%s)", (chunk,)):
                p = prepare(rec)
                cols = ("kind", "context_tokens", *KEY_COLUMNS)
                conn.execute(
                    f"UPDATE requests SET {', '.join(f'{c} = %s' for c in cols)} WHERE id = %s",
                    [*(p.row[c] for c in cols), rec.id],
                )
                if p.link is not None:
                    link_request(conn, p.link)
        done += len(chunk)
        if progress:
            progress(done, len(ids))
    return len(ids)
