"""Conversation tracking on real Claude Code sessions: the real CLI drives `nexus dev` against the
scripted upstream, and the resulting tree is asserted through the JSON API."""

from __future__ import annotations

import random

import psycopg
import pytest
from nexus.db.migrate import migrate
from nexus.db.records import KnownHashes, raw_records
from nexus.derive import prepare
from nexus_ingest.pipeline import ingest_batch

from tests.support.claude_cli import run_claude
from tests.support.stack import Stack, running_stack

pytestmark = pytest.mark.cli
MODEL = "claude-opus-5-5"


def _claude(stack: Stack, tmp_path, *args: str, home: str = "home", headers: str | None = None) -> dict:
    return run_claude(
        stack.proxy_url, tmp_path / home, tmp_path / "project", *args, "--model", MODEL, headers=headers
    )


def _conversation(stack: Stack, request_id: str) -> dict:
    status, req = stack.api(f"/api/requests/{request_id}")
    assert status == 200 and req["conversation_id"], req
    status, conv = stack.api(f"/api/conversations/{req['conversation_id']}")
    assert status == 200
    return conv


def _session_requests(stack: Stack, sid: str, n: int) -> list[dict]:
    return list(reversed(stack.wait_count(n, session_id=sid)))  # oldest first


def test_turns_resume_and_fork_make_one_conversation_with_a_branch(stack, upstream, tmp_path):
    first = _claude(stack, tmp_path, "-p", "please TRIGGER_BASH now", "--allowedTools", "Bash")
    sid = first["session_id"]
    _claude(stack, tmp_path, "--resume", sid, "-p", "and a second turn")
    main = _session_requests(stack, sid, 3)
    forked = _claude(stack, tmp_path, "--resume", sid, "--fork-session", "-p", "a forked turn")
    assert forked["session_id"] != sid
    (fork,) = _session_requests(stack, forked["session_id"], 1)

    conv = _conversation(stack, main[0]["id"])
    by_id = {r["id"]: r for r in conv["requests"]}
    assert set(by_id) == {r["id"] for r in main} | {fork["id"]}
    root, tool_turn, resumed = (by_id[r["id"]] for r in main)
    assert (root["link"], root["parent_request_id"], root["branch"]) == ("root", None, "main")
    assert (tool_turn["link"], tool_turn["parent_request_id"], tool_turn["branch"]) == (
        "continue",
        root["id"],
        "main",
    )
    assert (resumed["parent_request_id"], resumed["branch"]) == (tool_turn["id"], "main")
    fork = by_id[fork["id"]]
    assert (fork["parent_request_id"], fork["branch"]) == (resumed["id"], "branch_1")
    assert conv["title"] == "please TRIGGER_BASH now"
    assert conv["request_count"] == 4 and conv["branch_count"] == 1
    assert set(conv["session_ids"]) == {sid, forked["session_id"]}
    assert {b["name"] for b in conv["branches"]} == {"main", "branch_1"}
    assert next(b for b in conv["branches"] if b["name"] == "branch_1")["fork_request_id"] == resumed["id"]


def test_sub_agent_runs_on_a_subtask_branch_linked_to_its_tool_call(stack, upstream, tmp_path):
    """The sub-agent makes a tool call of its own: its follow-up request stays on its branch."""
    out = _claude(stack, tmp_path, "-p", "please TRIGGER_AGENT_TOOLS", "--allowedTools", "Agent", "Bash")
    rows = stack.wait_for(lambda rows: len(rows) >= 4, session_id=out["session_id"])
    conv = _conversation(stack, rows[-1]["id"])
    reqs = conv["requests"]
    assert len(reqs) == 4 and {r["conversation_id"] for r in reqs} == {conv["id"]}
    invoking, sub, sub_tool_turn, back = reqs
    assert invoking["branch"] == "main" and invoking["stop_reason"] == "tool_use"
    assert sub["branch"] == "subtask_1" and sub["is_subtask"] and sub["link"] == "subtask"
    assert sub["parent_task_request_id"] == invoking["id"] and sub["task_tool_use_id"].startswith("toolu_")
    assert sub["agent_id"] and sub["stop_reason"] == "tool_use"
    assert (sub_tool_turn["link"], sub_tool_turn["parent_request_id"]) == ("continue", sub["id"])
    assert sub_tool_turn["branch"] == "subtask_1" and sub_tool_turn["is_subtask"]
    assert sub_tool_turn["parent_task_request_id"] == invoking["id"]
    assert sub_tool_turn["agent_id"] == sub["agent_id"]
    assert back["branch"] == "main" and not back["is_subtask"] and back["parent_request_id"] == invoking["id"]
    assert conv["subagent_count"] == 1
    subtask = next(b for b in conv["branches"] if b["name"] == "subtask_1")
    assert subtask["request_count"] == 2


