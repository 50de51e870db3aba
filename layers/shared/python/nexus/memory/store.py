"""The memory index in PostgreSQL (migration 0010): a row per completed turn, recalled by one query
that measures the four factors of ``nexus.memory.scoring`` where the data is and returns the best
candidates for the request.

The current conversation is never recalled into itself: every conversation the request's history
belongs to (any of its continuity keys is a turn's state in the index or in ``gateway_states``, or
the client named it) is excluded, whatever branch of it a turn was on.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from nexus import pg_text
from nexus.memory.scoring import Factors, Weights, directory, score, select

MAX_TEXT = 20_000  # characters of a prompt and of an answer kept for search and recall
MAX_QUERY = 4_000  # characters of a request's text used as the query


def new_id() -> str:
    return "mem_" + secrets.token_hex(12)


@dataclass(slots=True)
class Entry:
    """A completed turn, as indexed."""

    team: str
    user: str
    key_id: str
    conversation_id: str
    state_key: bytes
    prompt: str
    answer: str
    cwd: str | None = None
    files: list[str] = field(default_factory=list)
    created_at: datetime | None = None  # None: now


@dataclass(frozen=True, slots=True)
class Query:
    """What to recall for: the request's text, where it works, and whose memory may be read."""

    text: str
    team: str
    user: str
    shared: bool = False  # the whole team's turns, not only this user's
    cwd: str | None = None
    files: Sequence[str] = ()  # files the current conversation named
    exclude: Sequence[str] = ()  # conversations never recalled (the current one)


@dataclass(slots=True)
class Recalled:
    id: str
    conversation_id: str
    user: str
    created_at: datetime
    cwd: str | None
    files: list[str]
    prompt: str
    answer: str
    factors: Factors
    score: float

    def doc(self) -> dict[str, Any]:
        """As ``GET /v1/memory/search`` lists it."""
        return {
            "object": "memory.item",
            "id": self.id,
            "conversation_id": self.conversation_id,
            "user": self.user,
            "created_at": int(self.created_at.timestamp()),
            "cwd": self.cwd,
            "files": self.files,
            "prompt": self.prompt,
            "answer": self.answer,
            "score": round(self.score, 4),
            "scores": {
                "text": round(self.factors.text, 4),
                "cwd": round(self.factors.cwd, 4),
                "files": round(self.factors.files, 4),
                "recency": round(self.factors.recency, 4),
            },
        }


# The request's words, any of which may match: each lexeme quoted for tsquery syntax, OR-ed into one
# query, and kept one by one to count how many of them a turn contains.
_WORDS = r"""
    SELECT CASE WHEN count(*) = 0 THEN NULL ELSE string_agg(term, ' | ')::tsquery END AS tsq,
           array_agg(term::tsquery) AS terms
    FROM (SELECT '''' || replace(replace(lexeme, '\', '\\'), '''', '''''') || '''' AS term
          FROM unnest(to_tsvector('english', %(text)s))) w
"""

# The four factors of every related candidate, measured here (their definitions, which the tests
# hold this query to, are in nexus.memory.scoring), ordered by the request's weighted sum.
_RECALL = f"""
WITH query AS ({_WORDS})
SELECT * FROM (
    SELECT m.id, m.conversation_id, m.user_id, m.created_at, m.cwd, m.files,
           left(m.prompt, %(chars)s) AS prompt, left(m.answer, %(chars)s) AS answer,
           CASE WHEN query.tsq IS NULL THEN 0.0 ELSE
               ts_rank_cd(m.document, query.tsq, 1 | 32)
               * (SELECT count(*) FROM unnest(query.terms) t WHERE m.document @@ t) / cardinality(query.terms)
           END::float8 AS f_text,
           CASE
               WHEN %(cwd)s::text IS NULL OR m.cwd IS NULL THEN 0.0
               WHEN m.cwd = %(cwd)s::text THEN 1.0
               WHEN starts_with(m.cwd, rtrim(%(cwd)s::text, '/') || '/')
                 OR starts_with(%(cwd)s::text, rtrim(m.cwd, '/') || '/') THEN 0.5
               ELSE 0.0
           END::float8 AS f_cwd,
           coalesce(
               cardinality(ARRAY(SELECT unnest(m.files) INTERSECT SELECT unnest(%(files)s::text[])))::float8
               / nullif(cardinality(ARRAY(SELECT unnest(m.files) UNION SELECT unnest(%(files)s::text[]))), 0),
               0.0
           ) AS f_files,
           exp(-greatest(extract(epoch FROM %(now)s::timestamptz - m.created_at)::float8 / 3600.0, 0.0)
               / 24.0) AS f_recency
    FROM gateway_memory m, query
    WHERE m.team = %(team)s
      AND (%(shared)s OR m.user_id = %(user)s)
      AND m.conversation_id <> ALL(%(exclude)s::text[])
      AND (m.document @@ query.tsq OR m.files && %(files)s::text[])
) c
ORDER BY %(w_text)s * f_text + %(w_cwd)s * f_cwd + %(w_files)s * f_files + %(w_recency)s * f_recency DESC,
         created_at DESC
LIMIT %(limit)s
"""


