"""A conversation cut down to what a reviewer needs, within a token budget, deterministically.

Kept whole (up to generous caps): user prompts, final answers (the last assistant text before the
next prompt), tool errors and compaction summaries. Cut short: intermediate assistant text, tool
calls and tool output. Dropped: thinking, inline ``system`` messages, ``<system-reminder>`` blocks.
When the transcript is still over budget the caps tighten once; what remains over budget is split
into chunks at prompt boundaries, each within the budget (analysed one by one, then combined).

Same input, same output: the input hash (``prompt.input_hash``) is taken over the chunks, so an
unchanged conversation is never sent to the model twice.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Literal

Kind = Literal[
    "prompt", "answer", "step", "tool_call", "tool_result", "tool_error", "summary", "compact", "subagent"
]
CHARS_PER_TOKEN = 4
DEFAULT_BUDGET = 24_000  # tokens of transcript per model call
# Characters shown per entry kind; TIGHT once the whole transcript is over budget.
LIMITS: dict[str, int] = {
    "prompt": 4000,
    "answer": 2000,
    "summary": 6000,
    "step": 300,
    "tool_call": 200,
    "tool_result": 300,
    "tool_error": 1000,
    "compact": 0,
    "subagent": 1000,
}
TIGHT: dict[str, int] = {
    "prompt": 2000,
    "answer": 800,
    "summary": 3000,
    "step": 80,
    "tool_call": 80,
    "tool_result": 0,
    "tool_error": 400,
    "compact": 0,
    "subagent": 300,
}
LABELS: dict[str, str] = {
    "prompt": "user",
    "answer": "assistant",
    "step": "assistant step",
    "tool_call": "tool call",
    "tool_result": "tool result",
    "tool_error": "tool error",
    "summary": "compaction summary",
    "compact": "user asked to /compact",
    "subagent": "sub-agent",
}
_REMINDER = re.compile(r"<system-reminder>.*?</system-reminder>", re.S)
CONTINUATION = (
    "This session is being continued from a previous conversation",
    "The conversation is summarized below",
)
COMPACT_PROMPT = "create a detailed summary of the conversation"
LINE = re.compile(r"^\[#(\d+) user\] (.*)$")


def tokens(text: str) -> int:
    """Estimated tokens: characters / 4 (deterministic; the model's count comes back in the usage)."""
    return -(-len(text) // CHARS_PER_TOKEN)


@dataclass(frozen=True, slots=True)
class Entry:
    n: int  # request number in the conversation that added it
    kind: Kind
    text: str


@dataclass(frozen=True, slots=True)
class Segment:
    """One branch's transcript: its newest request's messages and answer. ``owners[i]`` is the
    number of the request that added message ``i``; ``response_n`` the request that got ``response``."""

    branch: str
    kind: str  # main | branch | compact | subtask
    messages: list[dict[str, Any]]
    owners: list[int]
    response: dict[str, Any] | None
    response_n: int
    spawned_at: int | None = None  # sub-agents: the request whose tool call started it


@dataclass(frozen=True, slots=True)
class Stats:
    requests: int = 0
    tool_calls: int = 0
    failed_tool_calls: int = 0
    compactions: int = 0
    retries: int = 0  # identical requests sent again (tracking's ``retry`` link)
    subagents: int = 0


@dataclass(frozen=True, slots=True)
class Condensed:
    chunks: list[str]
    source_tokens: int
    condensed_tokens: int
    stats: Stats = field(default_factory=Stats)

    @property
    def ratio(self) -> float:
        return round(self.condensed_tokens / self.source_tokens, 4) if self.source_tokens else 1.0


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            _text_of(b.get("text") if b.get("type") == "text" else b.get("content"))
            for b in content
            if isinstance(b, dict)
        )
    return ""


def _clean(text: str) -> str:
    return _REMINDER.sub("", text).strip()


def message_entries(message: dict[str, Any], n: int) -> list[Entry]:
    role, content = message.get("role"), message.get("content")
    blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
    if role not in ("user", "assistant") or not isinstance(blocks, list):
        return []
    out: list[Entry] = []
    for b in blocks:
        if not isinstance(b, dict):
            continue
        t = b.get("type")
        if t == "text":
            text = _clean(str(b.get("text") or ""))
            if not text:
                continue
            if role == "assistant":
                out.append(Entry(n, "step", text))
            elif text.startswith(CONTINUATION):
                out.append(Entry(n, "summary", text))
            elif COMPACT_PROMPT in text:
                out.append(Entry(n, "compact", text))
            else:
                out.append(Entry(n, "prompt", text))
        elif t in ("tool_use", "server_tool_use"):
            args = json.dumps(b.get("input"), ensure_ascii=False, sort_keys=True, separators=(",", ":"))
            out.append(Entry(n, "tool_call", f"{b.get('name')}: {args}"))
        elif t == "tool_result":
            text = _clean(_text_of(b.get("content")))
            out.append(Entry(n, "tool_error" if b.get("is_error") else "tool_result", text))
    return out


def segment_entries(seg: Segment) -> list[Entry]:
    """The segment's entries in order; the last assistant text before each prompt (and at the end)
    is the turn's answer, earlier ones are steps."""
    entries: list[Entry] = []
    for message, n in zip(seg.messages, seg.owners, strict=True):
        entries += message_entries(message, n)
    if seg.response is not None:
        entries += message_entries(
            {"role": "assistant", "content": seg.response.get("content")}, seg.response_n
        )
    out = list(entries)
    last_step: int | None = None
    for i, e in enumerate(entries):
        if e.kind == "step":
            last_step = i
        elif e.kind in ("prompt", "compact", "summary"):
            if last_step is not None:
                out[last_step] = Entry(entries[last_step].n, "answer", entries[last_step].text)
            last_step = None
    if last_step is not None:
        out[last_step] = Entry(entries[last_step].n, "answer", entries[last_step].text)
    if seg.kind == "subtask":  # a sub-agent: its task and its result, not its working
        first = next((e for e in out if e.kind == "prompt"), None)
        answer = next((e for e in reversed(out) if e.kind == "answer"), None)
        return [
            Entry(e.n, "subagent", ("task: " if e is first else "result: ") + e.text)
            for e in (first, answer)
            if e is not None
        ]
    return out


def _cut(text: str, limit: int) -> str:
    text = " ".join(text.split()) if limit < 400 else text
    if len(text) <= limit:
        return text
    return f"{text[:limit]} […{len(text) - limit} chars cut]"


def render(entry: Entry, limits: dict[str, int]) -> str:
    limit = limits[entry.kind]
    label = LABELS[entry.kind]
    if entry.kind == "compact":
        return f"[#{entry.n} {label}]"
    if limit == 0:
        return f"[#{entry.n} {label}] ({len(entry.text)} chars)"
    return f"[#{entry.n} {label}] {_cut(entry.text, limit)}"


def _header(seg: Segment) -> str:
    if seg.kind == "subtask":
        return (
            f"=== sub-agent {seg.branch}"
            + (f" (spawned at #{seg.spawned_at})" if seg.spawned_at else "")
            + " ==="
        )
    return f"=== branch {seg.branch} ({seg.kind}) ==="


def _blocks(segments: list[Segment], limits: dict[str, int]) -> list[list[str]]:
    """Lines grouped so a chunk boundary falls only before a prompt or a segment header."""
    blocks: list[list[str]] = []
    for seg in segments:
        blocks.append([_header(seg)])
        for e in segment_entries(seg):
            line = render(e, limits)
            if e.kind in ("prompt", "compact", "summary") and len(blocks[-1]) > 1:
                blocks.append([])
            blocks[-1].append(line)
    return blocks


def _pack(blocks: list[list[str]], budget: int) -> list[str]:
    chunks: list[list[str]] = [[]]
    size = 0
    for block in blocks:
        cost = sum(tokens(line) + 1 for line in block)
        if chunks[-1] and size + cost > budget:
            chunks.append([])
            size = 0
        if cost > budget:  # one turn bigger than a chunk: split it by lines
            for line in _fit(block, budget):
                c = tokens(line) + 1
                if chunks[-1] and size + c > budget:
                    chunks.append([])
                    size = 0
                chunks[-1].append(line)
                size += c
            continue
        chunks[-1].extend(block)
        size += cost
    return ["\n".join(c) for c in chunks if c]


def _fit(block: list[str], budget: int) -> list[str]:
    cap = budget * CHARS_PER_TOKEN - 64
    return [line if len(line) <= cap else line[:cap] + " […cut]" for line in block]


def source_size(segments: list[Segment]) -> int:
    """Estimated tokens of the segments' messages and answers as sent (JSON), before condensation."""
    total = 0
    for seg in segments:
        total += tokens(json.dumps(seg.messages, ensure_ascii=False, separators=(",", ":")))
        if seg.response is not None:
            total += tokens(
                json.dumps(seg.response.get("content"), ensure_ascii=False, separators=(",", ":"))
            )
    return total


def stats(segments: list[Segment], requests: int, retries: int) -> Stats:
    calls = failed = compactions = 0
    for seg in segments:
        for e in segment_entries(seg) if seg.kind != "subtask" else []:
            calls += e.kind == "tool_call"
            failed += e.kind == "tool_error"
            compactions += e.kind == "compact"
    return Stats(
        requests=requests,
        tool_calls=calls,
        failed_tool_calls=failed,
        compactions=compactions,
        retries=retries,
        subagents=sum(1 for s in segments if s.kind == "subtask"),
    )


def condense(
    segments: list[Segment], budget: int = DEFAULT_BUDGET, requests: int = 0, retries: int = 0
) -> Condensed:
    blocks = _blocks(segments, LIMITS)
    total = sum(tokens(line) + 1 for b in blocks for line in b)
    if total > budget:
        blocks = _blocks(segments, TIGHT)
    chunks = _pack(blocks, budget)
    return Condensed(
        chunks=chunks,
        source_tokens=source_size(segments),
        condensed_tokens=sum(tokens(c) for c in chunks),
        stats=stats(segments, requests, retries),
    )


def prompts_in(chunk: str) -> dict[int, str]:
    """The user prompts a chunk shows, by request number (what a tip may quote)."""
    found: dict[int, str] = {}
    current: int | None = None
    for line in chunk.splitlines():
        m = LINE.match(line)
        if m:
            current = int(m.group(1))
            found[current] = (found[current] + "\n" + m.group(2)) if current in found else m.group(2)
        elif line.startswith(("[#", "=== ")):
            current = None
        elif current is not None:  # a prompt's further lines
            found[current] += "\n" + line
    return found
