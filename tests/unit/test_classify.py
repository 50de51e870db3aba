"""nexus.classify: which kind of Claude Code request a record is."""

from __future__ import annotations

import pytest
from nexus.classify import (
    COMPACTION,
    COUNT_TOKENS,
    MAIN,
    OTHER,
    QUOTA_PROBE,
    SIDE_CALL,
    SUBAGENT,
    classify,
)

TOOLS = [{"name": "Bash", "input_schema": {"type": "object"}}]
SUMMARY_PROMPT = (
    "Your task is to create a detailed summary of the conversation so far, paying close attention "
    "to the user's explicit requests and your previous actions."
)
MESSAGES = "/v1/messages"


def body(messages: list[dict], tools: list | None = TOOLS, **extra) -> dict:
    out = {"model": "claude-sonnet-4-5", "max_tokens": 32000, "messages": messages, **extra}
    if tools is not None:
        out["tools"] = tools
    return out


def user(content) -> dict:
    return {"role": "user", "content": content}


def assistant(text: str) -> dict:
    return {"role": "assistant", "content": [{"type": "text", "text": text}]}


def test_count_tokens_path_wins_whatever_the_body():
    path = "/v1/messages/count_tokens"
    assert classify(path, body([user("quota")], max_tokens=1), None) == COUNT_TOKENS
    assert classify(path, body([user("hi")]), "agent-1") == COUNT_TOKENS
    assert classify(path, None, None) == COUNT_TOKENS


def test_main_agent_turn():
    assert classify(MESSAGES, body([user("Fix the bug"), assistant("ok"), user("thanks")]), None) == MAIN


def test_sub_agent_turn_has_agent_id_and_tools():
    assert classify(MESSAGES, body([user("Search the repo for TODOs")]), "agent-7f3a") == SUBAGENT


@pytest.mark.parametrize("tools", [None, []])
def test_side_call_has_no_tools(tools):
    side = body([user("Write a 5-10 word title for this conversation")], tools=tools)
    assert classify(MESSAGES, side, None) == SIDE_CALL
    assert classify(MESSAGES, side, "agent-1") == SIDE_CALL


@pytest.mark.parametrize("content", ["quota", [{"type": "text", "text": "quota"}], " quota\n"])
def test_quota_probe(content):
    probe = body([user(content)], tools=None, max_tokens=1)
    assert classify(MESSAGES, probe, None) == QUOTA_PROBE


@pytest.mark.parametrize(
    "probe",
    [
        body([user("quota")], tools=None, max_tokens=2),
        body([user("quota please")], tools=None, max_tokens=1),
        body([user("hi"), assistant("x"), user("quota")], tools=None, max_tokens=1),
    ],
    ids=["max_tokens_2", "other_text", "several_messages"],
)
def test_near_misses_are_not_quota_probes(probe):
    assert classify(MESSAGES, probe, None) == SIDE_CALL


def test_compaction_with_plain_string_content():
    history = [user("Fix the bug"), assistant("Done."), user(SUMMARY_PROMPT)]
    assert classify(MESSAGES, body(history), None) == COMPACTION
    assert classify(MESSAGES, body(history, tools=None), None) == COMPACTION
    assert classify(MESSAGES, body(history), "agent-1") == COMPACTION


def test_compaction_prompt_after_tool_result_in_same_user_message():
    last = user(
        [
            {"type": "tool_result", "tool_use_id": "toolu_1", "content": "ok"},
            {"type": "text", "text": SUMMARY_PROMPT},
        ]
    )
    messages = [
        user("Run the tests"),
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {}}],
        },
        last,
    ]
    assert classify(MESSAGES, body(messages), None) == COMPACTION


def test_summary_wording_in_earlier_message_is_not_compaction():
    messages = [user(SUMMARY_PROMPT), assistant("<summary>...</summary>"), user("Continue with the fix")]
    assert classify(MESSAGES, body(messages), None) == MAIN


def test_summary_wording_inside_tool_result_is_not_compaction():
    last = user([{"type": "tool_result", "tool_use_id": "toolu_1", "content": SUMMARY_PROMPT}])
    assert classify(MESSAGES, body([user("cat prompt.txt"), assistant("x"), last]), None) == MAIN


def test_inline_system_message_last_does_not_hide_last_user_message():
    messages = [
        user("Fix the bug"),
        assistant("Done."),
        user(SUMMARY_PROMPT),
        {"role": "system", "content": "Context reminder"},
    ]
    assert classify(MESSAGES, body(messages), None) == COMPACTION


@pytest.mark.parametrize("bad_body", [None, {}, {"model": "x"}, ["messages"], "messages"])
def test_body_without_messages_is_other(bad_body):
    assert classify(MESSAGES, bad_body, None) == OTHER


def test_non_list_messages_do_not_crash():
    assert classify(MESSAGES, {"messages": 5, "tools": TOOLS}, None) in {MAIN, OTHER}


def test_the_gateways_turns_are_main_turns_even_without_tools():
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "tools": []}
    assert classify("/v1/messages", body, None) == SIDE_CALL
    assert classify("/v1/messages", body, None, via_gateway=True) == MAIN
