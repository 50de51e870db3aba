"""What the gateway remembers between requests: which session holds which history, and the
conversations clients can list. PostgreSQL in the stack (shared by every worker); memory when the
gateway runs without a database (then a restart forgets, and histories are rebuilt from what
clients resend).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Protocol

from nexus import pg_text
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool


@dataclass(slots=True)
class StateRef:
    """Where a history lives: a session, at a point of its transcript."""

    session_id: str
    conversation_id: str
    config_key: str
    project: str
    entry_uuid: str | None = None
    latest: bool = True  # the session's newest state; otherwise continuing it means forking


@dataclass(slots=True)
class Conversation:
    id: str
    session_id: str
    scope: str
    team: str | None
    user: str | None
    model: str
    system: str | None
    config_key: str
    state_key: bytes | None = None
    turns: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cost_usd: Decimal = Decimal(0)
    metadata: dict[str, Any] | None = None
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    last_used_at: datetime = field(default_factory=lambda: datetime.now(UTC))


def new_conversation_id() -> str:
    return "conv_" + secrets.token_hex(12)


class StateStore(Protocol):
    async def find(self, keys: list[bytes]) -> tuple[int, StateRef] | None: ...
    async def turn_recorded(
        self, key: bytes, ref: StateRef, usage: tuple[int, int, int], cost: Decimal
    ) -> None: ...
    async def moved_on(self, session_id: str) -> None: ...
    async def create(self, conv: Conversation) -> None: ...
    async def get(self, conv_id: str) -> Conversation | None: ...
    async def listing(self, scope: str, limit: int, after: str | None) -> list[Conversation]: ...
    async def save_response(
        self, rid: str, scope: str, conv_id: str, state_key: bytes | None, body: dict[str, Any]
    ) -> None: ...
    async def get_response(self, rid: str) -> StoredResponse | None: ...


@dataclass(slots=True)
class StoredResponse:
    id: str
    scope: str
    conversation_id: str
    state_key: bytes | None
    body: dict[str, Any]


def _longest(keys: list[bytes], known: dict[bytes, StateRef]) -> tuple[int, StateRef] | None:
    for i in range(len(keys) - 1, -1, -1):
        ref = known.get(keys[i])
        if ref is not None:
            return i, ref
    return None


class MemoryState:
    def __init__(self) -> None:
        self.states: dict[bytes, StateRef] = {}
        self.conversations: dict[str, Conversation] = {}
        self.responses: dict[str, StoredResponse] = {}

    async def save_response(
        self, rid: str, scope: str, conv_id: str, state_key: bytes | None, body: dict[str, Any]
    ) -> None:
        self.responses[rid] = StoredResponse(rid, scope, conv_id, state_key, body)

    async def get_response(self, rid: str) -> StoredResponse | None:
        return self.responses.get(rid)

    async def find(self, keys: list[bytes]) -> tuple[int, StateRef] | None:
        return _longest(keys, self.states)

    async def turn_recorded(
        self, key: bytes, ref: StateRef, usage: tuple[int, int, int], cost: Decimal
    ) -> None:
        await self.moved_on(ref.session_id)
        self.states[key] = ref
        c = self.conversations.get(ref.conversation_id)
        if c is None:
            return
        c.session_id, c.state_key, c.turns = ref.session_id, key, c.turns + 1
        c.prompt_tokens += usage[0]
        c.completion_tokens += usage[1]
        c.cached_tokens += usage[2]
        c.cost_usd += cost
        c.config_key = c.config_key or ref.config_key
        c.last_used_at = datetime.now(UTC)

    async def moved_on(self, session_id: str) -> None:
        for ref in self.states.values():
            if ref.session_id == session_id:
                ref.latest = False

    async def create(self, conv: Conversation) -> None:
        self.conversations[conv.id] = conv

    async def get(self, conv_id: str) -> Conversation | None:
        return self.conversations.get(conv_id)

    async def listing(self, scope: str, limit: int, after: str | None) -> list[Conversation]:
        rows = sorted(
            (c for c in self.conversations.values() if c.scope == scope),
            key=lambda c: c.last_used_at,
            reverse=True,
        )
        if after is not None:
            ids = [c.id for c in rows]
            rows = rows[ids.index(after) + 1 :] if after in ids else []
        return rows[:limit]


_CONV_FIELDS = (
    "id, session_id, scope, team, user_id AS user, model, system, config_key, state_key, turns,"
    " prompt_tokens,"
    " completion_tokens, cached_tokens, cost_usd, metadata, created_at, last_used_at"
)


class PostgresState:
    """Conversations and stored responses in PostgreSQL. Text it cannot hold (U+0000, from a client
    or the model) is stored as U+2400 (``nexus.pg_text``); an id with one names nothing stored."""

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool

    async def save_response(
        self, rid: str, scope: str, conv_id: str, state_key: bytes | None, body: dict[str, Any]
    ) -> None:
        async with self.pool.connection() as conn:
            await conn.execute(
                "INSERT INTO gateway_responses (id, scope, conversation_id, state_key, body)"
                " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (id) DO NOTHING",
                (rid, scope, conv_id, state_key, Jsonb(pg_text.clean(body))),
            )

    async def get_response(self, rid: str) -> StoredResponse | None:
        async with self.pool.connection() as conn:
            row = await (
                await conn.execute(
                    "SELECT id, scope, conversation_id, state_key, body FROM gateway_responses WHERE id = %s",
                    (pg_text.text(rid),),
                )
            ).fetchone()
        if row is None:
            return None
        return StoredResponse(row[0], row[1], row[2], bytes(row[3]) if row[3] is not None else None, row[4])

    async def find(self, keys: list[bytes]) -> tuple[int, StateRef] | None:
        if not keys:
            return None
        async with self.pool.connection() as conn:
            rows = await (
                await conn.execute(
                    "SELECT key, session_id, conversation_id, config_key, project, entry_uuid, latest"
                    " FROM gateway_states WHERE key = ANY(%s)",
                    (keys,),
                )
            ).fetchall()
        return _longest(keys, {bytes(r[0]): StateRef(*r[1:]) for r in rows})

    async def turn_recorded(
        self, key: bytes, ref: StateRef, usage: tuple[int, int, int], cost: Decimal
    ) -> None:
        """The state a turn left and the conversation's totals, in one transaction."""
        async with self.pool.connection() as conn, conn.transaction():
            await conn.execute(
                "UPDATE gateway_states SET latest = false WHERE session_id = %s AND latest", (ref.session_id,)
            )
            await conn.execute(
                "INSERT INTO gateway_states"
                " (key, session_id, conversation_id, config_key, project, entry_uuid)"
                " VALUES (%s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (key) DO UPDATE SET session_id = EXCLUDED.session_id,"
                " conversation_id = EXCLUDED.conversation_id, project = EXCLUDED.project,"
                " entry_uuid = EXCLUDED.entry_uuid, latest = true",
                (key, ref.session_id, ref.conversation_id, ref.config_key, ref.project, ref.entry_uuid),
            )
            await conn.execute(
                "UPDATE gateway_conversations SET session_id = %s, state_key = %s, turns = turns + 1,"
                " prompt_tokens = prompt_tokens + %s, completion_tokens = completion_tokens + %s,"
                " cached_tokens = cached_tokens + %s, cost_usd = cost_usd + %s, last_used_at = now(),"
                " config_key = CASE WHEN config_key = '' THEN %s ELSE config_key END"  # created empty
                " WHERE id = %s",
                (ref.session_id, key, *usage, cost, ref.config_key, ref.conversation_id),
            )

    async def moved_on(self, session_id: str) -> None:
        async with self.pool.connection() as conn:
            await conn.execute(
                "UPDATE gateway_states SET latest = false WHERE session_id = %s", (session_id,)
            )

    async def create(self, conv: Conversation) -> None:
        async with self.pool.connection() as conn:
            await conn.execute(
                "INSERT INTO gateway_conversations (id, session_id, scope, team, user_id, model, system,"
                " config_key,"
                " metadata) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (id) DO NOTHING",
                (
                    conv.id,
                    conv.session_id,
                    conv.scope,
                    conv.team,
                    conv.user,
                    conv.model,
                    pg_text.text(conv.system) if conv.system is not None else None,
                    conv.config_key,
                    Jsonb(pg_text.clean(conv.metadata)) if conv.metadata else None,
                ),
            )

    async def get(self, conv_id: str) -> Conversation | None:
        async with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            row = await (
                await cur.execute(
                    f"SELECT {_CONV_FIELDS} FROM gateway_conversations WHERE id = %s",
                    (pg_text.text(conv_id),),
                )
            ).fetchone()
        return _conv(row) if row else None

    async def listing(self, scope: str, limit: int, after: str | None) -> list[Conversation]:
        cond, args = "scope = %s", [scope]
        if after:
            cond += " AND last_used_at < (SELECT last_used_at FROM gateway_conversations WHERE id = %s)"
            args.append(pg_text.text(after))
        async with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            rows = await (
                await cur.execute(
                    f"SELECT {_CONV_FIELDS} FROM gateway_conversations WHERE {cond}"
                    " ORDER BY last_used_at DESC LIMIT %s",
                    [*args, limit],
                )
            ).fetchall()
        return [_conv(r) for r in rows]


def _conv(row: dict[str, Any]) -> Conversation:
    row["state_key"] = bytes(row["state_key"]) if row["state_key"] is not None else None
    return Conversation(**row)
