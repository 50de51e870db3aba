"""Memory in the gateway (ADR 24): before a turn, relevant earlier turns of the caller (or of their
team, when it shares) are recalled and put before the prompt Claude Code is sent, as one marked
block; after the turn completes, it is indexed. ``GET /v1/memory/search`` shows what memory holds
for a query, scored as a turn would see it; ``DELETE /v1/memory/{id}`` forgets one of the
caller's own turns.

Per request: ``X-Nexus-Memory: on|off`` (or the body's ``nexus_memory``) within what the key and
team allow, and ``X-Nexus-Cwd`` for the client's working directory (else the ``<cwd>`` of Codex
CLI's environment context). Responses say what was recalled in ``X-Nexus-Memory-Injected`` (how
many) and ``X-Nexus-Memory-Items`` (their ids, as the search lists them).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import FastAPI, Query, Request
from nexus.memory import context, policy
from nexus.memory.scoring import Weights
from nexus.memory.store import MAX_QUERY, Entry, MemoryStore, Recalled
from nexus.memory.store import Query as MemoryQuery
from nexus.memory.touched import files_touched
from psycopg_pool import AsyncConnectionPool

from nexus_gateway import continuity
from nexus_gateway.dialogue import Dialogue, text_block
from nexus_gateway.engine.events import Finished
from nexus_gateway.engine.pool import Caller
from nexus_gateway.engine.state import Conversation
from nexus_gateway.errors import GatewayError, bad_request
from nexus_gateway.settings import GatewaySettings

log = logging.getLogger("nexus.gateway.memory")

MEMORY_HEADER = "x-nexus-memory"
CWD_HEADER = "x-nexus-cwd"
INJECTED_HEADER = "x-nexus-memory-injected"
ITEMS_HEADER = "x-nexus-memory-items"
ERROR_HEADER = "x-nexus-memory-error"
MAX_CWD = 1024
# Codex CLI states its working directory in an environment block of its first user message.
_CODEX_CWD = re.compile(r"<environment_context>.*?<cwd>([^<\n]{1,1024})</cwd>", re.S)


# -- what a dialogue says ---------------------------------------------------------------------------


def _texts(blocks: list[dict[str, Any]]) -> list[str]:
    return [
        b.get("text", "")
        for b in blocks
        if b.get("type") == "text" and b.get("text") and not context.is_block(b.get("text", ""))
    ]


def new_text(d: Dialogue) -> str | None:
    """The text of the request's new message, when it is the user's words (not only tool results)."""
    last = d.messages[-1] if d.messages else None
    if last is None or last.role != "user":
        return None
    return "\n".join(_texts(last.content)).strip() or None


def _last_prompt(d: Dialogue) -> int | None:
    for i in range(len(d.messages) - 1, -1, -1):
        m = d.messages[i]
        if m.role == "user" and _texts(m.content):
            return i
    return None


def prompt_text(d: Dialogue) -> str | None:
    """What the user asked in the turn this request completes: the last user message with words
    (a request that brings tool results completes the turn an earlier prompt started)."""
    i = _last_prompt(d)
    return "\n".join(_texts(d.messages[i].content)).strip() if i is not None else None


def client_calls(d: Dialogue, since_prompt: bool = False) -> list[tuple[str, Any]]:
    """The client's tool calls in the history (of the current turn only, with ``since_prompt``)."""
    start = (_last_prompt(d) or 0) if since_prompt else 0
    return [
        (str(b.get("name")), b.get("input"))
        for m in d.messages[start:]
        if m.role == "assistant"
        for b in m.content
        if b.get("type") == "tool_use"
    ]


def working_directory(headers: dict[str, str], d: Dialogue) -> str | None:
    """The client's working directory: ``X-Nexus-Cwd``, else Codex CLI's environment context."""
    given = headers.get(CWD_HEADER)
    if given is not None and given.strip():
        value = given.strip()
        if len(value) > MAX_CWD or any(ord(c) < 32 for c in value):
            raise bad_request(
                f"X-Nexus-Cwd: a working directory of at most {MAX_CWD} characters, on one line",
                CWD_HEADER,
                "invalid_value",
            )
        return value
    for m in d.messages:
        if m.role != "user":
            continue
        for text in _texts(m.content):
            found = _CODEX_CWD.search(text)
            if found:
                return found.group(1).strip()
    return None


