"""What the engine is asked, independent of the API it came through: a system prompt, a history of
Anthropic-shaped messages, the client's tools and how the answer must look.

Both ``/v1/chat/completions`` and ``/v1/responses`` translate their input into a ``Dialogue``;
the engine never sees OpenAI shapes. The history is what the client says happened; the engine
decides how much of it the session it resumes already holds (``nexus_gateway.continuity``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

from nexus_gateway.catalog import Model

ToolChoice = str  # "auto" | "none" | "required" | the name of a function


@dataclass(frozen=True, slots=True)
class ToolSpec:
    name: str
    description: str
    parameters: dict[str, Any]


@dataclass(slots=True)
class Message:
    role: Literal["user", "assistant"]
    content: list[dict[str, Any]]  # Anthropic content blocks: text, image, tool_use, tool_result


@dataclass(slots=True)
class Dialogue:
    model: Model
    system: str | None
    messages: list[Message]
    tools: list[ToolSpec] = field(default_factory=list)
    tool_choice: ToolChoice = "auto"
    json_schema: dict[str, Any] | None = None  # structured output (json_schema or json_object)
    max_tokens: int | None = None
    conversation_id: str | None = None
    effort: str | None = None  # low, medium, high, xhigh: Claude thinks (adaptively) with this effort
    skipped_tools: list[str] = field(default_factory=list)  # offered hosted tools the engine cannot run

    def config_key(self) -> str:
        """What Claude Code fixes when a session starts: sessions are reusable across requests only
        for the same key."""
        doc = {
            "system": self.system,
            "tools": [[t.name, t.description, t.parameters] for t in self.tools],
            "schema": self.json_schema,
            "max_tokens": self.max_tokens,
            "effort": self.effort,
        }
        return hashlib.sha256(orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)).hexdigest()[:24]


# OpenAI's reasoning effort -> Claude's effort (None: no thinking).
EFFORTS: dict[str, str | None] = {
    "none": None,
    "minimal": None,
    "low": "low",
    "medium": "medium",
    "high": "high",
    "xhigh": "xhigh",
}


def text_block(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text}


def append(messages: list[Message], role: Literal["user", "assistant"], blocks: list[dict[str, Any]]) -> None:
    """Add blocks as a message of ``role``, merged into the previous one if it has the same role
    (Anthropic alternates roles; OpenAI clients may send two user messages in a row, and a tool
    result followed by a user message belong in one user turn)."""
    if not blocks:
        return
    if messages and messages[-1].role == role:
        messages[-1].content.extend(blocks)
    else:
        messages.append(Message(role, list(blocks)))
