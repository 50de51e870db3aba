"""The real Claude Code CLI through `nexus dev`: it works as if talking to Anthropic directly, and
every request it makes is recorded with its session, agent and kind."""

from __future__ import annotations

import json
import urllib.request

import pytest

from tests.support import pg
from tests.support.claude_cli import run_claude
from tests.support.secret_scan import CLI_KEY
from tests.support.stack import Stack

pytestmark = [pytest.mark.cli, pytest.mark.shared_stack]
MODEL = "claude-opus-5-5"


@pytest.fixture
def dirs(tmp_path):
    return tmp_path / "home", tmp_path / "project"


def _raw_request(stack: Stack, request_id: str) -> bytes:
    req = urllib.request.Request(
        f"{stack.dashboard_url}/api/requests/{request_id}/raw/request",
        headers={"Authorization": f"Bearer {stack.dashboard_key}"},
    )
    with urllib.request.urlopen(req) as r:
        return r.read()


def test_multi_turn_session_with_tool_use_and_resume(stack, upstream, dirs):
    home, cwd = dirs
    first = run_claude(
        stack.proxy_url,
        home,
        cwd,
        "-p",
        "please TRIGGER_BASH now",
        "--allowedTools",
        "Bash",
        "--model",
        MODEL,
    )
    assert first["is_error"] is False and "printed hi" in first["result"]
    sid = first["session_id"]
    rows = stack.wait_count(2, session_id=sid)
    assert [r["kind"] for r in rows] == ["main", "main"]
    assert all(r["status"] == 200 and r["error"] is None and r["model"] == MODEL for r in rows)
    newest, oldest = rows
    assert oldest["stop_reason"] == "tool_use" and newest["stop_reason"] == "end_turn"
    _, detail = stack.api(f"/api/requests/{newest['id']}")
    results = [
        b
        for m in detail["request_body"]["messages"]
        if isinstance(m["content"], list)
        for b in m["content"]
        if b.get("type") == "tool_result"
    ]
    assert results and "hi" in json.dumps(results[0]["content"])

    # the bytes Anthropic would have seen are the bytes we stored, for every request
    seen = upstream.messages_requests()
    assert len(seen) == 2
    for row, s in zip(reversed(rows), seen, strict=True):
        assert _raw_request(stack, row["id"]) == s.body
        assert s.query == "beta=true"
        assert s.header("x-claude-code-session-id") == sid
        _, d = stack.api(f"/api/requests/{row['id']}")
        stored = dict(d["request_headers"])
        for name in (
            "anthropic-beta",
            "anthropic-version",
            "user-agent",
            "x-app",
            "x-claude-code-session-id",
        ):
            assert stored[name] == s.header(name), name

    second = run_claude(
        stack.proxy_url, home, cwd, "--resume", sid, "-p", "and a second turn", "--model", MODEL
    )
    assert second["session_id"] == sid
    rows = stack.wait_count(3, session_id=sid)
    assert rows[0]["message_count"] > rows[1]["message_count"]


def test_sub_agent_requests_are_recorded_as_sub_agent(stack, upstream, dirs):
    home, cwd = dirs
    out = run_claude(
        stack.proxy_url, home, cwd, "-p", "please TRIGGER_AGENT", "--allowedTools", "Agent", "--model", MODEL
    )
    assert out["is_error"] is False
    rows = stack.wait_for(
        lambda rows: any(r["kind"] == "subagent" for r in rows) and len(rows) >= 3,
        session_id=out["session_id"],
    )
    sub = [r for r in rows if r["kind"] == "subagent"]
    main = [r for r in rows if r["kind"] == "main"]
    assert sub and main
    assert all(r["agent_id"] for r in sub) and not any(r["agent_id"] for r in main)


def test_compact_is_recorded_as_compaction(stack, upstream, dirs):
    home, cwd = dirs
    first = run_claude(
        stack.proxy_url,
        home,
        cwd,
        "-p",
        "please TRIGGER_BASH first",
        "--allowedTools",
        "Bash",
        "--model",
        MODEL,
    )
    sid = first["session_id"]
    # "be brief": a one-line summary, followed at once by the CLI's trailer in the continuation
    run_claude(stack.proxy_url, home, cwd, "--resume", sid, "-p", "/compact be brief", "--model", MODEL)
    after = run_claude(
        stack.proxy_url, home, cwd, "--resume", sid, "-p", "a turn after compaction", "--model", MODEL
    )
    assert after["is_error"] is False
    rows = stack.wait_for(lambda rows: len(rows) >= 4, session_id=sid)
    kinds = [r["kind"] for r in reversed(rows)]
    assert kinds == ["main", "main", "compaction", "main"]
    _, detail = stack.api(f"/api/requests/{rows[0]['id']}")
    first_user = detail["request_body"]["messages"][0]["content"]
    assert "This session is being continued from a previous conversation" in json.dumps(first_user)
    # linked to the compaction whose summary it carries, in the same conversation
    compaction = next(r for r in rows if r["kind"] == "compaction")
    assert (detail["link"], detail["parent_request_id"]) == ("compact", compaction["id"])
    assert detail["conversation_id"] == compaction["conversation_id"]


def test_cli_with_a_nexus_key_in_custom_headers(pg_server, fake_upstream, tmp_path, dirs):
    fake_upstream.reset()
    s = Stack(tmp_path / "keyed", fake_upstream.url, pg.create_database(pg_server.get_uri()), keys="required")
    key = s.nexus("keys", "create", "--team", "platform", "--user", "grace").stdout.strip()
    s.start()
    try:
        home, cwd = dirs
        out = run_claude(
            s.proxy_url, home, cwd, "-p", "hello", "--model", MODEL, headers=f"X-Nexus-Key: {key}"
        )
        assert out["is_error"] is False
        (row,) = s.wait_count(1, session_id=out["session_id"])
        assert (row["team"], row["user"]) == ("platform", "grace")
        assert fake_upstream.messages_requests()[-1].header("x-api-key") == CLI_KEY
        assert fake_upstream.messages_requests()[-1].header("x-nexus-key") is None
        # without the key: the CLI fails at once with an authentication error (no minutes of retries)
        with pytest.raises(AssertionError, match='"api_error_type":"authentication_error"'):
            run_claude(s.proxy_url, home, cwd, "-p", "hello", "--model", MODEL, timeout=30)
    finally:
        s.stop()