# -- one request --------------------------------------------------------------------------------------


@dataclass(slots=True)
class TurnMemory:
    """What memory does for one request: what it recalled into the prompt, and whether the turn is
    remembered when it completes."""

    use: policy.Use
    cwd: str | None
    items: list[Recalled] = field(default_factory=list)
    block: str | None = None
    failed: bool = False

    def preface(self) -> list[dict[str, Any]]:
        return [text_block(self.block)] if self.block else []

    def headers(self) -> dict[str, str]:
        if not self.use.recall:
            return {}
        out = {INJECTED_HEADER: str(len(self.items))}
        if self.items:
            out[ITEMS_HEADER] = ",".join(i.id for i in self.items)
        if self.failed:
            out[ERROR_HEADER] = "recall failed (logged by the gateway); this turn has no memory"
        return out


class Memory:
    """The gateway's memory: one per process, on the gateway's database pool."""

    def __init__(self, settings: GatewaySettings) -> None:
        self.weights = Weights(
            settings.memory_weight_text,
            settings.memory_weight_cwd,
            settings.memory_weight_files,
            settings.memory_weight_recency,
        )
        self.min_score = settings.memory_min_relevance_score
        self.limit = settings.memory_max_context_items
        self.item_chars = settings.memory_item_chars
        self.store: MemoryStore | None = None
        self._writes: set[asyncio.Task[None]] = set()

    def open(self, db: AsyncConnectionPool) -> None:
        self.store = MemoryStore(db)

    def use(self, caller: Caller, headers: dict[str, str], body_flag: bool | None) -> policy.Use:
        """What memory may do for this request; 400 for a flag that is neither on nor off, 403 for
        memory asked where it is off or without a key, 503 without the gateway's database."""
        try:
            wants = policy.asked(headers.get(MEMORY_HEADER), body_flag)
            use = policy.decide(caller.memory, caller.memory_shared, wants, _identified(caller))
        except ValueError as exc:
            raise bad_request(str(exc), MEMORY_HEADER, "invalid_value") from None
        except policy.Refused as exc:
            raise GatewayError(403, str(exc), code="memory_not_enabled") from None
        if use.any and self.store is None:
            if wants:
                raise GatewayError(
                    503, "memory needs the gateway's database (database_url)", code="memory_unavailable"
                )
            return policy.NONE
        return use

    async def prepare(
        self,
        caller: Caller,
        dialogue: Dialogue,
        after: Conversation | None,
        headers: dict[str, str],
        body_flag: bool | None,
    ) -> TurnMemory | None:
        """Memory for this request: the recalled block (if it may recall and anything is relevant),
        and whether its turn is remembered. None when memory plays no part."""
        use = self.use(caller, headers, body_flag)
        if not use.any:
            return None
        turn = TurnMemory(use, working_directory(headers, dialogue))
        text = new_text(dialogue)
        if not use.recall or not text or self.limit <= 0:
            return turn
        assert self.store is not None and caller.team is not None and caller.user is not None
        keys = continuity.chain(continuity.seed(caller.scope, dialogue.config_key()), dialogue.messages)
        try:
            exclude, files = await self.store.current(keys, after.id if after is not None else None)
            files = sorted(set(files) | set(files_touched(client_calls(dialogue), turn.cwd)))
            q = MemoryQuery(
                text, caller.team, caller.user, use.shared, turn.cwd, files, exclude, caller.memory_keep_days
            )
            turn.items = await self.store.recall(q, self.weights, self.min_score, self.limit, self.item_chars)
        except Exception:  # memory is an aid: a failed recall costs the context, never the answer
            log.exception("memory recall failed")
            turn.failed = True
            return turn
        if turn.items:
            turn.block = context.render(turn.items, self.item_chars, caller.user)
        return turn

    def remember(
        self, turn: TurnMemory, caller: Caller, dialogue: Dialogue, conv: Conversation, done: Finished
    ) -> None:
        """Index the completed turn, in the background (off the answer's path)."""
        if not turn.use.remember or self.store is None or conv.state_key is None:
            return
        prompt = prompt_text(dialogue)
        if not prompt or caller.team is None or caller.user is None:
            return
        calls = [*client_calls(dialogue, since_prompt=True), *done.tool_calls]
        entry = Entry(
            team=caller.team,
            user=caller.user,
            key_id=caller.scope,
            conversation_id=conv.id,
            state_key=conv.state_key,
            prompt=prompt,
            answer=done.text,
            cwd=turn.cwd,
            files=files_touched(calls, turn.cwd),
            keep_days=caller.memory_keep_days,
        )
        task = asyncio.create_task(self._add(entry), name="gateway-memory-index")
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def _add(self, entry: Entry) -> None:
        assert self.store is not None
        try:
            await self.store.add(entry)
        except Exception:  # a turn not indexed is a turn not recalled later, never a failed answer
            log.exception("could not index a turn in memory")

    async def settled(self) -> None:
        """Until the turns that ended so far are indexed."""
        if self._writes:
            await asyncio.wait(set(self._writes))


