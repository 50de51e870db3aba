"""Claude Code transcripts in PostgreSQL, through the SDK's ``SessionStore`` protocol: any worker
(another process, another Fargate task) can resume any conversation from here.

The CLI still writes its local JSONL; the SDK mirrors each batch to ``append`` after that write,
and on resume loads the whole transcript with ``load`` and materialises it for the CLI. Entries are
opaque JSON: stored as ``jsonb`` (key order is not kept; the SDK compares entries deep, never as
bytes), deduplicated by their ``uuid`` when they have one. Session summaries (an optional part of the
protocol, for listing sessions through the SDK) are not kept: the gateway lists its own conversations,
and each append stays one short transaction.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from claude_agent_sdk.types import (
    SessionKey,
    SessionListSubkeysKey,
    SessionStoreEntry,
    SessionStoreListEntry,
)
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

log = logging.getLogger("nexus.gateway.sessions")


def _sub(key: SessionKey) -> str:
    return key.get("subpath") or ""


class PostgresSessionStore:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool

    async def append(self, key: SessionKey, entries: list[SessionStoreEntry]) -> None:
        if not entries:
            return
        project, session, sub = key["project_key"], key["session_id"], _sub(key)
        async with self.pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            await cur.executemany(
                "INSERT INTO gateway_transcript_entries (project_key, session_id, subpath, uuid, entry)"
                " VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                [(project, session, sub, e.get("uuid"), Jsonb(e)) for e in entries],
            )
            # mtime: storage write time in epoch ms, strictly increasing per transcript.
            await cur.execute(
                "INSERT INTO gateway_transcripts AS t (project_key, session_id, subpath, mtime)"
                " VALUES (%s, %s, %s, (extract(epoch FROM clock_timestamp()) * 1000)::bigint)"
                " ON CONFLICT (project_key, session_id, subpath) DO UPDATE SET mtime ="
                " greatest(EXCLUDED.mtime, t.mtime + 1)",
                (project, session, sub),
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


class BackgroundWrites:
    """A SessionStore whose appends return at once and are written in order in the background: the
    SDK mirrors a transcript when a turn ends, which is exactly when the client's next turn starts.
    Reads wait until every append made before them is written, so a resume sees the whole
    transcript. (The CLI wrote its local copy first; a crash loses at most the pending mirror.)"""

    def __init__(self, inner: PostgresSessionStore) -> None:
        self.inner = inner
        self._queue: asyncio.Queue[tuple[SessionKey, list[SessionStoreEntry]]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    async def append(self, key: SessionKey, entries: list[SessionStoreEntry]) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._drain(), name="gateway-transcript-writes")
        self._queue.put_nowait((key, entries))

    async def _drain(self) -> None:
        while True:
            key, entries = await self._queue.get()
            try:
                await self.inner.append(key, entries)
            except Exception:
                log.exception("could not mirror transcript entries of session %s", key.get("session_id"))
            finally:
                self._queue.task_done()

    async def flushed(self) -> None:
        await self._queue.join()

    async def load(self, key: SessionKey) -> list[SessionStoreEntry] | None:
        await self.flushed()
        return await self.inner.load(key)

    async def list_sessions(self, project_key: str) -> list[SessionStoreListEntry]:
        await self.flushed()
        return await self.inner.list_sessions(project_key)

    async def delete(self, key: SessionKey) -> None:
        await self.flushed()
        await self.inner.delete(key)

    async def list_subkeys(self, key: SessionListSubkeysKey) -> list[str]:
        await self.flushed()
        return await self.inner.list_subkeys(key)

    async def close(self) -> None:
        await self.flushed()
        if self._task is not None:
            self._task.cancel()