def test_compaction_continues_on_a_compact_branch(stack, upstream, tmp_path):
    first = _claude(stack, tmp_path, "-p", "please TRIGGER_BASH first", "--allowedTools", "Bash")
    sid = first["session_id"]
    _claude(stack, tmp_path, "--resume", sid, "-p", "/compact")
    _claude(stack, tmp_path, "--resume", sid, "-p", "a turn after compaction")
    _claude(stack, tmp_path, "--resume", sid, "-p", "and one more")
    reqs = _session_requests(stack, sid, 5)
    conv = _conversation(stack, reqs[0]["id"])
    by_id = {r["id"]: r for r in conv["requests"]}
    assert set(by_id) == {r["id"] for r in reqs}
    root, tool_turn, compaction, after, more = (by_id[r["id"]] for r in reqs)
    assert tool_turn["parent_request_id"] == root["id"]
    # The CLI summarises the history up to the tool result (it leaves out the last answer), so the
    # summarisation request continues from the same point as the tool turn, on the same line.
    assert (compaction["kind"], compaction["branch"], compaction["link"]) == (
        "compaction",
        "main",
        "continue",
    )
    assert compaction["parent_request_id"] == root["id"]
    assert conv["branch_count"] == 0
    assert (after["link"], after["parent_request_id"], after["branch"]) == (
        "compact",
        compaction["id"],
        "compact_1",
    )
    assert (more["parent_request_id"], more["branch"]) == (after["id"], "compact_1")
    assert conv["compaction_count"] == 1


def test_two_users_with_the_same_first_prompt_get_two_conversations(pg_server, fake_upstream, tmp_path):
    fake_upstream.reset()

    def keys(s: Stack) -> None:
        s.client_keys = {
            u: s.nexus("keys", "create", "--team", "t", "--user", u).stdout.strip() for u in ("ann", "ben")
        }

    with running_stack(pg_server, fake_upstream, tmp_path / "keyed", keys="required", before_start=keys) as s:
        outs = {
            u: run_claude(
                s.proxy_url,
                tmp_path / "same-home",
                tmp_path / "project",
                "-p",
                "hello there",
                "--model",
                MODEL,
                headers=f"X-Nexus-Key: {k}",
            )
            for u, k in s.client_keys.items()
        }
        convs = set()
        for user, out in outs.items():
            (row,) = s.wait_count(1, session_id=out["session_id"])
            conv = _conversation(s, row["id"])
            assert conv["user"] == user and conv["request_count"] == 1
            convs.add(conv["id"])
        assert len(convs) == 2
        status, listed = s.api("/api/conversations?user=ann")
        assert status == 200 and [c["user"] for c in listed["conversations"]] == ["ann"]


def _tree(url: str) -> dict[str, tuple]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT id::text, conversation_id::text, parent_request_id::text, link, branch, is_subtask,"
            " parent_task_request_id::text FROM requests WHERE conversation_id IS NOT NULL"
        ).fetchall()
        convs = conn.execute(
            "SELECT id::text, request_count, branch_count, subagent_count, compaction_count, title"
            " FROM conversations ORDER BY id"
        ).fetchall()
    return {r[0]: r[1:] for r in rows}, convs


def test_reingest_shuffled_and_twice_gives_the_same_tree(stack, upstream, tmp_path, database_url):
    """Every scenario above, re-delivered in random order, one record per batch, and then again."""
    original_tree, original_convs = _tree(stack.database_url)
    assert len(original_tree) >= 12
    with psycopg.connect(stack.database_url) as conn:
        records = raw_records(conn)
    migrate(database_url)
    random.Random(3).shuffle(records)
    with psycopg.connect(database_url, autocommit=False) as conn:
        known = KnownHashes()
        for rec in records + records:
            ingest_batch(conn, [rec], known)
            conn.commit()
    tree, convs = _tree(database_url)
    assert tree == original_tree
    assert convs == original_convs
    assert prepare  # the same code path as live ingest


def test_rebuild_recomputes_the_same_tree_idempotently(stack):
    before = _tree(stack.database_url)
    with psycopg.connect(stack.database_url) as conn:  # damage it: links and summaries gone
        conn.execute("UPDATE requests SET branch = 'wrong', parent_request_id = NULL")
        conn.execute("DELETE FROM conversations")
    for args in ([], [], ["--since", "2020-01-01"], ["--team", "nobody"]):
        out = stack.nexus("tracking", "rebuild", *args)
        assert out.returncode == 0, out.stderr
        assert "relinked" in out.stdout and "Traceback" not in out.stderr
        if args != ["--team", "nobody"]:
            assert _tree(stack.database_url) == before
    assert stack.nexus("tracking", "rebuild", "--team", "nobody").stdout.strip() == "relinked 0 requests"
    bad = stack.nexus("tracking", "rebuild", "--since", "last tuesday")
    assert bad.returncode == 2 and "not a date" in bad.stderr


