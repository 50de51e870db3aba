"""A NUL character (U+0000) anywhere in a request or an answer must not cost the record.

PostgreSQL's text and jsonb cannot hold U+0000, and tool output read from binary files carries it
often. The record is stored, the exact request bytes come back from the raw endpoint, and the
dashboard shows the character escaped (as U+2400 SYMBOL FOR NULL) instead of failing.
"""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest

from tests.integration.http import CLAUDE_HEADERS, post
from tests.support.fake_upstream import Reply, message_events

pytestmark = pytest.mark.shared_stack

NUL = "\u0000"
SHOWN = "\u2400"


def _body(**override) -> bytes:
    doc = {
        "model": "claude-sonnet-4-5-20250929",
        "max_tokens": 64,
        "stream": True,
        "system": [{"type": "text", "text": "You are helpful."}],
        "tools": [{"name": "Read", "description": "Read a file", "input_schema": {"type": "object"}}],
        "messages": [{"role": "user", "content": "hello"}],
        **override,
    }
    return json.dumps(doc).encode()


def _tool_history(output: str) -> list[dict]:
    return [
        {"role": "user", "content": "read the binary file"},
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "toolu_01", "name": "Read", "input": {"path": "a.bin"}}],
        },
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "toolu_01", "content": output}],
        },
    ]


CASES = {
    "user text": {"messages": [{"role": "user", "content": f"a {NUL} b"}]},
    "tool result": {"messages": _tool_history(f"ELF{NUL}{NUL}{NUL}binary")},
    "system": {"system": [{"type": "text", "text": f"sys{NUL}tem"}]},
    "model": {"model": f"claude{NUL}x"},
}


def _raw(stack, request_id: str, which: str) -> bytes:
    req = urllib.request.Request(f"{stack.dashboard_url}/api/requests/{request_id}/raw/{which}")
    req.add_header("Authorization", f"Bearer {stack.dashboard_key}")
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.read()


def _page(stack, path: str) -> str:
    req = urllib.request.Request(stack.dashboard_url + path)
    req.add_header("Authorization", f"Bearer {stack.dashboard_key}")
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.read().decode()


@pytest.mark.parametrize("where", list(CASES))
def test_nul_in_the_request_is_recorded_with_exact_bytes(stack, upstream, where):
    session = f"00000000-0000-4000-8000-{list(CASES).index(where):012d}"
    body = _body(**CASES[where])
    assert b"\\u0000" in body
    r = post(
        stack.proxy_url,
        "/v1/messages?beta=true",
        body,
        {**CLAUDE_HEADERS, "x-claude-code-session-id": session},
    )
    assert r.status == 200, r.body
    (row,) = stack.wait_count(1, session_id=session)
    assert row["status"] == 200 and row["error"] is None
    assert _raw(stack, row["id"], "request") == body
    page = _page(stack, f"/requests/{row['id']}")
    if where != "model":
        assert SHOWN in page
    dead = Path(stack.data_dir / "spool" / "dead")
    assert not list(dead.glob("*.reason")), [p.read_text() for p in dead.glob("*.reason")]


def test_nul_in_the_answer_is_recorded_and_raw_bytes_kept(stack, upstream):
    session = "00000000-0000-4000-8000-0000000000aa"
    events = message_events([{"type": "text", "text": f"bytes: {NUL}{NUL} end"}])
    upstream.enqueue(Reply(events=events))
    r = post(
        stack.proxy_url, "/v1/messages", _body(), {**CLAUDE_HEADERS, "x-claude-code-session-id": session}
    )
    assert r.status == 200
    (row,) = stack.wait_count(1, session_id=session)
    assert row["error"] is None and row["output_tokens"] == 12
    assert _raw(stack, row["id"], "response") == r.body  # exact bytes, not a rebuilt copy
    assert f"bytes: {SHOWN}{SHOWN} end" in _page(stack, f"/requests/{row['id']}")
    # the conversation's search finds the words around the NUL
    conv = row["conversation_id"]
    assert conv is not None
    status, found = stack.api("/api/conversations?q=bytes&period=all")
    assert status == 200 and conv in [c["id"] for c in found["conversations"]]
