"""Conversations written straight into a database through ingest's own code (no stack): records as
the proxy would hand them over, for tests that need stored conversations and no running proxy."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import psycopg
from nexus.db.records import KnownHashes
from nexus.record import RawRecord
from nexus_ingest.pipeline import ingest_batch

from tests.support.fake_upstream import message_events

TOOLS = [
    {"name": "Bash", "description": "Run a command", "input_schema": {"type": "object", "properties": {}}}
]


def conversation_records(
    prompts: list[str],
    answers: list[str] | None = None,
    team: str = "web",
    user: str = "ann",
    model: str = "claude-sonnet-5",
    **fields: Any,
) -> list[RawRecord]:
    """One conversation of ``prompts``, each answered (``answers``, or "Done with step n."), as the
    proxy records it; ``fields`` are further RawRecord fields (``key_id``, ``account``)."""
    session = str(uuid.uuid4())
    messages: list[dict[str, Any]] = []
    records = []
    t0 = time.time() - 3600
    for i, p in enumerate(prompts):
        messages.append({"role": "user", "content": [{"type": "text", "text": p}]})
        answer = answers[i] if answers else f"Done with step {i + 1}."
        body = {
            "model": model,
            "max_tokens": 1000,
            "stream": True,
            "tools": TOOLS,
            "messages": list(messages),
        }
        records.append(
            RawRecord(
                id=str(uuid.uuid4()),
                received_at=t0 + 10 * i,
                method="POST",
                path="/v1/messages",
                query="beta=true",
                request_headers=[["x-claude-code-session-id", session], ["content-type", "application/json"]],
                status=200,
                response_headers=[["content-type", "text/event-stream"]],
                ttfb_ms=100.0,
                duration_ms=900.0,
                team=team,
                user=user,
                request_body=json.dumps(body).encode(),
                response_body=b"".join(message_events([{"type": "text", "text": answer}], model)),
                **fields,
            )
        )
        messages.append({"role": "assistant", "content": [{"type": "text", "text": answer}]})
    return records


def record_conversation(
    conn: psycopg.Connection, prompts: list[str], team: str = "web", model: str = "claude-sonnet-5"
) -> str:
    """One conversation of ``prompts`` (each answered), ingested; its id."""
    records = conversation_records(prompts, team=team, model=model)
    ingest_batch(conn, records, KnownHashes())
    row = conn.execute(
        "SELECT conversation_id::text FROM requests WHERE id = %s", (records[0].id,)
    ).fetchone()
    assert row is not None and row[0] is not None
    return str(row[0])