def test_conversation_list_filters_and_full_text_search(stack):
    status, body = stack.api("/api/conversations?limit=500")
    assert status == 200
    convs = body["conversations"]
    assert len(convs) == 3  # the fork, sub-agent and compaction scenarios above
    assert all(c["request_count"] >= 1 and c["title"] for c in convs)
    assert [c["last_at"] for c in convs] == sorted((c["last_at"] for c in convs), reverse=True)
    fill = [c for c in convs if c["context_fill"] is not None]
    assert fill and all(c["context_window"] == 1_000_000 for c in fill)  # Opus 5.5: 1M context
    # full text over prompts and answers
    _, hits = stack.api("/api/conversations?q=forked")
    assert len(hits["conversations"]) == 1 and hits["conversations"][0]["branch_count"] == 1
    _, hits = stack.api("/api/conversations?q=%22printed%20hi%22")  # an answer's words
    assert hits["conversations"]
    _, none = stack.api("/api/conversations?q=xylophone")
    assert none["conversations"] == []
    _, by_model = stack.api("/api/conversations?model=claude-opus-5-5&limit=500")
    assert len(by_model["conversations"]) == len(convs)
    _, other = stack.api("/api/conversations?model=claude-haiku-4-5")
    assert other["conversations"] == []
    _, page = stack.api("/api/conversations?limit=2&offset=1")
    assert [c["id"] for c in page["conversations"]] == [c["id"] for c in convs[1:3]]


def test_conversation_api_bad_input(stack):
    assert stack.api("/api/conversations/00000000-0000-0000-0000-000000000000")[0] == 404
    assert stack.api("/api/conversations/nope")[0] == 404
    status, body = stack.api("/api/conversations?period=soon")
    assert status == 400 and "period" in body["error"]["message"]
    status, body = stack.api("/api/conversations?limit=100000")
    assert status == 400 and "limit" in body["error"]["message"]
    assert stack.api("/api/conversations", key="bad")[0] == 401


def test_background_sub_agent_and_its_notification(pg_server, fake_upstream, tmp_path):
    fake_upstream.reset()
    with running_stack(pg_server, fake_upstream, tmp_path / "bg") as s:
        out = _claude(s, tmp_path, "-p", "please TRIGGER_AGENT_BG", "--allowedTools", "Agent")
        rows = s.wait_for(
            lambda rows: any(r["kind"] == "subagent" for r in rows) and len(rows) >= 3,
            session_id=out["session_id"],
        )
        conv = _conversation(s, rows[0]["id"])
        reqs = conv["requests"]
        sub = [r for r in reqs if r["kind"] == "subagent"]
        main = [r for r in reqs if r["kind"] != "subagent"]
        assert sub and all(r["branch"] == "subtask_1" and r["is_subtask"] for r in sub)
        assert sub[0]["parent_task_request_id"] == main[0]["id"]
        assert all(r["branch"] == "main" for r in main) and len(main) >= 2
        assert {r["conversation_id"] for r in reqs} == {conv["id"]}
        assert conv["subagent_count"] == 1 and conv["branch_count"] == 0


def test_side_requests_join_their_sessions_conversation(stack, upstream):
    """count_tokens (and side calls, quota probes) of a session are counted in its conversation, on
    the branch of the session's latest request, without opening anything. Runs last: it adds rows."""
    from tests.integration.http import CLAUDE_HEADERS, post

    _, body = stack.api("/api/conversations?q=forked")
    conv = body["conversations"][0]
    sid = next(s for s in conv["session_ids"])
    _, before = stack.api(f"/api/conversations/{conv['id']}")
    latest = max((r for r in before["requests"] if r["session_id"] == sid), key=lambda r: r["received_at"])
    count = b'{"model":"claude-opus-5-5","messages":[{"role":"user","content":"how long is this?"}]}'
    r = post(
        stack.proxy_url,
        "/v1/messages/count_tokens?beta=true",
        count,
        {**CLAUDE_HEADERS, "x-claude-code-session-id": sid},
    )
    assert r.status == 200
    rows = stack.wait_for(
        lambda rows: any(x["kind"] == "count_tokens" and x["conversation_id"] for x in rows), session_id=sid
    )
    side = next(x for x in rows if x["kind"] == "count_tokens")
    assert (side["link"], side["parent_request_id"], side["branch"]) == (
        "side",
        latest["id"],
        latest["branch"],
    )
    _, after = stack.api(f"/api/conversations/{conv['id']}")
    assert after["request_count"] == before["request_count"] + 1
    assert after["branch_count"] == before["branch_count"]
