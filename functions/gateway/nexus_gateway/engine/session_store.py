"""Claude Code transcripts in PostgreSQL, through the SDK's ``SessionStore`` protocol: any worker
(another process, another Fargate task) can resume any conversation from here.

The CLI still writes its local JSONL; the SDK mirrors each batch to ``append`` after that write,
and on resume loads the whole transcript with ``load`` and materialises it for the CLI. Entries are
opaque JSON: stored as ``jsonb`` (key order is not kept; the SDK compares entries deep, never as
bytes), deduplicated by their ``uuid`` when they have one.
"""

from __future__ import annotations

import time
from typing import Any

from claude_agent_sdk import fold_session_summary
from claude_agent_sdk.types import (
    SessionKey,
    SessionListSubkeysKey,
    SessionStoreEntry,
    SessionStoreListEntry,
    SessionSummaryEntry,
)
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool


def _sub(key: SessionKey) -> str:
    return key.get("subpath") or ""


class PostgresSessionStore:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool

    async def append(self, key: SessionKey, entries: list[SessionStoreEntry]) -> None:
        if not entries:
            return
        project, session, sub = key["project_key"], key["session_id"], _sub(key)
        async with self.pool.connection() as conn, conn.transaction():
            # One writer per transcript at a time: the summary fold reads, folds and writes.
            await conn.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (f"{project}/{session}/{sub}",)
            )
            async with conn.cursor() as cur:
                await cur.executemany(
                    "INSERT INTO gateway_transcript_entries (project_key, session_id, subpath, uuid, entry)"
                    " VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                    [(project, session, sub, e.get("uuid"), Jsonb(e)) for e in entries],
                )
                row = await (
                    await cur.execute(
                        "SELECT mtime, summary FROM gateway_transcripts"
                        " WHERE project_key = %s AND session_id = %s AND subpath = %s",
                        (project, session, sub),
                    )
                ).fetchone()
                mtime = max(int(time.time() * 1000), (row[0] + 1) if row else 0)
                summary = None
                if not sub:
                    prev = row[1] if row else None
                    folded = fold_session_summary(prev, key, entries)
                    summary = {**folded, "mtime": mtime}
                await cur.execute(
                    "INSERT INTO gateway_transcripts (project_key, session_id, subpath, mtime, summary)"
                    " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (project_key, session_id, subpath)"
                    " DO UPDATE SET mtime = EXCLUDED.mtime, summary = EXCLUDED.summary",
                    (project, session, sub, mtime, Jsonb(summary) if summary is not None else None),
                )

    async def load(self, key: SessionKey) -> list[SessionStoreEntry] | None:
        async with self.pool.connection() as conn:
            rows = await (
                await conn.execute(
                    "SELECT entry FROM gateway_transcript_entries"
                    " WHERE project_key = %s AND session_id = %s AND subpath = %s ORDER BY seq",
                    (key["project_key"], key["session_id"], _sub(key)),
                )
            ).fetchall()
        return [r[0] for r in rows] if rows else None

    async def list_sessions(self, project_key: str) -> list[SessionStoreListEntry]:
        async with self.pool.connection() as conn:
            rows = await (
                await conn.execute(
                    "SELECT session_id, mtime FROM gateway_transcripts"
                    " WHERE project_key = %s AND subpath = ''",
                    (project_key,),
                )
            ).fetchall()
        return [{"session_id": r[0], "mtime": int(r[1])} for r in rows]

    async def list_session_summaries(self, project_key: str) -> list[SessionSummaryEntry]:
        async with self.pool.connection() as conn:
            rows = await (
                await conn.execute(
                    "SELECT summary FROM gateway_transcripts"
                    " WHERE project_key = %s AND subpath = '' AND summary IS NOT NULL",
                    (project_key,),
                )
            ).fetchall()
        return [r[0] for r in rows]

    async def delete(self, key: SessionKey) -> None:
        where = "project_key = %s AND session_id = %s"
        args: tuple[Any, ...] = (key["project_key"], key["session_id"])
        if key.get("subpath") is not None:  # a targeted delete; the main key cascades to subkeys
            where += " AND subpath = %s"
            args = (*args, _sub(key))
        async with self.pool.connection() as conn, conn.transaction():
            await conn.execute(f"DELETE FROM gateway_transcript_entries WHERE {where}", args)
            await conn.execute(f"DELETE FROM gateway_transcripts WHERE {where}", args)

    async def list_subkeys(self, key: SessionListSubkeysKey) -> list[str]:
        async with self.pool.connection() as conn:
            rows = await (
                await conn.execute(
                    "SELECT subpath FROM gateway_transcripts"
                    " WHERE project_key = %s AND session_id = %s AND subpath <> ''",
                    (key["project_key"], key["session_id"]),
                )
            ).fetchall()
        return [r[0] for r in rows]
