"""The client's functions, shown to Claude as real tools, answered by the client.

They are served to Claude Code as an in-process MCP server built by hand (the SDK's helper rewrites
schemas it does not recognise; this passes each schema through unchanged) with names unprefixed
(``CLAUDE_AGENT_SDK_MCP_NO_PREFIX``), so the model sees exactly the client's function names.

A call suspends the turn: its handler registers a future under the ``tool_use`` id (Claude Code
passes it in the call's ``_meta``) and awaits it. The HTTP response has already ended with
``tool_calls``; when the client's next request brings the results, the gateway resolves the futures
and the same turn goes on with real tool results (docs/adr/0013-gateway-engine.md).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from mcp.server import Server
from mcp.types import CallToolResult, ListToolsResult, TextContent, Tool, ToolAnnotations
from nexus_gateway.dialogue import ToolSpec

SERVER_NAME = "client"
TOOL_USE_ID_META = "claudecode/toolUseId"


@dataclass
class PendingCalls:
    """Tool calls waiting for the client's results, by ``tool_use`` id."""

    timeout_s: float
    futures: dict[str, asyncio.Future[tuple[str, bool]]] = field(default_factory=dict)
    refuse: bool = False  # tool_choice "none": every call is answered with an error at once

    def future(self, call_id: str) -> asyncio.Future[tuple[str, bool]]:
        fut = self.futures.get(call_id)
        if fut is None:
            fut = asyncio.get_running_loop().create_future()
            self.futures[call_id] = fut
        return fut

    def resolve(self, call_id: str, content: str, is_error: bool = False) -> bool:
        """Hand the client's result to the waiting call; False if nothing waits for that id."""
        fut = self.future(call_id)
        if fut.done():
            return False
        fut.set_result((content, is_error))
        return True

    def abandon(self, reason: str) -> None:
        """The client will not answer (it went elsewhere, or the worker stops): every waiting call
        gets an error result so the turn can end."""
        for fut in self.futures.values():
            if not fut.done():
                fut.set_result((reason, True))

    def clear(self) -> None:
        self.futures.clear()


def server(tools: list[ToolSpec], pending: PendingCalls) -> Server[Any]:
    wire = [
        Tool(
            name=t.name,
            description=t.description,
            input_schema=t.parameters,
            # Read-only calls are run concurrently by Claude Code: parallel calls all wait at once.
            annotations=ToolAnnotations(read_only_hint=True),
        )
        for t in tools
    ]

    async def on_list_tools(ctx: Any, params: Any) -> ListToolsResult:
        return ListToolsResult(tools=wire)

    async def on_call_tool(ctx: Any, params: Any) -> CallToolResult:
        if pending.refuse:
            return CallToolResult(
                content=[TextContent(type="text", text="Tools are off for this reply: answer without them.")],
                is_error=True,
            )
        call_id = (params.meta or {}).get(TOOL_USE_ID_META)
        if not call_id:
            return CallToolResult(
                content=[TextContent(type="text", text="gateway error: call without an id")], is_error=True
            )
        fut = pending.future(str(call_id))
        try:
            content, is_error = await asyncio.wait_for(fut, pending.timeout_s)
        except TimeoutError:
            content, is_error = f"the client returned no result within {pending.timeout_s:g} s", True
        return CallToolResult(content=[TextContent(type="text", text=content)], is_error=is_error)

    return Server(SERVER_NAME, version="1", on_list_tools=on_list_tools, on_call_tool=on_call_tool)
