"""What the dashboard draws from a conversation: lanes, time split, and messages made safe to read."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from nexus_dashboard import conversation_view, render

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def req(
    i: str,
    parent: str | None,
    branch: str,
    at_s: float,
    dur_ms: float = 1000,
    stop: str = "end_turn",
    task: str | None = None,
) -> dict:
    return {
        "id": i,
        "parent_request_id": parent,
        "parent_task_request_id": task,
        "branch": branch,
        "received_at": T0 + timedelta(seconds=at_s),
        "duration_ms": dur_ms,
        "stop_reason": stop,
        "link": "continue" if parent else ("subtask" if task else "root"),
    }


def test_lanes_reuse_columns_once_a_branch_is_over_and_forks_connect_to_their_parent_lane() -> None:
    rows = [
        req("a", None, "main", 0, stop="tool_use"),
        req("s1", None, "subtask_1", 2, task="a"),
        req("s2", "s1", "subtask_1", 4),
        req("b", "a", "main", 6, stop="tool_use"),
        req("t1", None, "subtask_2", 8, task="b"),  # starts after subtask_1 ended: its lane is free again
        req("f", "a", "branch_1", 9),  # a fork from the first request, while subtask_2 runs
        req("t2", "t1", "subtask_2", 10),
    ]
    conversation_view.number_and_link(rows)
    lanes = conversation_view.assign_lanes(rows)
    by = {r["id"]: r for r in rows}
    assert by["a"]["lane"] == by["b"]["lane"] == 0
    assert by["s1"]["lane"] == by["t1"]["lane"] == 1
    assert by["f"]["lane"] == 2 and lanes == 3
    assert by["s1"]["parent_lane"] == 0 and by["f"]["parent_lane"] == 0  # connectors leave from main
    assert by["s2"]["parent_lane"] is None  # a continuation on its own lane draws no connector
    assert 0 in by["f"]["lanes"], "main's line runs on to its last fork"
    svg = conversation_view.tree_svg(by["f"], lanes)
    assert svg.count("<circle") == 1 and "<path" in svg


def test_time_is_split_into_model_tool_and_user_time() -> None:
    rows = [
        req("a", None, "main", 0, dur_ms=2000, stop="tool_use"),
        req("b", "a", "main", 5, dur_ms=1000),  # 3 s of tool time after a tool_use answer
        req("c", "b", "main", 66, dur_ms=500),  # 60 s of a person reading and typing
    ]
    conversation_view.number_and_link(rows)
    total, per_branch = conversation_view.time_split(rows)
    assert total == {"model_ms": 3500, "tool_ms": 3000, "user_ms": 60000} == per_branch["main"]
    assert [r["parent_n"] for r in rows] == [None, 1, 2]


def test_markdown_is_escaped_and_code_highlighted() -> None:
    out = render.markdown("hi <script>alert(1)</script>\n\n```python\nx = 1\n```\n[x](javascript:alert(1))")
    assert "<script>" not in out and "&lt;script&gt;" in out
    assert 'href="javascript' not in out
    assert '<span class="n">x</span>' in out  # pygments ran


def test_tool_calls_pair_with_results_and_reminders_and_images_are_set_apart() -> None:
    body = {
        "system": [{"type": "text", "text": "You are Claude Code."}],
        "tools": [{"name": "Bash", "description": "Run a command", "input_schema": {}}],
        "messages": [
            {
                "role": "user",
                "content": [{"type": "text", "text": "<system-reminder>ctx</system-reminder>\nfix it"}],
            },
            {
                "role": "assistant",
                "content": [
                    {"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {"command": "ls"}}
                ],
            },
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "toolu_1",
                        "content": [
                            {"type": "text", "text": "a.py"},
                            {
                                "type": "image",
                                "source": {"type": "base64", "media_type": "image/png", "data": "iVBO"},
                            },
                            {
                                "type": "image",
                                "source": {"type": "base64", "media_type": "image/svg+xml", "data": "PHN2"},
                            },
                        ],
                    }
                ],
            },
        ],
    }
    view = render.conversation(body, {"type": "message", "content": [{"type": "text", "text": "done"}]})
    first, call, result = view["messages"]
    assert [p["kind"] for p in first["parts"]] == ["reminder", "text"]
    (tool,) = call["parts"]
    assert tool["kind"] == "tool_use" and tool["result"]["id"] == "toolu_1"
    kinds = [p["kind"] for p in tool["result"]["parts"]]
    assert kinds == ["text", "image", "image_ref"], "only raster images are inlined"
    assert tool["result"]["parts"][1]["src"] == "data:image/png;base64,iVBO"
    assert result["parts"] == [{"kind": "result_ref", "id": "toolu_1", "name": "Bash", "is_error": False}]
    assert view["answer"]["n"] == 3 and view["tools"][0]["name"] == "Bash" and view["system"]
