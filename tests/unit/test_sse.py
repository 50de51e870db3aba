"""nexus.sse: SSE framing and rebuilding the final message from a recorded Messages stream."""

from __future__ import annotations

import json

import pytest
from nexus.sse import SSEEvent, parse_events, rebuild_message


def sse(*events: tuple[str, dict | str], crlf: bool = False) -> bytes:
    """Serialise (event name, payload) pairs the way the Messages API streams them."""
    out = []
    for name, payload in events:
        data = payload if isinstance(payload, str) else json.dumps(payload)
        out.append(f"event: {name}\ndata: {data}\n\n")
    text = "".join(out)
    if crlf:
        text = text.replace("\n", "\r\n")
    return text.encode()


def message_start(**usage: int) -> tuple[str, dict]:
    return (
        "message_start",
        {
            "type": "message_start",
            "message": {
                "id": "msg_01",
                "type": "message",
                "role": "assistant",
                "model": "claude-sonnet-4-5-20250929",
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": usage or {"input_tokens": 10, "output_tokens": 1},
            },
        },
    )


def block_start(index: int, block: dict) -> tuple[str, dict]:
    return ("content_block_start", {"type": "content_block_start", "index": index, "content_block": block})


def delta(index: int, d: dict) -> tuple[str, dict]:
    return ("content_block_delta", {"type": "content_block_delta", "index": index, "delta": d})


def text_delta(index: int, text: str) -> tuple[str, dict]:
    return delta(index, {"type": "text_delta", "text": text})


def json_delta(index: int, part: str) -> tuple[str, dict]:
    return delta(index, {"type": "input_json_delta", "partial_json": part})


def block_stop(index: int) -> tuple[str, dict]:
    return ("content_block_stop", {"type": "content_block_stop", "index": index})


def message_delta(stop_reason: str | None = "end_turn", **usage: int | None) -> tuple[str, dict]:
    return (
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": stop_reason, "stop_sequence": None},
            "usage": usage,
        },
    )


MESSAGE_STOP = ("message_stop", {"type": "message_stop"})
PING = ("ping", {"type": "ping"})


# --- parse_events -----------------------------------------------------------------------------


def test_parse_events_splits_events_and_reports_clean_end():
    events, clean = parse_events(b'event: a\ndata: {"x": 1}\n\nevent: b\ndata: 2\n\n')
    assert events == [SSEEvent("a", '{"x": 1}'), SSEEvent("b", "2")]
    assert clean is True


def test_parse_events_handles_crlf_line_endings():
    events, clean = parse_events(b"event: a\r\ndata: 1\r\n\r\nevent: b\r\ndata: 2\r\n\r\n")
    assert events == [SSEEvent("a", "1"), SSEEvent("b", "2")]
    assert clean is True


def test_parse_events_ignores_comment_lines_and_comment_only_blocks():
    raw = b": keep-alive\n\nevent: a\n: a comment inside an event\ndata: 1\n\n"
    events, clean = parse_events(raw)
    assert events == [SSEEvent("a", "1")]
    assert clean is True


def test_parse_events_joins_multi_line_data_with_newlines():
    events, _ = parse_events(b"event: a\ndata: line one\ndata: line two\ndata:\n\n")
    assert events == [SSEEvent("a", "line one\nline two\n")]


def test_parse_events_strips_exactly_one_leading_space_from_values():
    events, _ = parse_events(b"event:a\ndata:x\n\nevent: b\ndata:  two spaces\n\n")
    assert events == [SSEEvent("a", "x"), SSEEvent("b", " two spaces")]


def test_parse_events_data_without_event_name():
    events, _ = parse_events(b"data: 1\n\n")
    assert events == [SSEEvent(None, "1")]


@pytest.mark.parametrize(
    "raw",
    [
        b'event: a\ndata: 1\n\nevent: b\ndata: {"partial": ',  # cut mid-line
        b"event: a\ndata: 1\n\nevent: b\ndata: 2\n",  # last event lacks its blank line
        b"event: a\ndata: 1\n\nevent: b",  # cut right after the event name
    ],
)
def test_parse_events_cut_final_event_is_dropped_and_flagged(raw):
    events, clean = parse_events(raw)
    assert events == [SSEEvent("a", "1")]
    assert clean is False


def test_parse_events_empty_stream_is_clean():
    assert parse_events(b"") == ([], True)


# --- rebuild_message --------------------------------------------------------------------------


