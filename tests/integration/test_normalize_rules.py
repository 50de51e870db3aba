"""Each normalisation rule, checked on request bodies the real CLI sends (captured here by running
it against the scripted upstream, not copied from elsewhere)."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass

import pytest
from nexus.sse import rebuild_message
from nexus.tracking import keys as tracking_keys
from nexus.tracking.normalize import canonical, normalise, prefix_keys, scope_key

from tests.support.claude_cli import run_claude
from tests.support.fake_upstream import FakeAnthropic

pytestmark = pytest.mark.cli


@dataclass
class Captured:
    first: dict  # turn 1: prompt that triggers a Bash call
    tool_turn: dict  # turn 1, after the tool ran
    resumed: dict  # turn 2 (--resume)
    sub_agent: dict  # a sub-agent's first request
    responses: dict  # request index -> rebuilt response message


@pytest.fixture(scope="module")
def captured(tmp_path_factory) -> Captured:
    fake = FakeAnthropic().start()
    tmp = tmp_path_factory.mktemp("cli")
    try:
        args = ("--model", "claude-opus-5-5")
        out = run_claude(
            fake.url, tmp / "h", tmp / "p", "-p", "please TRIGGER_BASH now", "--allowedTools", "Bash", *args
        )
        run_claude(fake.url, tmp / "h", tmp / "p", "--resume", out["session_id"], "-p", "second turn", *args)
        run_claude(
            fake.url, tmp / "h", tmp / "p", "-p", "please TRIGGER_AGENT", "--allowedTools", "Agent", *args
        )
        seen = fake.messages_requests()
        bodies = [s.json() for s in seen]
        sub = next(b for s, b in zip(seen, bodies, strict=True) if s.header("x-claude-code-agent-id"))
        return Captured(bodies[0], bodies[1], bodies[2], sub, {})
    finally:
        fake.stop()


def _roles(messages: list) -> list[str]:
    return [m["role"] for m in messages]


def test_inline_system_messages_are_ignored(captured):
    raw = captured.tool_turn["messages"]
    assert "system" in _roles(raw), "the CLI sends an inline system message (environment)"
    assert [n.role for n in normalise(raw)] == [r for r in _roles(raw) if r != "system"]


def test_system_reminders_are_stripped_in_block_and_string_form(captured):
    first_user = captured.first["messages"][0]
    blocks = first_user["content"]
    assert any("<system-reminder>" in b.get("text", "") for b in blocks), "the CLI adds a reminder block"
    prompt = canonical(first_user)
    assert prompt == ("user", (("text", "please TRIGGER_BASH now"),))
    reminder = next(b["text"] for b in blocks if "<system-reminder>" in b.get("text", ""))
    as_string = {"role": "user", "content": reminder + "\nplease TRIGGER_BASH now"}
    assert canonical(as_string) == prompt
    assert canonical({"role": "user", "content": [{"type": "text", "text": reminder}]}) is None


def test_string_and_single_text_block_forms_are_equal(captured):
    sent = captured.resumed["messages"][-1]  # the CLI sends the new prompt in one of the two forms
    assert sent["role"] == "user"
    string_form = {"role": "user", "content": "second turn"}
    block_form = {"role": "user", "content": [{"type": "text", "text": "second turn"}]}
    assert canonical(string_form) == canonical(block_form) == canonical(sent)


def test_moving_cache_control_markers_do_not_change_the_history(captured):
    tool_result_then = captured.tool_turn["messages"][-1]
    tool_result_now = next(
        m
        for m in captured.resumed["messages"]
        if m["role"] == "user"
        and isinstance(m["content"], list)
        and m["content"][0].get("type") == "tool_result"
    )
    assert json.dumps(tool_result_then) != json.dumps(tool_result_now), "the marker moved between turns"
    assert "cache_control" in json.dumps(tool_result_then)
    assert canonical(tool_result_then) == canonical(tool_result_now)


def test_billing_header_and_system_prompt_do_not_affect_keys(captured):
    body = captured.tool_turn
    changed = copy.deepcopy(body)
    changed["system"][0]["text"] = "x-anthropic-billing-header: cc_version=9.9.999.fff; cc_entrypoint=cli;"
    a = tracking_keys.compute(None, None, body, None, "main")
    b = tracking_keys.compute(None, None, changed, None, "main")
    assert (a.prefix_key, a.messages_key) == (b.prefix_key, b.messages_key)


def test_replayed_answer_equals_the_response_that_produced_it(captured):
    """The tool turn's history ends with the first response as the CLI replays it (thinking and all):
    normalised, it is the same message, so the turn's prefix key is the first request's tail key."""
    fake = FakeAnthropic()
    reply = fake.rules(captured.first, fake.usage)
    response = rebuild_message(b"".join(reply.events or [])).message
    replayed = next(m for m in captured.tool_turn["messages"] if m["role"] == "assistant")
    response["content"][2]["id"] = replayed["content"][-1]["id"]  # tool ids are random per reply
    assert canonical({"role": "assistant", "content": response["content"]}) == canonical(replayed)
    first = tracking_keys.compute("t", "u", captured.first, response, "main")
    turn = tracking_keys.compute("t", "u", captured.tool_turn, None, "main")
    assert first.tail_key == turn.prefix_key


def test_duplicate_tool_messages_are_dropped(captured):
    messages = captured.tool_turn["messages"]
    duplicated = [*messages, copy.deepcopy(messages[-1])]  # the tool result sent twice
    assert len(normalise(duplicated)) == len(normalise(messages))


def test_identical_history_in_two_scopes_never_shares_keys(captured):
    history = normalise(captured.tool_turn["messages"])
    assert prefix_keys(scope_key("t", "ann", "dev"), history) != prefix_keys(
        scope_key("t", "ben", "dev"), history
    )


def test_sub_agent_prompt_matches_its_invocation(captured):
    sub = tracking_keys.compute(None, None, captured.sub_agent, None, "subagent")
    assert sub.prefix_key is None and sub.start_key is not None
    fake = FakeAnthropic()
    invoking_body = next(b for b in [captured.first] if b)  # any main-agent body gives the scope
    reply = fake.rules(
        {**invoking_body, "messages": [{"role": "user", "content": "please TRIGGER_AGENT"}]}, fake.usage
    )
    response = rebuild_message(b"".join(reply.events or [])).message
    parent = tracking_keys.compute(None, None, captured.sub_agent, response, "main")
    assert [k for _, _, k in parent.invocations] == [sub.start_key]
