"""The warm pool: Claude Code sessions kept running, matched to requests.

- A continuing conversation goes to the session that holds its history warm; if none does, a new
  process resumes it from the session store (any worker can).
- A new conversation takes a warm blank session started for the same configuration (what Claude
  Code fixes at start: system prompt, client tools, output schema, output cap); spares are kept for
  the configurations seen recently, and a first-seen configuration pays a start.
- A history no session holds (earlier turns from elsewhere, an edited history) becomes a new
  session written from that history, then resumed.
- Limits: at most ``max_sessions`` processes; an idle one is recycled to make room (its session
  stays resumable); when all are busy a bounded queue waits, then 429 with ``Retry-After``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
from nexus_gateway import continuity
from nexus_gateway.dialogue import Dialogue, Message, text_block
from nexus_gateway.engine import transcripts
from nexus_gateway.engine.events import Event, Failed, Finished, Suspended, ToolCall
from nexus_gateway.engine.options import EngineConfig, Isolation, SessionStart
from nexus_gateway.engine.relay import Relay
from nexus_gateway.engine.state import Conversation, StateRef, StateStore, new_conversation_id
from nexus_gateway.engine.stats import Stats
from nexus_gateway.engine.worker import Prompt, Worker
from nexus_gateway.errors import GatewayError, bad_request

log = logging.getLogger("nexus.gateway.pool")


@dataclass(frozen=True, slots=True)
class Caller:
    scope: str  # whose sessions these are: a Nexus key id, or "open"
    team: str | None
    user: str | None
    credentials: dict[str, str]  # what the relay sends the Nexus proxy for this caller
    cap_usd: float | None = None  # the most one request may spend
    memory: str = "off"  # the gateway's memory for this caller: off, on, per-request (nexus.memory.policy)
    memory_shared: bool = False  # the team shares memory among its members
    memory_keep_days: int | None = None  # the team's memory retention; None: kept


@dataclass(slots=True)
class PoolLimits:
    max_sessions: int = 8
    warm_spares: int = 2
    spare_configs: int = 4
    queue_size: int = 32
    queue_timeout_s: float = 30.0
    idle_timeout_s: float = 600.0
    turn_timeout_s: float = 600.0
    tool_result_timeout_s: float = 600.0


@dataclass(slots=True)
class Lease:
    worker: Worker
    conversation: Conversation
    base: bytes  # continuity key of the history before ``sent``
    sent: Message  # the user message this turn adds: text, or the results of the model's tool calls
    into_open_turn: bool  # deliver ``sent``'s tool results into the suspended turn holding the calls
    model: str
    how: str  # warm, tools, new, new-cold, resumed, rebuilt: how the session was found (for /stats)
    tool_choice: str = "auto"


def engine_config(d: Dialogue) -> EngineConfig:
    return EngineConfig(
        key=d.config_key(),
        system=d.system,
        tools=tuple(d.tools),
        json_schema=d.json_schema,
        max_tokens=d.max_tokens,
        model=d.model.upstream,
        effort=d.effort,
    )


def _new_conversation(
    caller: Caller, dialogue: Dialogue, config: EngineConfig, session_id: str
) -> Conversation:
    return Conversation(
        new_conversation_id(),
        session_id,
        caller.scope,
        caller.team,
        caller.user,
        dialogue.model.id,
        dialogue.system,
        config.key,
    )


def _answer_message(text: str, calls: list[ToolCall]) -> Message:
    """The assistant message as the client will echo it back."""
    blocks: list[dict[str, Any]] = [text_block(text)] if text else []
    for c in calls:
        try:
            args = orjson.loads(c.arguments or "{}")
        except orjson.JSONDecodeError:
            args = c.arguments
        blocks.append({"type": "tool_use", "id": c.id, "name": c.name, "input": args})
    return Message("assistant", blocks)


def _tool_results(message: Message) -> tuple[list[tuple[str, str, bool]], bool]:
    """(tool results, whether the message holds anything else)."""
    results = [
        (
            str(b["tool_use_id"]),
            str(b.get("content")) if isinstance(b.get("content"), str) else "",
            bool(b.get("is_error")),
        )
        for b in message.content
        if b.get("type") == "tool_result"
    ]
    return results, len(results) != len(message.content)


class Pool:
    def __init__(
        self,
        limits: PoolLimits,
        relay: Relay,
        isolation: Isolation,
        root: Path,
        state: StateStore,
        session_store: Any,
        workspaces: Path | None = None,
    ) -> None:
        self.limits = limits
        self.relay = relay
        self.isolation = isolation
        self.root = root
        self.workspaces = workspaces or root / "conversations"
        self.state = state
        self.session_store = session_store
        self.workers: set[Worker] = set()
        self.holders: dict[bytes, Worker] = {}
        self.recent: OrderedDict[str, EngineConfig] = OrderedDict()
        self.stats = Stats()
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._maintenance: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[None]] = set()
        self.writes: asyncio.Queue[Any] = asyncio.Queue()
        self._writer: asyncio.Task[None] | None = None
        self._closing = False

    # lifecycle ---------------------------------------------------------------------------------
    async def start(self) -> None:
        self._maintenance = asyncio.create_task(self._maintain(), name="gateway-pool-maintenance")
        self._writer = asyncio.create_task(self._write_in_order(), name="gateway-state-writes")

    async def close(self) -> None:
        self._closing = True
        if self._maintenance is not None:
            self._maintenance.cancel()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.settled(), 10)
        if self._writer is not None:
            self._writer.cancel()
        for w in list(self.workers):
            w.stop()
        tasks = [w.task for w in self.workers if w.task is not None]
        if tasks:
            await asyncio.wait(tasks, timeout=15)

    # counts --------------------------------------------------------------------------------------
    def census(self) -> dict[str, int]:
        states = [w.state for w in self.workers]
        return {
            "workers": len(states),
            "starting": states.count("starting"),
            "idle": states.count("idle"),
            "busy": states.count("busy"),
            "suspended": states.count("suspended"),
            "spare": sum(1 for w in self.workers if w.holds is None and w.turns == 0 and w.state != "closed"),
            "queued": len(self._waiters),
            "max": self.limits.max_sessions,
        }

    # capacity ----------------------------------------------------------------------------------
    def _live(self) -> list[Worker]:
        return [w for w in self.workers if w.state != "closed"]

    def _evictable(self, keep: set[str]) -> Worker | None:
        """An idle worker to recycle for room: spares of configurations no longer wanted first,
        then the least recently used idle holder (its session stays resumable from the store)."""
        idle = [w for w in self._live() if w.state == "idle"]
        spares = [w for w in idle if w.turns == 0 and w.config.key not in keep]
        holders = [w for w in idle if w.turns > 0]
        pick = sorted(spares, key=lambda w: w.last_used) or sorted(holders, key=lambda w: w.last_used)
        return pick[0] if pick else None

    async def _room(self, for_config: str) -> None:
        """Wait until one more process may start (recycling an idle one if needed)."""
        deadline = time.monotonic() + self.limits.queue_timeout_s
        while len(self._live()) >= self.limits.max_sessions:
            victim = self._evictable({for_config})
            if victim is not None:
                self._retire(victim)
                return
            if len(self._waiters) >= self.limits.queue_size:
                self.stats.rejected += 1
                raise GatewayError(
                    429,
                    f"all {self.limits.max_sessions} Claude Code sessions are busy and {len(self._waiters)} "
                    "requests are waiting; retry shortly",
                    code="rate_limit_exceeded",
                    headers={"retry-after": "5"},
                )
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.append(fut)
            try:
                await asyncio.wait_for(fut, max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                self.stats.rejected += 1
                raise GatewayError(
                    429,
                    f"no Claude Code session became free within {self.limits.queue_timeout_s:g} s; "
                    "retry shortly",
                    code="rate_limit_exceeded",
                    headers={"retry-after": "5"},
                ) from None
            finally:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(fut)

    def _wake_one(self) -> None:
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_result(None)
                return

    def _retire(self, w: Worker) -> None:
        if w.holds is not None and self.holders.get(w.holds) is w:
            del self.holders[w.holds]
        w.stop()
        w.state = "closed"  # no longer counted; its task finishes on its own
        self.stats.recycled += 1

    def _spawn(self, config: EngineConfig, start: SessionStart | None = None) -> Worker:
        w = Worker(
            config,
            self.isolation,
            self.relay,
            self.root,
            self.limits.tool_result_timeout_s,
            start=start,
            session_store=self.session_store,
            workspaces=self.workspaces,
        )
        w.on_turn_end = self._turn_ended
        self.workers.add(w)
        w.start()
        assert w.task is not None
        w.task.add_done_callback(functools.partial(self._task_done, w))
        self.stats.started += 1
        return w

    def _task_done(self, w: Worker, _task: asyncio.Task[None]) -> None:
        self._gone(w)

    async def _turn_ended(self, w: Worker) -> None:
        """A turn whose end no client saw (interrupted, or its tool results never came) left the
        session past every state a client knows: it holds nothing, and continuing any of its states
        forks there."""
        if w.unseen:
            w.unseen = 0
            if w.holds is not None and self.holders.get(w.holds) is w:
                del self.holders[w.holds]
            w.holds = None
            self.writes.put_nowait(self.state.moved_on(w.session_id))  # after the writes queued before

    def _gone(self, w: Worker) -> None:
        self.workers.discard(w)
        if w.holds is not None and self.holders.get(w.holds) is w:
            del self.holders[w.holds]
        if w.failure:
            self.stats.worker_failures += 1
        self._wake_one()
        if not self._closing:
            self._top_up()

    async def _ready(self, w: Worker) -> Worker:
        await w.ready.wait()
        if w.state == "closed":
            raise GatewayError(502, f"Claude Code did not start: {w.failure}", code="engine_unavailable")
        return w

    # spares --------------------------------------------------------------------------------------
    def _note_config(self, config: EngineConfig) -> None:
        self.recent[config.key] = config
        self.recent.move_to_end(config.key)
        while len(self.recent) > self.limits.spare_configs:
            self.recent.popitem(last=False)

    def _spares(self, key: str) -> list[Worker]:
        return [
            w
            for w in self._live()
            if w.config.key == key and w.turns == 0 and w.holds is None and not w.busy_claimed
        ]

    def _top_up(self) -> None:
        """Start spares for recent configurations, in free room only (never evicting for a spare)."""
        for key, config in reversed(self.recent.items()):
            while (
                len(self._spares(key)) < self.limits.warm_spares
                and len(self._live()) < self.limits.max_sessions
            ):
                self._spawn(config)

    async def _maintain(self) -> None:
        while True:
            await asyncio.sleep(min(5.0, self.limits.idle_timeout_s / 2))
            now = time.monotonic()
            for w in self._live():
                if w.state == "idle" and w.turns > 0 and now - w.last_used > self.limits.idle_timeout_s:
                    log.info("recycling idle session %s (worker %s)", w.session_id, w.id)
                    self._retire(w)
            self._top_up()

    # leasing -------------------------------------------------------------------------------------
    async def lease(self, dialogue: Dialogue, caller: Caller, after: Conversation | None = None) -> Lease:
        lease = await self._lease(dialogue, caller, after)
        lease.tool_choice = dialogue.tool_choice
        return lease

    async def _lease(self, dialogue: Dialogue, caller: Caller, after: Conversation | None = None) -> Lease:
        """A session for this turn. ``after``: continue that conversation's latest state (the
        client sent ``conversation_id`` or ``previous_response_id``, with only the new input or the
        whole history)."""
        config = engine_config(dialogue)
        self._note_config(config)
        seed = continuity.seed(caller.scope, config.key)
        history = dialogue.messages
        keys = continuity.chain(seed, history)
        if after is not None:
            return await self._after(after, dialogue, caller, config, keys)
        prefixes = keys[:-1]  # a known state always ends with an answer, never with the new message
        start = -1
        for i in range(len(prefixes) - 1, -1, -1):
            if prefixes[i] in self.holders:
                start = i
                break
        ref = None
        if prefixes and start < len(prefixes) - 1:
            # Not held warm at the longest possible prefix: the database may know a longer one (once
            # the states of turns that just ended are written: whether a state is its session's latest
            # decides between resuming and forking).
            await self.settled()
            found = await self.state.find(prefixes)
            if found is not None and found[0] >= start:
                start, ref = found
        tail = history[start + 1 :]
        if any(m.role == "assistant" for m in tail):
            # Turns no session holds: write the history into a new session and resume it.
            return await self._rebuilt(dialogue, caller, config, seed, history)
        (sent,) = tail  # after the known prefix: exactly the new user message
        if start < 0:
            return await self._fresh(dialogue, caller, config, seed, sent)
        holder = self.holders.get(keys[start])
        conv = await self._conversation_of(ref, holder, caller, config, dialogue)
        return await self._continue(conv, keys[start], sent, config, caller, ref)

    async def _after(
        self, conv: Conversation, dialogue: Dialogue, caller: Caller, config: EngineConfig, keys: list[bytes]
    ) -> Lease:
        if conv.config_key and conv.config_key != config.key:
            raise bad_request(
                "this conversation was started with another system prompt, tools or output format; send the "
                "same ones, or start a new conversation"
            )
        history = dialogue.messages
        known = conv.state_key in keys[:-1] if conv.state_key else False
        new = history[keys.index(conv.state_key) + 1 :] if known and conv.state_key else history
        if len(new) != 1 or new[0].role != "user":
            raise bad_request("send the new user input (or the whole history) to continue a conversation")
        if conv.state_key is None:  # created empty (POST /v1/conversations): its first turn
            seed = continuity.seed(caller.scope, config.key)
            return await self._fresh(dialogue, caller, config, seed, new[0], conv)
        await self.settled()
        found = await self.state.find([conv.state_key])
        return await self._continue(conv, conv.state_key, new[0], config, caller, found[1] if found else None)

    async def _continue(
        self,
        conv: Conversation,
        base: bytes,
        sent: Message,
        config: EngineConfig,
        caller: Caller,
        ref: StateRef | None,
    ) -> Lease:
        results, mixed = _tool_results(sent)
        w = self.holders.get(base)
        if w is not None and w.config.key == config.key and not w.busy_claimed:
            if w.state == "suspended" and results:
                if mixed:
                    raise bad_request(
                        "messages: send the tool results on their own (text next to results for a pending "
                        "tool call cannot be delivered into the running turn)",
                        "messages",
                    )
                w.busy_claimed = True
                self.stats.warm_hits += 1
                return Lease(w, conv, base, sent, True, config.model, "tools")
            if w.state == "idle":
                w.busy_claimed = True
                self.stats.warm_hits += 1
                return Lease(w, conv, base, sent, False, config.model, "warm")
        # Nobody holds it warm (recycled, lost, on another task, or busy with a racing retry): any
        # worker resumes it from the session store; tool results then arrive as a user message. A
        # state its session has moved on from (a regenerated or edited turn, an older response) is
        # forked at that point, so the model never sees the turns that came after it.
        if ref is None:
            raise GatewayError(409, "this conversation has no session to continue", code="conversation_state")
        if ref.latest:
            start = SessionStart.resumed(ref.session_id, ref.project)
            how = "resumed"
        elif ref.entry_uuid:
            start = SessionStart.forked(ref.session_id, ref.project, ref.entry_uuid)
            how = "forked"
        else:
            raise GatewayError(
                409, "this point of the conversation cannot be continued", code="conversation_state"
            )
        await self._room(config.key)
        w = await self._ready(self._spawn(config, start))
        w.busy_claimed = True
        w.scope = caller.scope
        self.stats.resumes += 1
        return Lease(w, conv, base, sent, False, config.model, how)

    async def _fresh(
        self,
        dialogue: Dialogue,
        caller: Caller,
        config: EngineConfig,
        seed: bytes,
        sent: Message,
        conv: Conversation | None = None,
    ) -> Lease:
        spares = [w for w in self._spares(config.key) if w.state == "idle"] or self._spares(config.key)
        if spares:
            w = spares[0]
            self.stats.spare_hits += 1
            how = "new"
        else:
            await self._room(config.key)
            w = self._spawn(config)
            self.stats.cold_starts += 1
            how = "new-cold"
        w.busy_claimed = True
        w.scope = caller.scope
        w = await self._ready(w)
        self._top_up()
        if conv is None:
            conv = _new_conversation(caller, dialogue, config, w.session_id)
            await self.state.create(conv)
        else:
            conv.session_id, conv.config_key = w.session_id, config.key
        return Lease(w, conv, seed, sent, False, config.model, how)

    async def _rebuilt(
        self, dialogue: Dialogue, caller: Caller, config: EngineConfig, seed: bytes, history: list[Message]
    ) -> Lease:
        if self.session_store is None:
            raise GatewayError(
                503, "continuing an unknown history needs the gateway's database", code="engine_unavailable"
            )
        last = max(i for i, m in enumerate(history) if m.role == "assistant")
        before, tail = history[: last + 1], history[last + 1 :]
        if len(tail) != 1:
            raise bad_request("messages: the last message must be from the user or a tool", "messages")
        await self._room(config.key)
        session_id = str(uuid.uuid4())
        cwd = self.workspaces / session_id
        await transcripts.write(self.session_store, session_id, cwd, config.model, before)
        w = await self._ready(self._spawn(config, SessionStart.resumed(session_id, session_id)))
        w.busy_claimed = True
        w.scope = caller.scope
        conv = _new_conversation(caller, dialogue, config, session_id)
        await self.state.create(conv)
        self.stats.rebuilt += 1
        return Lease(w, conv, continuity.key_after(seed, before), tail[0], False, config.model, "rebuilt")

    async def _conversation_of(
        self,
        ref: StateRef | None,
        holder: Worker | None,
        caller: Caller,
        config: EngineConfig,
        dialogue: Dialogue,
    ) -> Conversation:
        if ref is None and holder is not None and holder.conversation is not None:
            return holder.conversation  # the warm path reads nothing from the database
        conv_id = ref.conversation_id if ref is not None else (holder.conversation_id if holder else None)
        conv = await self.state.get(conv_id) if conv_id else None
        if conv is None:
            conv = _new_conversation(caller, dialogue, config, holder.session_id if holder else "")
            await self.state.create(conv)
        return conv

    # running a turn --------------------------------------------------------------------------------
    async def run(
        self, lease: Lease, caller: Caller, preface: list[dict[str, Any]] | None = None
    ) -> AsyncGenerator[Event, None]:
        """The turn's events; the pool remembers what the session holds when it ends. Closing the
        iterator early (the client went away) interrupts the turn.

        ``preface``: blocks put before the client's message in what Claude Code is sent (recalled
        memory), never part of the history the client echoes (continuity keys ignore them). Tool
        results delivered into an open turn take none."""
        w = lease.worker
        w.conversation_id = lease.conversation.id
        w.conversation = lease.conversation
        sink: asyncio.Queue[Event] = asyncio.Queue()
        if lease.into_open_turn:
            results, _ = _tool_results(lease.sent)
            w.continue_with(results, sink, caller.credentials)
        else:
            await w.submit(
                Prompt(
                    [*(preface or []), *lease.sent.content],
                    lease.model,
                    sink,
                    caller.credentials,
                    lease.tool_choice,
                    caller.cap_usd,
                )
            )
        self.stats.turns += 1
        finished = False
        text: list[str] = []
        try:
            deadline = time.monotonic() + self.limits.turn_timeout_s
            while True:
                try:
                    event = await asyncio.wait_for(sink.get(), max(0.0, deadline - time.monotonic()))
                except TimeoutError:
                    raise GatewayError(
                        504, f"the turn took longer than {self.limits.turn_timeout_s:g} s", code="timeout"
                    ) from None
                if hasattr(event, "text") and not isinstance(event, Finished):
                    text.append(event.text)
                yield event
                if isinstance(event, Suspended):
                    finished = True
                    await self._remember(lease, _answer_message("".join(text), event.calls), None)
                    return
                if isinstance(event, Finished):
                    finished = True
                    await self._remember(lease, _answer_message(event.text, []), event)
                    return
                if isinstance(event, Failed):
                    finished = True
                    self.stats.errors += 1
                    return
        finally:
            w.busy_claimed = False
            if not finished:
                self.stats.interrupted += 1
                # Not awaited here: a request cancelled by its client disconnecting is cancelled
                # again at every await in this block, and the turn must stop regardless.
                stopping = asyncio.create_task(w.interrupt())
                self._background.add(stopping)
                stopping.add_done_callback(self._background.discard)
            self._wake_one()

    async def _remember(self, lease: Lease, answer: Message, done: Finished | None) -> None:
        """What the session holds now: in memory at once (the client's next request finds it warm),
        in the database in the background, in order (off the answer's path)."""
        w = lease.worker
        key = continuity.key_after(lease.base, [lease.sent, answer])
        if w.holds is not None and self.holders.get(w.holds) is w:
            del self.holders[w.holds]
        w.holds = key
        self.holders[key] = w
        ref = StateRef(w.session_id, lease.conversation.id, w.config.key, w.project, w.last_entry)
        u = done.usage if done is not None else None
        cost = Decimal(str(done.cost_usd)) if done is not None and done.cost_usd is not None else Decimal(0)
        usage = (u.prompt_tokens, u.output_tokens, u.cache_read_input_tokens) if u is not None else (0, 0, 0)
        lease.conversation.state_key = key
        lease.conversation.session_id = w.session_id
        self.writes.put_nowait(self.state.turn_recorded(key, ref, usage, cost))

    async def _write_in_order(self) -> None:
        while True:
            write = await self.writes.get()
            try:
                await write
            except Exception:  # a lost state write costs a resume later, never an answer
                log.exception("could not record a gateway state")
            finally:
                self.writes.task_done()

    async def settled(self) -> None:
        """Until every state write queued so far is done (reads of conversations, shutdown)."""
        await self.writes.join()
