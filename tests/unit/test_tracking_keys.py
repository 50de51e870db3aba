"""nexus.tracking.keys: the link keys of one request, on hand-written bodies in the CLI's shapes."""

from __future__ import annotations

import pytest
from nexus.tracking import placement as place
from nexus.tracking.keys import compute

SUMMARY = "1. Primary Request and Intent: the user asked for a refactor of the parser and its tests."
COMPACTION_ANSWER = {
    "type": "message",
    "role": "assistant",
    "content": [
        {"type": "text", "text": f"<analysis>thinking it over</analysis>\n<summary>{SUMMARY}</summary>"}
    ],
}
NEW_OPENING = (
    "This session is being continued from a previous conversation that ran out of context. The summary "
    "below covers the earlier portion of the conversation.\n\nSummary:\n"
)
OLD_OPENING = (
    "This session is being continued from a previous conversation that ran out of context. "
    "The conversation is summarized below:\n"
)

REAL_TRAILER = (
    "\n\nIf you need specific details from before compaction (like exact code snippets, error messages, "
    "or content you generated), read the full transcript at: /home/u/.claude/projects/-w/s.jsonl\n"
    "Continue the conversation from where it left off without asking the user any further questions."
)


def body(*messages: dict) -> dict:
    return {"model": "m", "messages": list(messages), "metadata": {"user_id": '{"device_id":"d1"}'}}


@pytest.mark.parametrize("opening", [NEW_OPENING, OLD_OPENING], ids=["2.1 wording", "older wording"])
def test_continuation_matches_the_summary_it_carries(opening):
    compaction = compute(
        "t", "u", body({"role": "user", "content": "refactor please"}), COMPACTION_ANSWER, "compaction"
    )
    continuation = compute(
        "t",
        "u",
        body(
            {
                "role": "user",
                "content": opening + "  " + SUMMARY.replace(" ", "\n ", 3) + REAL_TRAILER,
            },
            {"role": "system", "content": []},
            {"role": "assistant", "content": [{"type": "text", "text": "last answer"}]},
            {"role": "user", "content": "go on"},
        ),
        None,
        "main",
    )
    assert compaction.summary_key is not None
    assert continuation.continuation_key == compaction.summary_key


def _compaction(summary: str):
    answer = {
        "type": "message",
        "role": "assistant",
        "content": [{"type": "text", "text": f"<analysis>x</analysis>\n<summary>{summary}</summary>"}],
    }
    return compute("t", "u", body({"role": "user", "content": "work"}), answer, "compaction")


def _continuation(summary: str, trailer: str = REAL_TRAILER):
    """The first request after /compact as CLI 2.1 sends it: an attribution reminder block, then the
    opening with a reminder, the summary and the trailer, then the /compact command's own blocks."""
    content = [
        {"type": "text", "text": "<system-reminder>\nAttribution: ...\n</system-reminder>\n"},
        {
            "type": "text",
            "text": NEW_OPENING.replace("\n\nSummary:\n", "\n\n")
            + "<system-reminder>\n<tools-used-before-summary></tools-used-before-summary>\n"
            "</system-reminder>\nSummary:\n" + summary + trailer,
        },
        {
            "type": "text",
            "text": "<command-name>/compact</command-name>\n<command-args>be brief</command-args>",
        },
        {"type": "text", "text": "a turn after compaction"},
    ]
    return compute("t", "u", body({"role": "user", "content": content}), None, "main")


@pytest.mark.parametrize(
    "trailer",
    [
        REAL_TRAILER,
        "\n\nThe messages after this summary are the most recent messages from before compaction.",
        "\nPlease continue the conversation from where we left it off without asking further questions.",
        "",
    ],
    ids=["transcript pointer", "verbatim note", "older wording", "none"],
)
def test_a_short_summary_followed_at_once_by_the_trailer_still_links(trailer):
    """`/compact be brief`: the summary is one line and the trailer follows it within 64 characters."""
    summary = "User wants tests."
    assert _continuation(summary, trailer).continuation_key == _compaction(summary).summary_key


def test_summaries_that_open_alike_do_not_collide():
    """Two compactions of one long session open with the same section headers: each continuation
    links to its own summary, never the other's."""
    head = "1. Primary Request and Intent:\n   The user asked for a refactor of the parser module. "
    first, second = head + "Work so far: tokenizer split.", head + "Work so far: tokenizer and tests split."
    assert _compaction(first).summary_key != _compaction(second).summary_key
    assert _continuation(first).continuation_key == _compaction(first).summary_key
    assert _continuation(second).continuation_key == _compaction(second).summary_key


def test_scopes_keep_identical_prompts_apart():
    a = compute("t", "ann", body({"role": "user", "content": "hi"}), None, "main")
    b = compute("t", "ben", body({"role": "user", "content": "hi"}), None, "main")
    other_device = compute(
        "t",
        "ann",
        {**body({"role": "user", "content": "hi"}), "metadata": {"user_id": '{"device_id":"d2"}'}},
        None,
        "main",
    )
    assert len({a.start_key, b.start_key, other_device.start_key}) == 3


def test_first_turn_has_no_parent_key_and_a_title():
    k = compute(
        "t",
        "u",
        body(
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "<system-reminder>x</system-reminder>"},
                    {"type": "text", "text": "fix the bug"},
                ],
            }
        ),
        None,
        "main",
    )
    assert k.prefix_key is None and k.start_key is not None and k.title == "fix the bug"


def test_placement_retry_fork_and_second_continuation():
    parent = place.Node("p", "s1", b"m0", branch="main")
    first = place.Node("a", "s1", b"m1")
    counters = place.Counters()
    assert place.continuation(first, parent, [], counters).branch == "main"
    first.branch = "main"
    retry = place.continuation(place.Node("r", "s1", b"m1"), parent, [first], counters)
    assert (retry.link, retry.branch, retry.new_branch_kind) == ("retry", "main", None)
    edit = place.continuation(place.Node("e", "s1", b"m2"), parent, [first], counters)
    assert (edit.branch, edit.new_branch_kind) == ("branch_1", "branch")
    fork = place.continuation(place.Node("f", "s2", b"m3"), parent, [], counters)
    assert fork.branch == "branch_2"
    summary = place.continuation(place.Node("c", "s1", b"m4", kind="compaction"), parent, [first], counters)
    assert (summary.branch, summary.new_branch_kind) == ("main", None)