def test_rebuild_text_message():
    raw = sse(
        message_start(),
        block_start(0, {"type": "text", "text": ""}),
        PING,
        text_delta(0, "Hello"),
        text_delta(0, ", wor"),
        text_delta(0, "ld ✓"),
        block_stop(0),
        message_delta("end_turn", output_tokens=7),
        MESSAGE_STOP,
    )
    result = rebuild_message(raw)
    assert result.complete is True
    assert result.error is None
    msg = result.message
    assert msg["id"] == "msg_01"
    assert msg["role"] == "assistant"
    assert msg["content"] == [{"type": "text", "text": "Hello, world ✓"}]
    assert msg["stop_reason"] == "end_turn"


def test_rebuild_from_crlf_stream():
    raw = sse(
        message_start(),
        block_start(0, {"type": "text", "text": ""}),
        text_delta(0, "hi"),
        block_stop(0),
        message_delta("end_turn", output_tokens=2),
        MESSAGE_STOP,
        crlf=True,
    )
    result = rebuild_message(raw)
    assert result.message["content"] == [{"type": "text", "text": "hi"}]
    assert result.complete is True


def test_rebuild_thinking_block_with_signature():
    raw = sse(
        message_start(),
        block_start(0, {"type": "thinking", "thinking": "", "signature": ""}),
        delta(0, {"type": "thinking_delta", "thinking": "Let me "}),
        delta(0, {"type": "thinking_delta", "thinking": "think."}),
        delta(0, {"type": "signature_delta", "signature": "EqQBCkgIARAB"}),
        block_stop(0),
        block_start(1, {"type": "text", "text": ""}),
        text_delta(1, "Answer"),
        block_stop(1),
        message_delta("end_turn", output_tokens=20),
        MESSAGE_STOP,
    )
    content = rebuild_message(raw).message["content"]
    assert content == [
        {"type": "thinking", "thinking": "Let me think.", "signature": "EqQBCkgIARAB"},
        {"type": "text", "text": "Answer"},
    ]


def test_rebuild_tool_use_input_split_across_many_deltas():
    tool_input = {"command": "ls -la /tmp", "description": "List — files ✓", "timeout": 120000}
    text = json.dumps(tool_input, ensure_ascii=False)
    pieces = [text[i : i + 3] for i in range(0, len(text), 3)]  # cuts inside keys, strings, numbers
    raw = sse(
        message_start(),
        block_start(0, {"type": "tool_use", "id": "toolu_01", "name": "Bash", "input": {}}),
        json_delta(0, ""),  # the API opens with an empty partial
        *[json_delta(0, p) for p in pieces],
        block_stop(0),
        message_delta("tool_use", output_tokens=30),
        MESSAGE_STOP,
    )
    result = rebuild_message(raw)
    assert len(pieces) > 10
    assert result.message["content"] == [
        {"type": "tool_use", "id": "toolu_01", "name": "Bash", "input": tool_input}
    ]
    assert result.message["stop_reason"] == "tool_use"


def test_rebuild_tool_use_without_input_deltas_keeps_start_input():
    raw = sse(
        message_start(),
        block_start(0, {"type": "tool_use", "id": "toolu_01", "name": "Noop", "input": {}}),
        block_stop(0),
        message_delta("tool_use", output_tokens=3),
        MESSAGE_STOP,
    )
    assert rebuild_message(raw).message["content"][0]["input"] == {}


def test_rebuild_interleaved_blocks_are_assembled_by_index():
    raw = sse(
        message_start(),
        block_start(1, {"type": "tool_use", "id": "toolu_01", "name": "Read", "input": {}}),
        block_start(0, {"type": "text", "text": ""}),
        json_delta(1, '{"file_'),
        text_delta(0, "Reading "),
        json_delta(1, 'path": "/a.py"'),
        text_delta(0, "the file"),
        json_delta(1, "}"),
        block_start(2, {"type": "tool_use", "id": "toolu_02", "name": "Read", "input": {}}),
        json_delta(2, '{"file_path": "/b.py"}'),
        block_stop(1),
        block_stop(0),
        block_stop(2),
        message_delta("tool_use", output_tokens=40),
        MESSAGE_STOP,
    )
    assert rebuild_message(raw).message["content"] == [
        {"type": "text", "text": "Reading the file"},
        {"type": "tool_use", "id": "toolu_01", "name": "Read", "input": {"file_path": "/a.py"}},
        {"type": "tool_use", "id": "toolu_02", "name": "Read", "input": {"file_path": "/b.py"}},
    ]


