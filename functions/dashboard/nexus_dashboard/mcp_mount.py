"""``/mcp`` on the dashboard app, built on its first request: the MCP SDK takes about 0.7 s to import
(its generated protocol types), which every dashboard start and Lambda cold start would otherwise pay
for a route most of them never serve. ``mcp_prompts.py`` is the endpoint itself."""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio
from fastapi import FastAPI
from starlette.types import Receive, Scope, Send

if TYPE_CHECKING:
    from nexus_dashboard.mcp_prompts import McpEndpoint

PATH = "/mcp"


class LazyMcp:
    """An ASGI app that imports and builds ``McpEndpoint`` when the first request arrives."""

    def __init__(self, app: FastAPI, require_keys: bool, refresh_s: float) -> None:
        self.app, self.require_keys, self.refresh_s = app, require_keys, refresh_s
        self.endpoint: McpEndpoint | None = None
        self._building = anyio.Lock()

    def _build(self) -> McpEndpoint:
        from nexus_dashboard.mcp_prompts import McpEndpoint

        return McpEndpoint(self.app, self.require_keys, self.refresh_s)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.endpoint is None:
            async with self._building:  # one build; the import runs off the event loop
                if self.endpoint is None:
                    self.endpoint = await anyio.to_thread.run_sync(self._build)
        await self.endpoint(scope, receive, send)
