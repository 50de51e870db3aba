"""What kind of Claude Code request a record is: main agent, sub-agent, side call, ...

Kept as small named predicates so a new CLI behaviour is one rule, not a rewrite.
"""

from __future__ import annotations

from typing import Any

MAIN = "main"
SUBAGENT = "subagent"
SIDE_CALL = "side_call"
QUOTA_PROBE = "quota_probe"
COUNT_TOKENS = "count_tokens"
COMPACTION = "compaction"
OTHER = "other"

# The CLI's /compact request ends with a user message asking for this (wording of 2.x CLIs).
COMPACTION_MARKERS = (
    "create a detailed summary of the conversation so far",
    "your task is to create a detailed summary of the conversation",
)


def message_text(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            b.get("text", "") for b in content if isinstance(b, dict) and b.get("type") == "text"
        )
    return ""


def _messages(body: dict[str, Any]) -> list[Any]:
    messages = body.get("messages")
    return messages if isinstance(messages, list) else []


def last_user_text(body: dict[str, Any]) -> str:
    for message in reversed(_messages(body)):
        if isinstance(message, dict) and message.get("role") == "user":
            return message_text(message)
    return ""


def is_compaction(body: dict[str, Any]) -> bool:
    text = last_user_text(body).lower()
    return any(marker in text for marker in COMPACTION_MARKERS)


def is_quota_probe(body: dict[str, Any]) -> bool:
    """The CLI checks its quota with a 1-token request whose only message is "quota"."""
    messages = _messages(body)
    return body.get("max_tokens") == 1 and len(messages) == 1 and last_user_text(body).strip() == "quota"


def classify(path: str, body: dict[str, Any] | None, agent_id: str | None, via_gateway: bool = False) -> str:
    """``via_gateway``: made by the gateway's engine, whose turns are main turns with or without tools
    (it makes no side calls)."""
    if path.endswith("/count_tokens"):
        return COUNT_TOKENS
    if not isinstance(body, dict) or "messages" not in body:
        return OTHER
    if is_quota_probe(body):
        return QUOTA_PROBE
    if is_compaction(body):
        return COMPACTION
    if not body.get("tools") and not via_gateway:
        return SIDE_CALL  # titles, topic checks and other small helper calls carry no tools
    if agent_id:
        return SUBAGENT
    return MAIN
