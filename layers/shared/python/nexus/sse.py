"""Anthropic Messages SSE: parse a recorded stream and rebuild the message it carried.

Usage is taken once per request: ``message_start.message.usage`` merged with the last
``message_delta.usage`` (never summed per block: that overcounts).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson


@dataclass(slots=True)
class SSEEvent:
    event: str | None
    data: str


def parse_events(raw: bytes) -> tuple[list[SSEEvent], bool]:
    """Split an SSE byte stream into events. Returns (events, ended_cleanly) where ended_cleanly is
    False when the bytes stop inside an event (a cut stream)."""
    text = raw.decode("utf-8", errors="replace").replace("\r\n", "\n").replace("\r", "\n")
    events: list[SSEEvent] = []
    blocks = text.split("\n\n")
    tail = blocks.pop()  # text after the last blank line: an unfinished event, if any
    for block in blocks:
        ev = _parse_block(block)
        if ev is not None:
            events.append(ev)
    return events, not tail.strip()


def _parse_block(block: str) -> SSEEvent | None:
    event: str | None = None
    data: list[str] = []
    for line in block.split("\n"):
        if not line or line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if name == "event":
            event = value
        elif name == "data":
            data.append(value)
    if event is None and not data:
        return None
    return SSEEvent(event, "\n".join(data))


@dataclass(slots=True)
class StreamResult:
    message: dict[str, Any] | None
    usage: dict[str, Any] = field(default_factory=dict)
    error: dict[str, Any] | None = None  # an `event: error` payload, if the stream carried one
    complete: bool = False  # saw message_stop


def rebuild_message(raw: bytes) -> StreamResult:
    """Rebuild the final message object (as a non-streaming response would return it)."""
    events, _ = parse_events(raw)
    message: dict[str, Any] | None = None
    blocks: dict[int, dict[str, Any]] = {}
    partial_json: dict[int, list[str]] = {}
    usage: dict[str, Any] = {}
    result = StreamResult(None)
    for ev in events:
        try:
            payload = orjson.loads(ev.data) if ev.data else {}
        except orjson.JSONDecodeError:
            continue
        if not isinstance(payload, dict):
            continue
        kind = payload.get("type") or ev.event
        if kind == "message_start":
            message = dict(payload.get("message") or {})
            usage.update(message.get("usage") or {})
        elif kind == "content_block_start":
            idx = payload.get("index", len(blocks))
            blocks[idx] = dict(payload.get("content_block") or {})
            if blocks[idx].get("type") in ("tool_use", "server_tool_use", "mcp_tool_use"):
                partial_json[idx] = []
        elif kind == "content_block_delta":
            _apply_delta(blocks, partial_json, payload.get("index", 0), payload.get("delta") or {})
        elif kind == "content_block_stop":
            _finish_block(blocks, partial_json, payload.get("index", 0))
        elif kind == "message_delta":
            if message is not None:
                delta = payload.get("delta") or {}
                for key in ("stop_reason", "stop_sequence", "container"):
                    if key in delta:
                        message[key] = delta[key]
            usage.update({k: v for k, v in (payload.get("usage") or {}).items() if v is not None})
        elif kind == "message_stop":
            result.complete = True
        elif kind == "error":
            result.error = payload.get("error") or payload
    for idx in list(partial_json):
        _finish_block(blocks, partial_json, idx)
    if message is not None:
        message["content"] = [blocks[i] for i in sorted(blocks)]
        message["usage"] = usage
    result.message = message
    result.usage = usage
    return result


def _apply_delta(
    blocks: dict[int, dict[str, Any]], partial: dict[int, list[str]], idx: int, delta: dict[str, Any]
) -> None:
    block = blocks.setdefault(idx, {"type": "text", "text": ""})
    dtype = delta.get("type")
    if dtype == "text_delta":
        block["text"] = block.get("text", "") + delta.get("text", "")
    elif dtype == "thinking_delta":
        block["thinking"] = block.get("thinking", "") + delta.get("thinking", "")
    elif dtype == "signature_delta":
        block["signature"] = block.get("signature", "") + delta.get("signature", "")
    elif dtype == "input_json_delta":
        partial.setdefault(idx, []).append(delta.get("partial_json", ""))
    elif dtype == "citations_delta":
        block.setdefault("citations", []).append(delta.get("citation"))


def _finish_block(blocks: dict[int, dict[str, Any]], partial: dict[int, list[str]], idx: int) -> None:
    parts = partial.pop(idx, None)
    if parts is None or idx not in blocks:
        return
    text = "".join(parts)
    if not text:
        return  # input stays as sent in content_block_start (usually {})
    try:
        blocks[idx]["input"] = orjson.loads(text)
    except orjson.JSONDecodeError:
        blocks[idx]["input"] = {"_unparsed": text}  # cut mid-way: keep what arrived
