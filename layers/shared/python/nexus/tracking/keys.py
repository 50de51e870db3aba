"""Everything linking needs from one request, computed at ingest without touching the database."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

import orjson

from nexus.tracking.normalize import (
    Norm,
    NormCache,
    canonical,
    first_user_text,
    normalise,
    prefix_keys,
    scope_key,
    strip_reminders,
    summarise,
)

SUBAGENT_TOOLS = frozenset({"Agent", "Task"})  # "Task" before CLI 2.1, "Agent" since
CONTINUATION_OPENINGS = ("This session is being continued from a previous conversation",)
SUMMARY_MARKERS = ("Summary:", "The conversation is summarized below:")
# What the CLI appends after the summary it carries (2.1: a pointer to the transcript, then an order
# to go on; some builds: a note on the messages kept verbatim); older CLIs: "Please continue...".
SUMMARY_TRAILERS = (
    "If you need specific details from before compaction",
    "Continue the conversation from where it left off",
    "The messages after this summary are the most recent",
    "Please continue the conversation from where we left it off",
)
_WS = re.compile(r"\s+")
_SUMMARY_TAG = re.compile(r"<summary>(.*?)(?:</summary>|$)", re.DOTALL)


def _sha(*parts: bytes) -> bytes:
    h = hashlib.sha256()
    for p in parts:
        h.update(p)
    return h.digest()


def _text_key(scope: bytes, kind: str, text: str) -> bytes:
    return _sha(scope, kind.encode(), b"\0", text.encode())


def summary_text(text: str) -> str:
    """A summary as compared for linking: whole, reminders out, whitespace collapsed, and cut before
    the first trailer the CLI adds after it in a continuation. Whole, because two summaries of one
    long session often open alike (the same section headers), and a short one (``/compact be brief``)
    is followed at once by the trailer."""
    text = strip_reminders(text)
    cut = min((i for t in SUMMARY_TRAILERS if (i := text.find(t)) >= 0), default=len(text))
    return _WS.sub(" ", text[:cut]).strip()


@dataclass(slots=True)
class TrackingKeys:
    scope: bytes
    prefix_key: bytes | None = None  # = the parent's tail_key: history up to the last assistant message
    tail_key: bytes | None = None  # history + this response: what the next turn's prefix_key will be
    messages_key: bytes | None = None  # the whole history (an identical retry has the same)
    start_key: bytes | None = None  # first-turn requests: the opening prompt (sub-agent lookup)
    invocations: list[tuple[str, int, bytes]] = field(
        default_factory=list
    )  # (tool_use_id, index, prompt key)
    continuation_key: bytes | None = None  # a post-compaction request: the summary it carries
    summary_key: bytes | None = None  # a compaction request: the summary it produced
    title: str = ""
    prompt_text: str = ""  # the newest user text (full-text search)
    answer_text: str = ""  # the response's text (full-text search)


def _device(body: dict[str, Any]) -> str | None:
    meta = body.get("metadata")
    raw = meta.get("user_id") if isinstance(meta, dict) else None
    if not isinstance(raw, str) or not raw.startswith("{"):
        return raw if isinstance(raw, str) else None
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    return doc.get("device_id") if isinstance(doc, dict) else None


def _response_text(response: dict[str, Any] | None) -> str:
    if not isinstance(response, dict):
        return ""
    return "\n".join(
        b.get("text", "")
        for b in response.get("content") or []
        if isinstance(b, dict) and b.get("type") == "text"
    )


def _continuation_block(messages: list[Any]) -> str:
    """The text block of the first user message that carries the summary (the CLI puts the /compact
    command's own blocks after it, in the same message): the summary ends where the block does."""
    first = next((m for m in messages if isinstance(m, dict) and m.get("role") == "user"), None)
    content = first.get("content") if first else None
    blocks = (
        [content]
        if isinstance(content, str)
        else [b.get("text") for b in content or [] if isinstance(b, dict) and b.get("type") == "text"]
    )
    texts = [strip_reminders(t) for t in blocks if isinstance(t, str)]
    return next((t for t in texts if t.startswith(CONTINUATION_OPENINGS)), "")


def _summary(text: str) -> str:
    m = _SUMMARY_TAG.search(text)
    return m.group(1) if m else text


def compute(
    team: str | None,
    user: str | None,
    body: dict[str, Any],
    response: dict[str, Any] | None,
    kind: str,
    raw_hashes: list[bytes] | None = None,
    cache: NormCache | None = None,
) -> TrackingKeys:
    """``raw_hashes`` (hashes of the messages' exact bytes) with ``cache`` skip re-normalising history."""
    scope = scope_key(team, user, _device(body))
    keys = TrackingKeys(scope)
    messages = body.get("messages")
    history: list[Norm] = normalise(messages if isinstance(messages, list) else [], raw_hashes, cache)
    if not history:
        return keys
    chain = prefix_keys(scope, history)
    keys.messages_key = chain[-1]
    last_assistant = max((i for i, m in enumerate(history) if m.role == "assistant"), default=None)
    if last_assistant is not None:
        keys.prefix_key = chain[last_assistant]
    else:
        keys.start_key = _text_key(scope, "start", first_user_text(history))

    reply = canonical({"role": "assistant", "content": (response or {}).get("content")}) if response else None
    if reply is not None and isinstance(response, dict) and response.get("type") == "message":
        keys.tail_key = _sha(chain[-1], summarise(reply).hash)
        for index, block in enumerate(response.get("content") or []):
            if (
                isinstance(block, dict)
                and block.get("type") == "tool_use"
                and block.get("name") in SUBAGENT_TOOLS
            ):
                prompt = (block.get("input") or {}).get("prompt")
                if isinstance(prompt, str) and prompt.strip():
                    keys.invocations.append(
                        (str(block.get("id")), index, _text_key(scope, "start", strip_reminders(prompt)))
                    )

    opening = first_user_text(history)
    keys.title = opening[:300]
    if opening.startswith(CONTINUATION_OPENINGS):
        block = _continuation_block(messages if isinstance(messages, list) else [])
        for marker in SUMMARY_MARKERS:
            if marker in block:
                carried = summary_text(block.split(marker, 1)[1])
                keys.continuation_key = _text_key(scope, "summary", carried)
                break
    answer = _response_text(response)
    if kind == "compaction" and answer:
        keys.summary_key = _text_key(scope, "summary", summary_text(_summary(answer)))

    last_user = next((m for m in reversed(history) if m.role == "user"), None)
    if last_user is not None:
        keys.prompt_text = last_user.text[:20_000]
    keys.answer_text = answer[:20_000]
    return keys
