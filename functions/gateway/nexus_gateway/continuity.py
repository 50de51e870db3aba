"""Finding the session that already holds a history, so a client that resends its whole
conversation every time (the usual OpenAI client) costs one new turn, not a replay.

Each message is reduced to what the client can echo back faithfully (text, tool calls and results,
image digests; not block boundaries, not cache markers, not the order of JSON keys in arguments),
and the history becomes a chain of hashes, one per prefix, seeded with the caller and the session
configuration: two callers, or two system prompts, never share a session.

After a turn, the gateway remembers ``chain(history + answer)`` -> the session (and the point in
its transcript). The next request's history minus its new tail is looked up; the longest known
prefix wins; the rest of the history is what must be sent.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from nexus_gateway.dialogue import Message


def _canonical_block(block: dict[str, Any]) -> Any:
    kind = block.get("type")
    if kind == "text":
        return ["t", block.get("text", "")]
    if kind == "image":
        data = (block.get("source") or {}).get("data", "")
        return ["i", hashlib.sha256(data.encode()).hexdigest()]
    if kind == "tool_use":
        return ["c", block.get("id"), block.get("name"), block.get("input")]
    if kind == "tool_result":
        content = block.get("content")
        if isinstance(content, list):
            content = "\n".join(c.get("text", "") for c in content if isinstance(c, dict))
        return ["r", block.get("tool_use_id"), content or ""]
    return [kind]


def canonical(message: Message) -> bytes:
    """A message as the client will echo it: texts of a turn joined (clients merge or split text
    parts freely), then tool calls and results in order."""
    texts = [b.get("text", "") for b in message.content if b.get("type") == "text"]
    rest = [_canonical_block(b) for b in message.content if b.get("type") != "text"]
    doc = [message.role, "".join(texts), rest]
    return orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)


def seed(scope: str, config_key: str) -> bytes:
    return hashlib.sha256(f"{scope}\0{config_key}".encode()).digest()


def chain(start: bytes, messages: list[Message]) -> list[bytes]:
    """Hash of every prefix: ``out[i]`` covers ``messages[: i + 1]``."""
    out = []
    h = start
    for m in messages:
        h = hashlib.sha256(h + canonical(m)).digest()
        out.append(h)
    return out


def key_after(start: bytes, messages: list[Message]) -> bytes:
    return chain(start, messages)[-1] if messages else start
