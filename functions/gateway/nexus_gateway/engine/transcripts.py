"""Sessions made from a history the gateway never ran: a client that starts with earlier turns
(few-shot examples, a conversation from elsewhere) or that edited its history.

The history is written to the session store as a Claude Code transcript (user and assistant
entries chained by ``parentUuid``) under a new session id, and a worker resumes that session. The
model then sees the turns as real alternating messages, never a flattened "Human:/Assistant:" text.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from claude_agent_sdk import project_key_for_directory
from nexus_gateway.dialogue import Message


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def entries(session_id: str, cwd: Path, model: str, history: list[Message]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    parent: str | None = None
    for m in history:
        entry_id = str(uuid.uuid4())
        entry: dict[str, Any] = {
            "type": m.role,
            "uuid": entry_id,
            "parentUuid": parent,
            "isSidechain": False,
            "sessionId": session_id,
            "timestamp": _now(),
            "cwd": str(cwd),
            "userType": "external",
        }
        if m.role == "assistant":
            calls = any(b.get("type") == "tool_use" for b in m.content)
            entry["message"] = {
                "id": "msg_" + uuid.uuid4().hex[:24],
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": m.content,
                "stop_reason": "tool_use" if calls else "end_turn",
                "stop_sequence": None,
                "usage": {"input_tokens": 0, "output_tokens": 0},
            }
        else:
            entry["message"] = {"role": "user", "content": m.content}
        out.append(entry)
        parent = entry_id
    return out


async def write(store: Any, session_id: str, cwd: Path, model: str, history: list[Message]) -> None:
    key = {"project_key": project_key_for_directory(str(cwd)), "session_id": session_id}
    await store.append(key, entries(session_id, cwd, model, history))
