"""``/v1/conversations``: the seed project's conversation API over the gateway's own records.

A conversation is what a series of turns built, whatever way the client continued it (resending
its history, ``conversation_id``, ``previous_response_id``). Its messages are read from the session
transcript; a caller sees only its own conversations.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from claude_agent_sdk import project_key_for_directory
from fastapi import FastAPI, Query, Request
from nexus.memory.context import is_block
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from nexus_gateway import catalog
from nexus_gateway.engine.state import Conversation, new_conversation_id
from nexus_gateway.errors import GatewayError, bad_request, invalid


class ConversationCreate(BaseModel):
    """``POST /v1/conversations``: every field optional; the model defaults to the gateway's."""

    model_config = ConfigDict(extra="forbid")

    model: str | None = Field(None, description="a model id or alias (GET /v1/models); others answer 404")
    system: str | None = Field(None, description="the system prompt of every turn")
    metadata: dict[str, str] | None = None


def _doc(c: Conversation) -> dict[str, Any]:
    return {
        "id": c.id,
        "object": "conversation",
        "created_at": int(c.created_at.timestamp()),
        "last_used_at": int(c.last_used_at.timestamp()),
        "model": c.model,
        "turns": c.turns,
        "metadata": c.metadata or {},
        "usage": {
            "prompt_tokens": c.prompt_tokens,
            "completion_tokens": c.completion_tokens,
            "total_tokens": c.prompt_tokens + c.completion_tokens,
            "prompt_tokens_details": {"cached_tokens": c.cached_tokens},
            "cost_usd": float(c.cost_usd),
        },
    }


def _message(entry: dict[str, Any]) -> dict[str, Any] | None:
    """A transcript entry as an OpenAI-style message; None for entries that are not turns."""
    if entry.get("type") not in ("user", "assistant") or entry.get("isMeta") or entry.get("isSidechain"):
        return None
    msg = entry.get("message") or {}
    content = msg.get("content")
    if isinstance(content, str):
        return {"role": msg.get("role"), "content": content}
    texts = [
        b.get("text", "")
        for b in content or []
        if isinstance(b, dict) and b.get("type") == "text" and not is_block(b.get("text", ""))  # memory's
    ]
    calls = [b for b in content or [] if isinstance(b, dict) and b.get("type") == "tool_use"]
    results = [b for b in content or [] if isinstance(b, dict) and b.get("type") == "tool_result"]
    if results and not texts:
        return {"role": "tool", "content": results}
    out: dict[str, Any] = {"role": msg.get("role"), "content": "".join(texts) or None}
    if calls:
        out["tool_calls"] = [
            {
                "id": c.get("id"),
                "type": "function",
                "function": {"name": c.get("name"), "arguments": c.get("input")},
            }
            for c in calls
        ]
    return out


def register(
    app: FastAPI,
    gateway: Any,
    headers: Callable[[Request], dict[str, str]],
    json_body: Callable[[Request], Awaitable[Any]],
) -> None:
    async def _owned(request: Request, conversation_id: str) -> Conversation:
        caller = gateway.caller(headers(request))
        await gateway.pool.settled()  # turns that just ended are written in the background
        conv: Conversation | None = await gateway.state.get(conversation_id)
        if conv is None or conv.scope != caller.scope:
            raise GatewayError(
                404, f"No conversation found with id '{conversation_id}'.", code="conversation_not_found"
            )
        return conv

    @app.post("/v1/conversations")
    async def create(request: Request) -> dict[str, Any]:
        caller = gateway.caller(headers(request))
        body = await json_body(request) if await request.body() else {}
        if not isinstance(body, dict):
            raise bad_request("the request body must be a JSON object")
        try:
            req = ConversationCreate.model_validate(body)
        except ValidationError as exc:
            raise invalid(exc) from None
        model = catalog.resolve(req.model or gateway.settings.default_model)
        conv = Conversation(
            new_conversation_id(),
            "",
            caller.scope,
            caller.team,
            caller.user,
            model.id,
            req.system,
            "",
            metadata=req.metadata,
        )
        await gateway.state.create(conv)
        return _doc(conv)

    @app.get("/v1/conversations")
    async def listing(
        request: Request,
        limit: int = Query(20, ge=1, le=100),
        after: str | None = Query(None, max_length=64),
    ) -> dict[str, Any]:
        caller = gateway.caller(headers(request))
        await gateway.pool.settled()
        rows = await gateway.state.listing(caller.scope, limit + 1, after)
        data = [_doc(c) for c in rows[:limit]]
        return {
            "object": "list",
            "data": data,
            "has_more": len(rows) > limit,
            "last_id": data[-1]["id"] if data else None,
        }

    @app.get("/v1/conversations/{conversation_id}")
    async def get(request: Request, conversation_id: str) -> dict[str, Any]:
        conv = await _owned(request, conversation_id)
        messages: list[dict[str, Any]] = []
        if gateway.session_store is not None and conv.session_id:
            # The transcript's key derives from the directory its session ran in, as the workers
            # place it: under the workspace root, named for the project a resumed or forked session
            # keeps from the session it came from (not for its own id).
            found = await gateway.state.find([conv.state_key]) if conv.state_key else None
            project = found[1].project if found else conv.session_id
            cwd = gateway.pool.workspaces / project
            entries = await gateway.session_store.load(
                {"project_key": project_key_for_directory(str(cwd)), "session_id": conv.session_id}
            )
            messages = [m for e in entries or [] if (m := _message(e)) is not None]
        return {**_doc(conv), "system": conv.system, "messages": messages}
