"""The gateway's engine, assembled from settings: the relay to the Nexus proxy, the warm pool, the
session store and conversation state, and the caller check. One per process; the HTTP layer
(``app.py``) only translates."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from pathlib import Path
from typing import Any

import psycopg
from nexus.access import Authenticator
from nexus.secret_store import SecretStore
from psycopg_pool import AsyncConnectionPool

from nexus_gateway import cache, callers, images
from nexus_gateway.dialogue import Dialogue
from nexus_gateway.engine.events import Event, Failed, Finished, TextDelta, ToolCallStart
from nexus_gateway.engine.options import Isolation, load_mcp_config
from nexus_gateway.engine.pool import Caller, Lease, Pool, PoolLimits
from nexus_gateway.engine.relay import Relay
from nexus_gateway.engine.session_store import BackgroundWrites, PostgresSessionStore
from nexus_gateway.engine.state import Conversation, MemoryState, PostgresState, StateStore
from nexus_gateway.errors import GatewayError
from nexus_gateway.memory import Memory, TurnMemory
from nexus_gateway.settings import GatewaySettings

log = logging.getLogger("nexus.gateway")


class Gateway:
    def __init__(self, settings: GatewaySettings, secrets: SecretStore) -> None:
        self.settings = settings
        self.auth = Authenticator(secrets, require_keys=settings.require_keys)
        self.relay = Relay(settings.proxy_url)
        self.db: AsyncConnectionPool | None = None
        self.state: StateStore = MemoryState()
        self.session_store: Any = None
        self.image_limits = images.FetchLimits(
            settings.image_max_bytes, settings.image_fetch_timeout_s, settings.image_allow_private
        )
        self.isolation = Isolation(
            builtin_tools=tuple(settings.builtin_tools),
            extra_dirs=tuple(settings.extra_dirs),
            mcp_servers=load_mcp_config(settings.mcp_config),
            claude_code_prompt=settings.claude_code_prompt,
        )
        self.pool: Pool | None = None
        self.cache = (
            cache.ResponseCache(settings.cache_ttl_s, settings.cache_max_entries)
            if settings.cache_enabled
            else None
        )
        self.memory = Memory(settings)
        self.started = time.monotonic()

    async def start(self) -> None:
        self.db = database_pool(self.settings.database_url, self.settings.db_secret_arn)
        if self.db is not None:
            await self.db.open(wait=True, timeout=30)
            self.state = PostgresState(self.db)
            self.session_store = BackgroundWrites(PostgresSessionStore(self.db))
            self.memory.open(self.db)
        await self.relay.start()
        s = self.settings
        limits = PoolLimits(
            max_sessions=s.max_sessions,
            warm_spares=s.warm_spares,
            spare_configs=s.spare_configs,
            queue_size=s.queue_size,
            queue_timeout_s=s.queue_timeout_s,
            idle_timeout_s=s.idle_timeout_s,
            turn_timeout_s=s.turn_timeout_s,
            tool_result_timeout_s=s.tool_result_timeout_s,
        )
        root = (s.data_dir / "gateway").resolve()
        root.mkdir(parents=True, exist_ok=True)
        workspaces = s.workspace_root.resolve() if s.workspace_root else None
        if workspaces is not None:
            workspaces.mkdir(parents=True, exist_ok=True)
        self.pool = Pool(
            limits, self.relay, self.isolation, Path(root), self.state, self.session_store, workspaces
        )
        await self.pool.start()

    async def close(self) -> None:
        if self.pool is not None:
            await self.pool.close()
        await self.memory.settled()
        await self.relay.close()
        if self.session_store is not None:
            await self.session_store.close()
        if self.db is not None:
            await self.db.close()

    def caller(self, headers: dict[str, str]) -> Caller:
        return callers.identify(
            self.auth, headers, self.settings.max_budget_usd, self.settings.anthropic_api_key
        )

    async def conversation(self, conversation_id: str, caller: Caller, param: str) -> Conversation:
        """A conversation of this caller (404 otherwise, as for an id that does not exist), as its
        latest turn left it (turns that just ended are written in the background)."""
        assert self.pool is not None
        await self.pool.settled()
        conv = await self.state.get(conversation_id)
        if conv is None or conv.scope != caller.scope:
            raise GatewayError(
                404,
                f"No conversation found with id '{conversation_id}'.",
                param=param,
                code="conversation_not_found",
            )
        return conv

    def cached(self, turn: Turn, asked: str | None) -> tuple[AsyncGenerator[Event, None], dict[str, str]]:
        """The turn's events, from the response cache when it holds this exact question (and the
        client did not send ``x-nexus-cache: no``); answers computed now are kept for next time. A
        turn memory recalls into is never cached: its answer depends on more than the request."""
        recalls = turn.memory is not None and turn.memory.use.recall
        if (
            self.cache is None
            or turn.after is not None
            or recalls
            or (asked or "").lower() in ("no", "bypass")
        ):
            return turn.events(), {}
        assert self.pool is not None
        k = cache.key(turn.caller.team, turn.dialogue)
        hit = self.cache.get(k)
        if hit is not None:
            self.pool.stats.cache_hits += 1
            return cache.replay(hit), {cache.HEADER: "hit"}
        self.pool.stats.cache_misses += 1
        store = self.cache
        return cache.recording(turn.events(), lambda answer: store.put(k, answer)), {cache.HEADER: "miss"}

    def turn(
        self,
        dialogue: Dialogue,
        caller: Caller,
        started: float,
        after: Conversation | None = None,
        memory: TurnMemory | None = None,
    ) -> Turn:
        assert self.pool is not None
        return Turn(self.pool, dialogue, caller, started, after, memory, self.memory)


class Turn:
    """One request's turn: its events, and (once it ran) the lease that says which conversation and
    state it left. ``memory``: what memory recalled into it, and whether it is remembered."""

    def __init__(
        self,
        pool: Pool,
        dialogue: Dialogue,
        caller: Caller,
        started: float,
        after: Conversation | None,
        memory: TurnMemory | None = None,
        memories: Memory | None = None,
    ) -> None:
        self.pool = pool
        self.dialogue = dialogue
        self.caller = caller
        self.started = started
        self.after = after
        self.memory = memory
        self.memories = memories
        self.lease: Lease | None = None

    async def events(self) -> AsyncGenerator[Event, None]:
        """The turn's events. A Claude Code process that dies before anything reached the client is
        replaced and the turn tried once more; closing this iterator interrupts the turn."""
        stats = self.pool.stats
        stats.requests += 1
        first = True
        preface = self.memory.preface() if self.memory is not None else []
        done: Finished | None = None
        for attempt in (1, 2):
            self.lease = await self.pool.lease(self.dialogue, self.caller, self.after)
            retry = False
            async with contextlib.aclosing(self.pool.run(self.lease, self.caller, preface)) as events:
                async for event in events:
                    if isinstance(event, Failed) and event.retryable and first and attempt == 1:
                        log.warning("engine failed before answering (%s); retrying once", event.message)
                        stats.retries += 1
                        retry = True
                        break
                    if first and isinstance(event, (TextDelta, ToolCallStart)):
                        first = False
                        stats.first_delta((time.perf_counter() - self.started) * 1000)
                    if isinstance(event, Finished):
                        done = event
                    yield event
            if not retry:
                break
        if (
            done is not None
            and self.memory is not None
            and self.memories is not None
            and self.lease is not None
        ):
            # The pool has recorded the state this turn left (the generator ran to its end).
            self.memories.remember(self.memory, self.caller, self.dialogue, self.lease.conversation, done)


def database_pool(database_url: str | None, db_secret_arn: str | None) -> AsyncConnectionPool | None:
    """The gateway's pool (not opened): ``database_url``, or in AWS the RDS secret, read for each new
    connection (cached five minutes), with a connection class that, refused for its password, reads
    it afresh, so connections opened after a rotation work at once. Each connection is checked as
    it is handed out: one the server ended (a failover, a restart) is replaced, not used. None
    without a database (state in memory)."""
    conninfo: str | Callable[[], Awaitable[str]]
    connection_class: type[psycopg.AsyncConnection[Any]] = psycopg.AsyncConnection
    if database_url:
        conninfo = database_url
    elif db_secret_arn:
        from nexus.db.connect import DatabaseSettings, SecretConninfo

        source = SecretConninfo(
            DatabaseSettings(db_secret_arn=db_secret_arn), application_name="nexus-gateway"
        )

        async def from_secret() -> str:
            return await asyncio.to_thread(source)

        conninfo, connection_class = from_secret, source.async_connection_class()
    else:
        return None
    # Commits do not wait for the disk: what the gateway writes (transcript mirrors, history states)
    # is rebuilt or resumed from elsewhere if the last milliseconds are lost in a crash, and a commit
    # that waits for fsync sits in every turn's way.
    return AsyncConnectionPool(
        conninfo,
        connection_class=connection_class,
        min_size=1,
        max_size=8,
        open=False,
        check=AsyncConnectionPool.check_connection,
        kwargs={"options": "-c synchronous_commit=off"},
    )
