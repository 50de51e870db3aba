"""The engine's way to the Nexus proxy: each Claude Code process talks to a loopback relay that
adds the credentials of whoever the process is serving right now, then streams the exchange to
the proxy byte for byte.

Why: a warm Claude Code process is started before anyone asks for it, and its environment (where
API keys live) is fixed at start. The relay lets one warm process serve any caller: the proxy sees
the caller's own Nexus key (team-key teams) or their Anthropic credential plus ``X-Nexus-Key``
(pass-through teams), so every engine call is recorded, costed and tracked under the caller.
Each process gets a base URL with a random token; a token that is not serving anyone is refused.
"""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Callable

import aiohttp
import orjson
from aiohttp import web
from nexus.headers import CLIENT_HEADER

log = logging.getLogger("nexus.gateway.relay")

# Credentials the process sends (a placeholder) never reach the proxy.
DROP = frozenset({"x-api-key", "authorization", "x-nexus-key", "host", "content-length", "connection"})
HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "content-length"})

Credentials = Callable[[], dict[str, str] | None]
IMAGE_NOTE = re.compile(r"^\[Image: source: [^\]]*\]$")


# The one line Claude Code puts before every system prompt it is given (no setting removes it), as
# its JSON serialisation writes it. The client's system prompt is the system prompt.
PREAMBLE = (
    b'{"type":"text","text":"You are a Claude agent, built on Anthropic\'s Claude Agent SDK.",'
    b'"cache_control":{"type":"ephemeral"}}'
)


def scrub(body: bytes) -> bytes:
    """The request as the client's words make it, without what Claude Code adds of its own:
    - its preamble line in front of the client's system prompt (the whole ``system`` key when the
      client sent no system prompt);
    - the note after each image it was given ("[Image: source: /tmp/claude-0/.../images/1.png]"),
      a path of this machine.
    Bodies without either pass byte for byte."""
    if PREAMBLE in body:
        body = body.replace(b'"system":[' + PREAMBLE + b",", b'"system":[', 1)
        body = body.replace(b'"system":[' + PREAMBLE + b"],", b"", 1)
    if b"[Image: source: " not in body:
        return body
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body
    changed = False
    for message in doc.get("messages") or []:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list):
            kept = [
                b
                for b in content
                if not (
                    isinstance(b, dict) and b.get("type") == "text" and IMAGE_NOTE.match(b.get("text", ""))
                )
            ]
            if kept and len(kept) != len(content):
                if "cache_control" in content[-1] and "cache_control" not in kept[-1]:
                    kept[-1] = {**kept[-1], "cache_control": content[-1]["cache_control"]}
                message["content"] = kept
                changed = True
    return orjson.dumps(doc) if changed else body


class Relay:
    def __init__(self, proxy_url: str) -> None:
        self.proxy_url = proxy_url.rstrip("/")
        self._routes: dict[str, Credentials] = {}
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self.port = 0
        self.forwarded = 0  # upstream calls made by the engine (counted for /stats)

    async def start(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{token}/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=None, connect=10, sock_read=600),
            auto_decompress=False,
            cookie_jar=aiohttp.DummyCookieJar(),
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
        if self._runner is not None:
            await self._runner.cleanup()

    def route(self, credentials: Credentials) -> tuple[str, str]:
        """A new route for one Claude Code process: (base URL for ANTHROPIC_BASE_URL, token)."""
        token = secrets.token_urlsafe(18)
        self._routes[token] = credentials
        return f"http://127.0.0.1:{self.port}/{token}", token

    def drop(self, token: str) -> None:
        self._routes.pop(token, None)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        lookup = self._routes.get(request.match_info["token"])
        creds = lookup() if lookup is not None else None
        if creds is None:
            return web.json_response(
                {
                    "type": "error",
                    "error": {"type": "authentication_error", "message": "no caller on this route"},
                },
                status=401,
                headers={"x-should-retry": "false"},
            )
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in DROP}
        headers.update(creds)
        headers[CLIENT_HEADER] = "gateway"  # recorded by the proxy (tracking), not sent upstream
        url = f"{self.proxy_url}/{request.match_info['tail']}"
        if request.query_string:
            url += "?" + request.query_string
        self.forwarded += 1
        try:
            upstream = await self._session.request(
                request.method, url, data=scrub(await request.read()), headers=headers, allow_redirects=False
            )
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            log.warning("relay: Nexus proxy unreachable at %s: %s", self.proxy_url, exc)
            return web.json_response(
                {
                    "type": "error",
                    "error": {"type": "api_error", "message": f"Nexus proxy unreachable: {exc}"},
                },
                status=502,
            )
        try:
            resp = web.StreamResponse(
                status=upstream.status,
                headers={k: v for k, v in upstream.headers.items() if k.lower() not in HOP_BY_HOP},
            )
            await resp.prepare(request)
            async for chunk in upstream.content.iter_any():
                await resp.write(chunk)
            await resp.write_eof()
            return resp
        finally:
            upstream.release()
