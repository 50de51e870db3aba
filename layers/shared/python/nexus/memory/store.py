"""The memory index in PostgreSQL (migration 0010): a row per completed turn, and the recall of the
best of them for a request (``nexus.memory.scoring`` defines the score; PostgreSQL's full-text search
measures the text).

The current conversation is never recalled into itself: every conversation the request's history
belongs to (any of its continuity keys is a turn's state in the index or in ``gateway_states``, or
the client named it) is excluded, whatever branch of it a turn was on.
"""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from nexus import pg_text
from nexus.memory.scoring import (
    Factors,
    Weights,
    directory,
    jaccard,
    recency,
    same_directory,
    score,
    select,
)

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
    keep_days: int | None = None  # the team's retention: older turns of the team go when this is added


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
    keep_days: int | None = None  # the team's retention: older turns are never recalled


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

# Phase 1, the candidates: every turn in scope sharing a word with the request (how many of its
# words, counted through the GIN index: no document is read) or a file, with what the other factors
# need. Cheap per row, so it can look at every candidate.
_CANDIDATES = f"""
WITH query AS ({_WORDS}),
hits AS (
    SELECT m.id, count(*) AS matched, m.cwd, m.files, m.created_at
    FROM query, unnest(query.terms) AS t JOIN gateway_memory m ON m.document @@ t
    WHERE m.team = %(team)s AND (%(shared)s OR m.user_id = %(user)s)
      AND m.conversation_id <> ALL(%(exclude)s::text[]) AND m.created_at >= %(since)s
    GROUP BY m.id
    UNION ALL
    SELECT m.id, 0, m.cwd, m.files, m.created_at FROM gateway_memory m
    WHERE m.files && %(files)s::text[] AND m.team = %(team)s AND (%(shared)s OR m.user_id = %(user)s)
      AND m.conversation_id <> ALL(%(exclude)s::text[]) AND m.created_at >= %(since)s
)
SELECT id, max(matched) AS matched, coalesce((SELECT cardinality(terms) FROM query), 0) AS words,
       min(cwd) AS cwd, min(files) AS files, min(created_at) AS created_at
FROM hits GROUP BY id
"""

# Phase 2, for the most promising candidates only: the rank (which reads the document) and the text.
_RANKED = f"""
WITH query AS ({_WORDS})
SELECT m.id, m.conversation_id, m.user_id, left(m.prompt, %(chars)s) AS prompt,
       left(m.answer, %(chars)s) AS answer,
       coalesce(ts_rank_cd(m.document, query.tsq, 1 | 32), 0)::float8 AS rank
FROM gateway_memory m, query
WHERE m.id = ANY(%(ids)s)
"""


@dataclass(slots=True)
class _Candidate:
    id: str
    coverage: float  # the share of the request's words the turn contains: text relevance at most
    factors: Factors  # with text = coverage until ranked
    bound: float  # the score at most
    cwd: str | None
    files: list[str]
    created_at: datetime


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
            if e.keep_days:
                # The team's retention, applied as its turns arrive: one indexed delete, usually of
                # nothing. Recall never reads past it either, whether or not the team still writes.
                await conn.execute(
                    "DELETE FROM gateway_memory WHERE team = %s"
                    " AND created_at < coalesce(%s, now()) - make_interval(days => %s)",
                    (e.team, e.created_at, e.keep_days),
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
        """The related earlier turns scoring at least ``min_score``, best first, at most ``limit``.

        Exact, in two phases: every candidate's factors but text, and the share of the request's words
        it contains (text relevance is at most that), give each an upper bound of its score; the
        candidates are then ranked in that order, a batch at a time, until no unranked one can beat
        the ``limit``-th best ranked."""
        if limit <= 0:
            return []
        cwd = directory(q.cwd)
        w = weights.applicable(has_cwd=cwd is not None, has_files=bool(q.files))
        now = now or datetime.now(UTC)
        params: dict[str, Any] = {
            "text": pg_text.text(q.text[:MAX_QUERY]),
            "team": q.team,
            "user": q.user,
            "shared": q.shared,
            "files": [pg_text.text(f) for f in q.files],
            "exclude": list(q.exclude),
            "chars": item_chars,
            "since": now - timedelta(days=q.keep_days) if q.keep_days else datetime.min.replace(tzinfo=UTC),
        }
        async with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            rows = await (await cur.execute(_CANDIDATES, params)).fetchall()
            candidates = []
            for r in rows:
                coverage = r["matched"] / r["words"] if r["words"] else 0.0
                f = Factors(
                    coverage,
                    same_directory(r["cwd"], cwd),  # both normalised
                    jaccard(r["files"], q.files),
                    recency((now - r["created_at"]).total_seconds() / 3600),
                )
                bound = score(f, w)
                if f.related and bound >= min_score:  # text <= coverage: nothing else can qualify
                    candidates.append(
                        _Candidate(r["id"], coverage, f, bound, r["cwd"], r["files"], r["created_at"])
                    )
            candidates.sort(key=lambda c: (c.bound, c.created_at), reverse=True)
            best: list[Recalled] = []
            batch = max(2 * limit, 10)
            for start in range(0, len(candidates), batch):
                chunk = {c.id: c for c in candidates[start : start + batch]}
                ranked = await (await cur.execute(_RANKED, {**params, "ids": list(chunk)})).fetchall()
                for r in ranked:
                    c = chunk[r["id"]]
                    f = dataclasses.replace(c.factors, text=r["rank"] * c.coverage)
                    item = Recalled(
                        c.id,
                        r["conversation_id"],
                        r["user_id"],
                        c.created_at,
                        c.cwd,
                        list(c.files),
                        r["prompt"],
                        r["answer"],
                        f,
                        score(f, w),
                    )
                    best.append(item)
                kept = select([(i, i.factors) for i in best], w, min_score, limit)
                best = [i for i, _ in kept]
                after = start + batch
                if len(best) == limit and (
                    after >= len(candidates) or best[-1].score >= candidates[after].bound
                ):
                    break
        return best

    async def forget(self, item_id: str, team: str, user: str) -> bool:
        """Delete one of this user's own items; False if there is none with that id."""
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "DELETE FROM gateway_memory WHERE id = %s AND team = %s AND user_id = %s",
                (pg_text.text(item_id), team, user),  # an id with U+0000 names nothing (and PG refuses it)
            )
        return cur.rowcount > 0