def test_usage_merges_message_start_with_last_message_delta_without_summing():
    raw = sse(
        message_start(
            input_tokens=12,
            cache_creation_input_tokens=2000,
            cache_read_input_tokens=30000,
            output_tokens=1,
        ),
        block_start(0, {"type": "text", "text": ""}),
        text_delta(0, "a"),
        message_delta(None, output_tokens=50),  # an earlier running total
        text_delta(0, "b"),
        block_stop(0),
        message_delta("end_turn", output_tokens=321),  # the final total
        MESSAGE_STOP,
    )
    result = rebuild_message(raw)
    expected = {
        "input_tokens": 12,
        "cache_creation_input_tokens": 2000,
        "cache_read_input_tokens": 30000,
        "output_tokens": 321,
    }
    assert result.usage == expected
    assert result.message["usage"] == expected
    assert result.message["stop_reason"] == "end_turn"


def test_message_delta_usage_overrides_start_values_but_null_does_not_erase():
    raw = sse(
        message_start(input_tokens=5, cache_read_input_tokens=100, output_tokens=1),
        message_delta("end_turn", input_tokens=7, output_tokens=9, cache_read_input_tokens=None),
        MESSAGE_STOP,
    )
    assert rebuild_message(raw).usage == {
        "input_tokens": 7,
        "cache_read_input_tokens": 100,
        "output_tokens": 9,
    }


def test_error_event_mid_stream_is_reported_and_stream_is_not_complete():
    err = {"type": "overloaded_error", "message": "Overloaded"}
    raw = sse(
        message_start(),
        block_start(0, {"type": "text", "text": ""}),
        text_delta(0, "partial answer"),
        ("error", {"type": "error", "error": err}),
    )
    result = rebuild_message(raw)
    assert result.error == err
    assert result.complete is False
    assert result.message["content"] == [{"type": "text", "text": "partial answer"}]


def test_error_only_stream_has_no_message():
    err = {"type": "api_error", "message": "Internal server error"}
    result = rebuild_message(sse(("error", {"type": "error", "error": err})))
    assert result.message is None
    assert result.error == err
    assert result.complete is False


def test_stream_cut_mid_tool_input_keeps_the_received_json_text():
    raw = (
        sse(
            message_start(),
            block_start(0, {"type": "text", "text": ""}),
            text_delta(0, "Running it"),
            block_stop(0),
            block_start(1, {"type": "tool_use", "id": "toolu_01", "name": "Bash", "input": {}}),
            json_delta(1, '{"comm'),
            json_delta(1, 'and": "rm -'),
        )
        + b'event: content_block_delta\ndata: {"type": "content_bl'
    )  # cut inside the next event
    result = rebuild_message(raw)
    assert result.complete is False
    assert result.message["content"] == [
        {"type": "text", "text": "Running it"},
        {"type": "tool_use", "id": "toolu_01", "name": "Bash", "input": {"_unparsed": '{"command": "rm -'}},
    ]
    assert parse_events(raw)[1] is False


def test_complete_only_with_message_stop():
    body = [
        message_start(),
        block_start(0, {"type": "text", "text": ""}),
        text_delta(0, "done"),
        block_stop(0),
        message_delta("end_turn", output_tokens=2),
    ]
    without_stop = rebuild_message(sse(*body))
    assert without_stop.complete is False
    assert without_stop.message["content"] == [{"type": "text", "text": "done"}]
    assert rebuild_message(sse(*body, MESSAGE_STOP)).complete is True


def test_stop_sequence_is_taken_from_message_delta():
    raw = sse(
        message_start(),
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "stop_sequence", "stop_sequence": "</done>"},
                "usage": {"output_tokens": 4},
            },
        ),
        MESSAGE_STOP,
    )
    msg = rebuild_message(raw).message
    assert (msg["stop_reason"], msg["stop_sequence"]) == ("stop_sequence", "</done>")


@pytest.mark.parametrize(
    "bad_event",
    [("content_block_start", "{not json"), ("ping", "1")],
    ids=["unparseable", "non-object"],
)
def test_bad_data_lines_are_skipped_not_fatal(bad_event):
    raw = sse(
        message_start(),
        bad_event,
        block_start(0, {"type": "text", "text": ""}),
        text_delta(0, "ok"),
        block_stop(0),
        MESSAGE_STOP,
    )
    result = rebuild_message(raw)
    assert result.message["content"] == [{"type": "text", "text": "ok"}]
    assert result.complete is True
