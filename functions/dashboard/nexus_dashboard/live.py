"""What makes the pages live without a stream (Mangum buffers responses): a version tag per view,
computed from index reads only, that pages poll with If-None-Match; a 304 costs one small query.

The overview's tag moves with the newest request received, the newest conversation activity and the
newest analysis change; a conversation's with its activity, its request count and its analyses.
"""

from __future__ import annotations

import hashlib

import psycopg


def etag(conn: psycopg.Connection, conversation_id: str | None) -> str:
    if conversation_id is None:
        row = conn.execute(
            "SELECT (SELECT max(received_at) FROM requests), (SELECT max(last_at) FROM conversations),"
            " (SELECT max(greatest(created_at, started_at, finished_at)) FROM analyses)"
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
