"""``/v1/chat/completions`` answers: the engine's events as a chat completion, or as its chunks.

Streaming sends each token delta as the upstream produced it (no buffering, no re-chunking), tool
calls as OpenAI's indexed ``tool_calls`` deltas with their arguments streamed, a final chunk with
the ``finish_reason``, the usage chunk when asked, and ``data: [DONE]``.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson

from nexus_gateway.engine.events import (
    Answer,
    Event,
    Failed,
    Finished,
    Suspended,
    TextDelta,
    ToolCallDelta,
    ToolCallStart,
    Usage,
)
from nexus_gateway.errors import GatewayError

FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "max_budget": "length",  # the request's spend cap ended it
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


def completion_id() -> str:
    return "chatcmpl-" + secrets.token_urlsafe(18)


def finish_reason(stop_reason: str | None, suspended: bool) -> str:
    if suspended:
        return "tool_calls"
    return FINISH.get(stop_reason or "end_turn", "stop")


def usage_doc(u: Usage) -> dict[str, Any]:
    return {
        "prompt_tokens": u.prompt_tokens,
        "completion_tokens": u.output_tokens,
        "total_tokens": u.prompt_tokens + u.output_tokens,
        "prompt_tokens_details": {"cached_tokens": u.cache_read_input_tokens, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
    }


async def collect(events: AsyncIterator[Event]) -> Answer:
    """A whole answer from the events (non-streaming requests)."""
    answer = Answer()
    async for event in events:
        if isinstance(event, Suspended):
            answer.calls = event.calls
            answer.usage = event.usage
            answer.stop_reason = "tool_use"
        elif isinstance(event, Finished):
            answer.text = event.text
            answer.usage = event.usage
            answer.stop_reason = event.stop_reason
            answer.structured_output = event.structured_output
        elif isinstance(event, Failed):
            raise GatewayError(event.status, event.message, code=event.code)
        elif isinstance(event, TextDelta):
            answer.text += event.text
    return answer


def completion(answer: Answer, model: str, cid: str, extra: dict[str, Any]) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": answer.text or None, "refusal": None}
    if answer.calls:
        message["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in answer.calls
        ]
    return {
        "id": cid,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": finish_reason(answer.stop_reason, bool(answer.calls)),
                "logprobs": None,
            }
        ],
        "usage": usage_doc(answer.usage),
        "system_fingerprint": None,
        **extra,
    }


def _sse(doc: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(doc) + b"\n\n"


async def stream(
    events: AsyncIterator[Event], model: str, cid: str, include_usage: bool, extra: dict[str, Any]
) -> AsyncIterator[bytes]:
    created = int(time.time())

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        return _sse(
            {
                "id": cid,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "system_fingerprint": None,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
                **extra,
            }
        )

    yield chunk({"role": "assistant", "content": "", "refusal": None})
    usage: Usage | None = None
    async for event in events:
        if isinstance(event, TextDelta):
            if event.text:
                yield chunk({"content": event.text})
        elif isinstance(event, ToolCallStart):
            yield chunk(
                {
                    "tool_calls": [
                        {
                            "index": event.index,
                            "id": event.id,
                            "type": "function",
                            "function": {"name": event.name, "arguments": ""},
                        }
                    ]
                }
            )
        elif isinstance(event, ToolCallDelta):
            if event.arguments:
                yield chunk(
                    {"tool_calls": [{"index": event.index, "function": {"arguments": event.arguments}}]}
                )
        elif isinstance(event, Suspended):
            usage = event.usage
            yield chunk({}, "tool_calls")
        elif isinstance(event, Finished):
            usage = event.usage
            yield chunk({}, finish_reason(event.stop_reason, False))
        elif isinstance(event, Failed):
            # Headers are sent: report the failure in the stream, as OpenAI's API does.
            err = GatewayError(event.status, event.message, code=event.code)
            yield b"data: " + err.json() + b"\n\n"
            break
    if include_usage and usage is not None:
        yield _sse(
            {
                "id": cid,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "system_fingerprint": None,
                "choices": [],
                "usage": usage_doc(usage),
                **extra,
            }
        )
    yield b"data: [DONE]\n\n"
