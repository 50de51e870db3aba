"""The response cache (opt-in, ``cache_enabled``): the same question asked again within the TTL gets
the same answer without running a turn.

The key covers everything that shapes an answer: the caller's team (answers never cross teams), the
model, the system prompt, the whole history, the tools and tool choice, the output schema and cap.
Only complete text answers are kept (an answer that calls tools waits on the client, so replaying it
would hand one client's open turn to another). Entries expire after ``ttl_s``; the least recently
used go first past ``max_entries``. A hit is marked ``x-nexus-cache: hit`` and counted in /stats.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass

import orjson

from nexus_gateway import continuity
from nexus_gateway.dialogue import Dialogue
from nexus_gateway.engine.events import Answer, Event, Finished, TextDelta, Usage

HEADER = "x-nexus-cache"


def key(team: str | None, dialogue: Dialogue) -> str:
    seed = continuity.seed(f"team:{team or ''}", dialogue.config_key())
    history = continuity.key_after(seed, dialogue.messages)
    extra = orjson.dumps([dialogue.model.upstream, dialogue.tool_choice])
    return hashlib.sha256(history + extra).hexdigest()


@dataclass(slots=True)
class _Entry:
    answer: Answer
    expires: float


class ResponseCache:
    def __init__(self, ttl_s: float, max_entries: int) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._entries: OrderedDict[str, _Entry] = OrderedDict()

    def get(self, k: str) -> Answer | None:
        entry = self._entries.get(k)
        if entry is None:
            return None
        if entry.expires < time.monotonic():
            del self._entries[k]
            return None
        self._entries.move_to_end(k)
        return entry.answer

    def put(self, k: str, answer: Answer) -> None:
        if answer.calls or answer.stop_reason not in ("end_turn", "stop_sequence", None):
            return
        self._entries[k] = _Entry(answer, time.monotonic() + self.ttl_s)
        self._entries.move_to_end(k)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)


async def replay(answer: Answer) -> AsyncGenerator[Event, None]:
    """A cached answer as the events of a turn: its text at once, then its end (no tokens were used)."""
    if answer.text:
        yield TextDelta(answer.text)
    yield Finished(answer.stop_reason, Usage(), answer.text, answer.structured_output)


async def recording(
    events: AsyncIterator[Event], on_answer: Callable[[Answer], None]
) -> AsyncGenerator[Event, None]:
    """Pass events through and hand the finished answer to ``on_answer(answer)``."""
    text: list[str] = []
    async for event in events:
        if isinstance(event, TextDelta):
            text.append(event.text)
        elif isinstance(event, Finished):
            on_answer(
                Answer(
                    text=event.text,
                    stop_reason=event.stop_reason,
                    usage=event.usage,
                    structured_output=event.structured_output,
                )
            )
        yield event