class MemoryStore:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool

    async def add(self, e: Entry) -> str:
        mid = new_id()
        async with self.pool.connection() as conn:
            await conn.execute(
                "INSERT INTO gateway_memory (id, team, user_id, key_id, conversation_id, state_key, cwd,"
                " files, prompt, answer, created_at)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, coalesce(%s, now()))",
                (
                    mid,
                    e.team,
                    e.user,
                    e.key_id,
                    e.conversation_id,
                    e.state_key,
                    directory(e.cwd),
                    [pg_text.text(f) for f in e.files],
                    pg_text.text(e.prompt[:MAX_TEXT]),
                    pg_text.text(e.answer[:MAX_TEXT]),
                    e.created_at,
                ),
            )
        return mid

    async def current(
        self, history_keys: Sequence[bytes], conversation_id: str | None
    ) -> tuple[list[str], list[str]]:
        """The conversations a request's history belongs to (its continuity keys are states of
        theirs; or the client named one), and the files their indexed turns named."""
        async with self.pool.connection() as conn:
            row = await (
                await conn.execute(
                    "WITH mine AS ("
                    " SELECT conversation_id FROM gateway_memory WHERE state_key = ANY(%(keys)s)"
                    " UNION SELECT conversation_id FROM gateway_states WHERE key = ANY(%(keys)s)"
                    " UNION SELECT %(conv)s::text WHERE %(conv)s::text IS NOT NULL)"
                    " SELECT ARRAY(SELECT conversation_id FROM mine),"
                    " ARRAY(SELECT DISTINCT unnest(files) FROM gateway_memory"
                    "       WHERE conversation_id IN (SELECT conversation_id FROM mine))",
                    {"keys": list(history_keys), "conv": conversation_id},
                )
            ).fetchone()
        assert row is not None
        return list(row[0]), sorted(row[1])

    async def recall(
        self,
        q: Query,
        weights: Weights,
        min_score: float,
        limit: int,
        item_chars: int = MAX_TEXT,
        now: datetime | None = None,
    ) -> list[Recalled]:
        """The related earlier turns scoring at least ``min_score``, best first, at most ``limit``."""
        if limit <= 0:
            return []
        cwd = directory(q.cwd)
        w = weights.applicable(has_cwd=cwd is not None, has_files=bool(q.files))
        params = {
            "text": pg_text.text(q.text[:MAX_QUERY]),
            "team": q.team,
            "user": q.user,
            "shared": q.shared,
            "cwd": cwd,
            "files": [pg_text.text(f) for f in q.files],
            "exclude": list(q.exclude),
            "now": now or datetime.now(UTC),
            "chars": item_chars,
            "limit": limit,
            "w_text": w.text,
            "w_cwd": w.cwd,
            "w_files": w.files,
            "w_recency": w.recency,
        }
        async with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            rows = await (await cur.execute(_RECALL, params)).fetchall()
        candidates = []
        for r in rows:
            f = Factors(r["f_text"], r["f_cwd"], r["f_files"], r["f_recency"])
            item = Recalled(
                r["id"],
                r["conversation_id"],
                r["user_id"],
                r["created_at"],
                r["cwd"],
                list(r["files"]),
                r["prompt"],
                r["answer"],
                f,
                score(f, w),
            )
            candidates.append((item, f))
        return [item for item, _ in select(candidates, w, min_score, limit)]

    async def forget(self, item_id: str, team: str, user: str) -> bool:
        """Delete one of this user's own items; False if there is none with that id."""
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "DELETE FROM gateway_memory WHERE id = %s AND team = %s AND user_id = %s",
                (item_id, team, user),
            )
        return cur.rowcount > 0
