"""What the front and the router share: reading a request, answering with an OpenAI error, and
streaming an answer back while watching for the client to leave. Raw ASGI: both are thin relays,
and their start is every new Lambda sandbox's cold start."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import Any

from nexus.headers import HOP_BY_HOP, PLATFORM_HEADERS

from nexus_gateway.errors import GatewayError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

# Lambda's synchronous payload limit is 6 MB, and the front's request becomes one: refuse larger
# requests at the door, in OpenAI's shape, rather than fail inside the invoke.
MAX_BODY_BYTES = 6 * 1024 * 1024 - 64 * 1024
DROP_REQUEST = HOP_BY_HOP | PLATFORM_HEADERS | {"host", "content-length"}
DROP_RESPONSE = HOP_BY_HOP | {"content-length"}


class TooLarge(Exception):
    pass


async def read_body(receive: Receive, limit: int = MAX_BODY_BYTES) -> bytes:
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ConnectionAbortedError
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise TooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def request_headers(scope: Scope) -> dict[str, str]:
    """Lower-cased, without hop-by-hop, framing and platform headers (repeated ones joined)."""
    out: dict[str, str] = {}
    for raw_name, raw_value in scope["headers"]:
        name = raw_name.decode("latin-1").lower()
        if name in DROP_REQUEST:
            continue
        value = raw_value.decode("latin-1")
        out[name] = f"{out[name]}, {value}" if name in out else value
    return out


def response_headers(pairs: list[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    return [
        (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in pairs if k.lower() not in DROP_RESPONSE
    ]


HEALTH_PATH = "/health"  # answered by the front and the router themselves (the adapter's readiness check)


async def send_json(send: Send, status: int, body: bytes, extra: dict[str, str] | None = None) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(k.lower().encode(), v.encode()) for k, v in (extra or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def send_error(send: Send, error: GatewayError) -> None:
    await send_json(send, error.status, error.json(), error.headers)


async def stream_out(
    send: Send,
    receive: Receive,
    status: int,
    headers: list[tuple[bytes, bytes]],
    chunks: AsyncIterator[bytes],
) -> None:
    """Send an answer as it comes. If the client leaves, stop reading ``chunks`` (closing them
    closes the connection behind, so the worker sees the client gone and abandons the turn)."""

    async def pump() -> None:
        await send({"type": "http.response.start", "status": status, "headers": headers})
        async for chunk in chunks:
            if chunk:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    async def client_gone() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    pumping = asyncio.ensure_future(pump())
    watching = asyncio.ensure_future(client_gone())
    try:
        await asyncio.wait({pumping, watching}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (pumping, watching):
            task.cancel()
        closer = getattr(chunks, "aclose", None)
        if closer is not None:
            await closer()
    if pumping.done() and not pumping.cancelled() and pumping.exception() is not None:
        raise pumping.exception()  # type: ignore[misc]


async def lifespan(
    receive: Receive, send: Send, start: Callable[[], Awaitable[None]], stop: Callable[[], Awaitable[None]]
) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await start()
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await stop()
            await send({"type": "lifespan.shutdown.complete"})
            return
