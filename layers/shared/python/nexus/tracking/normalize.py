"""Normalised message lists: what stays the same when Claude Code resends a conversation.

The CLI resends the whole history on every turn, but not byte for byte: inline ``role: "system"``
messages come and go, ``<system-reminder>`` text is added and removed, a message is sent as a
block array in one request and as a plain string in the next, ``cache_control`` markers move,
thinking blocks are cleared. Each quirk is one rule below; a new quirk means one more rule.

A message becomes a canonical tuple, hashed; a list becomes a chain of prefix keys seeded with the
caller's scope (team, user, device), so identical histories of two people never meet.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

Canonical = tuple[str, tuple[Any, ...]]  # (role, blocks)

REMINDER = re.compile(r"<system-reminder>.*?</system-reminder>", re.DOTALL)
DROPPED_BLOCKS = frozenset({"thinking", "redacted_thinking"})
TRACKED_ROLES = frozenset({"user", "assistant"})


def _sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def strip_reminders(text: str) -> str:
    """Rule: system reminders are not part of what the user said (string and block form alike)."""
    return REMINDER.sub("", text).strip() if "<system-reminder>" in text else text.strip()


def _canonical_json(value: Any) -> Any:
    """Key order and cache_control never matter."""
    if isinstance(value, dict):
        return tuple(sorted((k, _canonical_json(v)) for k, v in value.items() if k != "cache_control"))
    if isinstance(value, list):
        return tuple(_canonical_json(v) for v in value)
    return value


def _tool_result_content(content: Any) -> Any:
    if isinstance(content, str):
        return strip_reminders(content)
    if isinstance(content, list):
        return tuple(b for b in (_block(x) for x in content) if b is not None)
    return _canonical_json(content)


def _block(block: Any) -> tuple[Any, ...] | None:
    """Rule set for one content block; None drops it."""
    if isinstance(block, str):
        block = {"type": "text", "text": block}
    if not isinstance(block, dict):
        return ("value", _canonical_json(block))
    kind = block.get("type")
    if kind in DROPPED_BLOCKS:  # thinking is cleared from history by context management
        return None
    if kind == "text":
        text = strip_reminders(str(block.get("text", "")))
        return ("text", text) if text else None  # a reminder-only block is no block
    if kind == "tool_use":
        return ("tool_use", block.get("id"), block.get("name"), _canonical_json(block.get("input")))
    if kind == "tool_result":
        return (
            "tool_result",
            block.get("tool_use_id"),
            _tool_result_content(block.get("content")),
            bool(block.get("is_error")),
        )
    if kind in ("image", "document"):
        source = block.get("source") or {}
        data = source.get("data")
        ref = _sha(str(data).encode()).hex() if data is not None else _canonical_json(source)
        return (kind, ref)
    return (str(kind), _canonical_json(block))


def canonical(message: Any) -> Canonical | None:
    """One message, or None when it carries nothing tracked (inline system messages, reminder-only)."""
    if not isinstance(message, dict) or message.get("role") not in TRACKED_ROLES:
        return None  # rule: inline role "system" messages are environment, not conversation
    content = message.get("content")
    items = [content] if isinstance(content, str) else content if isinstance(content, list) else []
    blocks = tuple(b for b in (_block(x) for x in items) if b is not None)
    if not blocks:
        return None
    return (message["role"], blocks)


@dataclass(frozen=True, slots=True)
class Norm:
    """What tracking keeps of one normalised message."""

    role: str
    hash: bytes
    tool_pairs: frozenset[tuple[str, str]]  # (tool_use | tool_result, id)
    text: str  # its text blocks, joined


def summarise(c: Canonical) -> Norm:
    pairs = frozenset(
        (b[0], b[1]) for b in c[1] if b[0] in ("tool_use", "tool_result") and isinstance(b[1], str)
    )
    text = "\n".join(b[1] for b in c[1] if b[0] == "text")
    return Norm(c[0], _sha(orjson.dumps(c)), pairs, text)


# Sequence rules: applied to the list of normalised messages, in order.
SequenceRule = Callable[[list[Norm]], list[Norm]]


def drop_duplicate_tool_messages(messages: list[Norm]) -> list[Norm]:
    """Rule: a message whose tool ids were all seen already is a duplicate the CLI re-sent."""
    seen: set[tuple[str, str]] = set()
    out = []
    for m in messages:
        if m.tool_pairs and m.tool_pairs <= seen:
            continue
        seen |= m.tool_pairs
        out.append(m)
    return out


SEQUENCE_RULES: list[SequenceRule] = [drop_duplicate_tool_messages]


class NormCache:
    """Normalised form by the hash of a message's exact bytes: a conversation resends its history on
    every turn, so only the new messages of a request are normalised. Bounded, oldest out first."""

    def __init__(self, capacity: int = 200_000) -> None:
        self.capacity = capacity
        self._d: dict[bytes, Norm | None] = {}

    def get(self, raw_hash: bytes, message: Any) -> Norm | None:
        try:
            return self._d[raw_hash]
        except KeyError:
            pass
        c = canonical(message)
        n = summarise(c) if c is not None else None
        if len(self._d) >= self.capacity:
            for k in list(self._d)[: self.capacity // 10]:
                del self._d[k]
        self._d[raw_hash] = n
        return n


def normalise(
    messages: list[Any], raw_hashes: list[bytes] | None = None, cache: NormCache | None = None
) -> list[Norm]:
    if raw_hashes is not None and cache is not None and len(raw_hashes) == len(messages):
        out = [
            n for n in (cache.get(h, m) for h, m in zip(raw_hashes, messages, strict=True)) if n is not None
        ]
    else:
        out = [summarise(c) for c in (canonical(m) for m in messages) if c is not None]
    for rule in SEQUENCE_RULES:
        out = rule(out)
    return out


def scope_key(team: str | None, user: str | None, device: str | None) -> bytes:
    return _sha(orjson.dumps(["nexus-scope", team, user, device]))


def prefix_keys(scope: bytes, messages: list[Norm]) -> list[bytes]:
    """keys[i] identifies messages[: i + 1] within the scope."""
    keys, prev = [], scope
    for m in messages:
        prev = _sha(prev + m.hash)
        keys.append(prev)
    return keys


def first_user_text(messages: list[Norm]) -> str:
    return next((m.text for m in messages if m.role == "user" and m.text), "")
