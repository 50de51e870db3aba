"""What makes the pages live without a stream (Mangum buffers responses): a version tag per view,
computed from index reads only, that pages poll with If-None-Match; a 304 costs one small query.

The overview's tag moves with the newest request received, the newest conversation activity and the
newest analysis change; a conversation's with its activity, its request count and its analyses.
"""

from __future__ import annotations

import hashlib

import psycopg

from nexus_dashboard.scope import Scope


def etag(conn: psycopg.Connection, scope: Scope, conversation_id: str | None) -> str:
    """The tag of the overview (``conversation_id`` None: of the teams ``scope`` may read) or of one
    conversation (already checked to be in scope)."""
    if conversation_id is None:
        cond, args = scope.sql()
        row = conn.execute(
            f"SELECT (SELECT max(received_at) FROM requests WHERE {cond}),"
            f" (SELECT max(last_at) FROM conversations WHERE {cond}),"
            f" (SELECT max(greatest(created_at, started_at, finished_at)) FROM analyses WHERE {cond})",
            args * 3,
        ).fetchone()
    else:
        row = conn.execute(
            "SELECT c.last_at, c.request_count,"
            " (SELECT max(greatest(a.created_at, a.started_at, a.finished_at)) || ':' || count(*)"
            " FROM analyses a WHERE a.conversation_id = c.id) FROM conversations c WHERE c.id = %s",
            (conversation_id,),
        ).fetchone()
    digest = hashlib.sha256(repr(row).encode()).hexdigest()[:20]
    return f'W/"{digest}"'
