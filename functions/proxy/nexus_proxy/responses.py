"""Small ASGI response helpers for answers the proxy gives itself (errors, health)."""

from __future__ import annotations

from nexus.errors import anthropic_error

from nexus_proxy.asgi import Send

JSON_HEADERS = [(b"content-type", b"application/json")]


async def send_json(
    send: Send, status: int, body: bytes, extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    headers = [*JSON_HEADERS, (b"content-length", str(len(body)).encode()), *(extra or [])]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


# Clients built on the Stainless SDKs (Claude Code included) honour this header: an error of the
# caller's own making (bad key, bad body) will not fix itself, so it must not be retried for minutes.
NO_RETRY = [(b"x-should-retry", b"false")]


async def send_error(
    send: Send, status: int, message: str, extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    headers = [*(NO_RETRY if status < 500 else []), *(extra or [])]
    await send_json(send, status, anthropic_error(status, message), headers)