def _identified(caller: Caller) -> bool:
    return caller.team is not None and caller.user is not None


# -- routes -------------------------------------------------------------------------------------------


def register(app: FastAPI, gateway: Any, headers: Callable[[Request], dict[str, str]]) -> None:
    memory: Memory = gateway.memory

    def _reader(request: Request) -> tuple[Caller, policy.Use]:
        caller = gateway.caller(headers(request))
        try:
            use = policy.decide(caller.memory, caller.memory_shared, True, _identified(caller))
        except policy.Refused as exc:
            raise GatewayError(403, str(exc), code="memory_not_enabled") from None
        if memory.store is None:
            raise GatewayError(
                503, "memory needs the gateway's database (database_url)", code="memory_unavailable"
            )
        return caller, use

    @app.get("/v1/memory/search")
    async def search(
        request: Request,
        q: str | None = Query(None),
        cwd: str | None = Query(None, max_length=MAX_CWD),
        files: Annotated[list[str] | None, Query(max_length=100)] = None,
        limit: int | None = Query(None, ge=1, le=100),
        min_score: float | None = Query(None, ge=0, le=1),
    ) -> dict[str, Any]:
        """What memory holds for ``q``, scored as a turn asking it would see (the gateway's
        threshold and item count unless ``min_score`` and ``limit`` say otherwise)."""
        caller, use = _reader(request)
        if q is None:
            raise GatewayError(
                400, "Missing required parameter: 'q'.", param="q", code="missing_required_parameter"
            )
        if not q.strip():
            raise bad_request("q: the text to search memory for must not be blank", "q", "invalid_value")
        if len(q) > MAX_QUERY:
            raise bad_request(f"q: at most {MAX_QUERY} characters", "q", "invalid_value")
        assert memory.store is not None and caller.team is not None and caller.user is not None
        await memory.settled()
        n = limit or memory.limit
        found = await memory.store.recall(
            MemoryQuery(
                q, caller.team, caller.user, use.shared, cwd, files or [], keep_days=caller.memory_keep_days
            ),
            memory.weights,
            memory.min_score if min_score is None else min_score,
            n + 1,
            memory.item_chars,
        )
        data = [item.doc() for item in found[:n]]
        return {
            "object": "list",
            "data": data,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None,
            "has_more": len(found) > n,
        }

    @app.delete("/v1/memory/{item_id}")
    async def forget(request: Request, item_id: str) -> dict[str, Any]:
        """Forget one of the caller's own remembered turns (a teammate's stays theirs)."""
        caller = gateway.caller(headers(request))
        if not _identified(caller):
            raise GatewayError(403, "memory needs a Nexus key", code="memory_not_enabled")
        if memory.store is None:
            raise GatewayError(
                503, "memory needs the gateway's database (database_url)", code="memory_unavailable"
            )
        assert caller.team is not None and caller.user is not None
        await memory.settled()
        if len(item_id) > 64 or not await memory.store.forget(item_id, caller.team, caller.user):
            raise GatewayError(
                404, f"No memory item found with id '{item_id}'.", code="memory_item_not_found"
            )
        return {"id": item_id, "object": "memory.item.deleted", "deleted": True}
