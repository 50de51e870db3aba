"""The prompt library over MCP: ``prompts/list`` and ``prompts/get`` at ``/mcp`` on the dashboard app,
with the official ``mcp`` SDK's low-level server on its streamable HTTP transport.

Not behind the dashboard's own auth (its key or session, with CSRF): a team member's Nexus key
authenticates here (``Authorization: Bearer nxk_...`` or ``X-Nexus-Key``), checked by the same
Authenticator as the proxy's; without a key only when keys are optional (the local stack on
localhost). A wrong key is a 401 with ``WWW-Authenticate: Bearer`` before any MCP work.

The transport runs stateless with JSON responses: each POST carries one JSON-RPC request and gets one
JSON answer, no server-held session and no SSE stream. That is what a buffered Lambda behind Mangum
can serve, so the same app works locally and in AWS (ADR 0023). A session manager is built per
request (it is cheap: one task group), so nothing depends on the ASGI lifespan, which Mangum skips.
"""

from __future__ import annotations

import logging
from contextvars import ContextVar
from typing import Any

import anyio
import mcp_types as types
import orjson
from fastapi import FastAPI
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel.server import Server
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from mcp.shared.exceptions import MCPError
from nexus.access import KEY_PREFIX, Authenticator, AuthError, Principal
from nexus.db import prompts as library
from nexus.headers import NEXUS_KEY_HEADER
from nexus.prompts.template import ArgumentError
from starlette.types import Receive, Scope, Send

log = logging.getLogger("nexus.dashboard.mcp")
OPEN = Principal(None, None, None, "open")
_caller: ContextVar[Principal] = ContextVar("nexus_mcp_caller", default=OPEN)
# Keys optional (localhost only): browsers on other sites must not reach the server through a
# rebound DNS name, so the Host and Origin must be local ones.
LOCAL_ONLY = TransportSecuritySettings(
    enable_dns_rebinding_protection=True,
    allowed_hosts=["127.0.0.1:*", "localhost:*", "[::1]:*", "127.0.0.1", "localhost", "[::1]"],
    allowed_origins=["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"],
)


def build_server(app: FastAPI) -> Server[Any]:
    """The MCP server over the app's database pool (read when called: the Lambda entry replaces it)."""

    def _list() -> list[dict[str, Any]]:
        with app.state.pool.connection() as conn:
            return library.library(conn)

    def _get(name: str, arguments: dict[str, str] | None, caller: Principal) -> tuple[dict[str, Any], str]:
        with app.state.pool.connection() as conn:
            row = library.version(conn, name)
            if row is None or row["removed_at"] is not None:
                raise MCPError(types.INVALID_PARAMS, f"no prompt named {name!r} in the library")
            try:
                text = library.template_of(row).render(arguments)
            except ArgumentError as exc:
                raise MCPError(types.INVALID_PARAMS, f"prompt {name!r}: {exc}") from None
            try:
                library.record_use(conn, name, row["version"], caller.key_id, caller.team, caller.user)
            except Exception as exc:  # the prompt is served even if its use cannot be logged
                log.warning("prompt use not logged: %s", exc)
            return row, text

    async def list_prompts(
        ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
    ) -> types.ListPromptsResult:
        rows = await anyio.to_thread.run_sync(_list)
        return types.ListPromptsResult(
            prompts=[
                types.Prompt(
                    name=r["name"],
                    description=r["description"],
                    arguments=[
                        types.PromptArgument(
                            name=a["name"], description=a.get("description"), required=a.get("required", True)
                        )
                        for a in r["arguments"]
                    ],
                )
                for r in rows
            ]
        )

    async def get_prompt(
        ctx: ServerRequestContext[Any], params: types.GetPromptRequestParams
    ) -> types.GetPromptResult:
        caller = _caller.get()
        row, text = await anyio.to_thread.run_sync(_get, params.name, params.arguments, caller)
        return types.GetPromptResult(
            description=row["description"],
            messages=[types.PromptMessage(role="user", content=types.TextContent(type="text", text=text))],
            meta={"nexus/version": row["version"], "nexus/commit": row["commit"]},
        )

    return Server(
        "nexus-prompts",
        version="1",
        instructions="The team's prompt library, kept in Git and synced by Nexus.",
        on_list_prompts=list_prompts,
        on_get_prompt=get_prompt,
    )


def presented_key(headers: dict[str, str]) -> str | None:
    """The Nexus key the request carries: X-Nexus-Key, or a Bearer token."""
    key = headers.get(NEXUS_KEY_HEADER)
    if key:
        return key.strip()
    auth = headers.get("authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip() or None
    return None


class McpEndpoint:
    """The ASGI app at /mcp: Nexus-key auth, then the SDK's streamable HTTP transport."""

    def __init__(self, app: FastAPI, require_keys: bool, refresh_s: float = 1.0) -> None:
        self.app = app
        self.require_keys = require_keys
        self.refresh_s = refresh_s
        self.server = build_server(app)
        self._auth: Authenticator | None = None

    def authenticate(self, headers: dict[str, str]) -> Principal:
        key = presented_key(headers)
        if key is None:
            if self.require_keys:
                raise AuthError(f"missing Nexus key: send Authorization: Bearer {KEY_PREFIX}...")
            return OPEN
        store = self.app.state.secret_store
        if store is None:
            raise AuthError("this dashboard has no key store: Nexus keys cannot be checked")
        if self._auth is None:
            self._auth = Authenticator(store, self.require_keys, self.refresh_s)
        rec, _ = self._auth.identify(key)
        return Principal(rec.team, rec.user, rec.id, "key")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        try:
            caller = await anyio.to_thread.run_sync(self.authenticate, headers)
        except AuthError as exc:
            await refuse(send, 401, str(exc))
            return
        token = _caller.set(caller)
        try:
            manager = StreamableHTTPSessionManager(
                app=self.server,
                json_response=True,
                stateless=True,
                security_settings=None if self.require_keys else LOCAL_ONLY,
            )
            async with manager.run():
                await manager.handle_request(scope, receive, send)
        finally:
            _caller.reset(token)


async def refuse(send: Send, status: int, message: str) -> None:
    """An HTTP error with a JSON-RPC error body (no request id: the request was not read)."""
    body = orjson.dumps({"jsonrpc": "2.0", "id": None, "error": {"code": -32001, "message": message}})
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if status == 401:
        headers.append((b"www-authenticate", b'Bearer realm="nexus", error="invalid_token"'))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
