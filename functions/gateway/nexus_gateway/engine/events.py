"""What the engine reports while a turn runs, independent of any API shape.

The API layers (chat completions, responses) turn these into their own chunks and objects.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0

    @property
    def prompt_tokens(self) -> int:
        return self.input_tokens + self.cache_creation_input_tokens + self.cache_read_input_tokens

    def add_start(self, usage: dict[str, Any]) -> None:
        """``message_start``: what the upstream read for one message."""
        self.input_tokens += int(usage.get("input_tokens") or 0)
        self.cache_creation_input_tokens += int(usage.get("cache_creation_input_tokens") or 0)
        self.cache_read_input_tokens += int(usage.get("cache_read_input_tokens") or 0)

    def add_output(self, usage: dict[str, Any]) -> None:
        """``message_delta``: the message's output tokens (the last delta holds the total)."""
        self.output_tokens += int(usage.get("output_tokens") or 0)


@dataclass(slots=True)
class TextDelta:
    text: str


@dataclass(slots=True)
class ToolCallStart:
    index: int  # among this response's tool calls
    id: str
    name: str


@dataclass(slots=True)
class ToolCallDelta:
    index: int
    arguments: str  # a piece of the JSON arguments, as the model streams it


@dataclass(slots=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # the complete JSON


@dataclass(slots=True)
class Suspended:
    """The answer ends here with tool calls; the turn waits for the client's results."""

    calls: list[ToolCall]
    usage: Usage


@dataclass(slots=True)
class Finished:
    """The turn ended."""

    stop_reason: str | None  # Anthropic's: end_turn, max_tokens, refusal, tool_use, ...
    usage: Usage
    text: str
    structured_output: Any = None
    cost_usd: float | None = None
    session_id: str | None = None
    # The tool calls Claude Code made in this response (its own tools, the client's, sub-agents'):
    # (name, arguments). Memory reads the files they named.
    tool_calls: list[tuple[str, Any]] = field(default_factory=list)


@dataclass(slots=True)
class Failed:
    status: int
    message: str
    # Nothing reached the client yet and another worker may succeed (a Claude Code process died).
    retryable: bool = False
    code: str | None = None


Event = TextDelta | ToolCallStart | ToolCallDelta | Suspended | Finished | Failed


@dataclass(slots=True)
class Answer:
    """Everything a non-streaming response needs, gathered from the events."""

    text: str = ""
    calls: list[ToolCall] = field(default_factory=list)
    stop_reason: str | None = None
    usage: Usage = field(default_factory=Usage)
    structured_output: Any = None
