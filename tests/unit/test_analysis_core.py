"""The analysis core on fixed conversations: what condensation keeps and cuts, chunking at prompt
boundaries, the input hash, and validation of the model's answer (schema, quotes)."""

from __future__ import annotations

import json

import pytest
from nexus.analysis import condense as c
from nexus.analysis import prompt, validate
from nexus.analysis.condense import Segment


def user(text: str) -> dict:
    return {"role": "user", "content": [{"type": "text", "text": text}]}


def assistant(*blocks: dict) -> dict:
    return {"role": "assistant", "content": list(blocks)}


def text(t: str) -> dict:
    return {"type": "text", "text": t}


def tool_use(name: str, **inp: object) -> dict:
    return {"type": "tool_use", "id": f"toolu_{name}", "name": name, "input": inp}


def result(content: str, error: bool = False) -> dict:
    return {
        "role": "user",
        "content": [{"type": "tool_result", "tool_use_id": "x", "content": content, "is_error": error}],
    }


def turn_pairs(n_turns: int, output_chars: int = 5000) -> Segment:
    """``n_turns`` prompts, each answered after one tool call with long output."""
    messages, owners = [], []
    n = 0
    for i in range(n_turns):
        n += 1
        messages += [user(f"please fix bug number {i} in the parser")]
        owners += [n]
        messages += [assistant(text(f"Looking at bug {i}."), tool_use("Bash", command=f"pytest -k bug{i}"))]
        owners += [n]
        n += 1
        messages += [result("x" * output_chars)]
        owners += [n]
        if i < n_turns - 1:
            messages += [assistant(text(f"Fixed bug {i}: the tokenizer skipped a quote."))]
            owners += [n]
    return Segment("main", "main", messages, owners, {"content": [text(f"Fixed bug {n_turns - 1}.")]}, n)


CONVERSATION = Segment(
    branch="main",
    kind="main",
    messages=[
        {"role": "system", "content": "Environment: cwd=/home/ann/project"},
        user("<system-reminder>skills list</system-reminder>Add a --verbose flag to the CLI and test it"),
        assistant(
            {"type": "thinking", "thinking": "secret reasoning"},
            text("I'll look."),
            tool_use("Read", file_path="cli.py"),
        ),
        result("def main():\n" + "    pass\n" * 400),
        assistant(text("Running the tests."), tool_use("Bash", command="pytest")),
        result("E   ModuleNotFoundError: No module named 'clik'", error=True),
        assistant(text("Done: --verbose is added and tested.")),
        user("thanks, now make it the default"),
    ],
    owners=[1, 1, 1, 2, 2, 3, 3, 4],
    response={"content": [text("Verbose is now the default.")]},
    response_n=4,
)


def test_condensation_keeps_prompts_answers_errors_and_cuts_tool_output() -> None:
    got = c.condense([CONVERSATION], requests=4)
    assert len(got.chunks) == 1
    t = got.chunks[0]
    assert "=== branch main (main) ===" in t
    assert "[#1 user] Add a --verbose flag to the CLI and test it" in t
    assert "system-reminder" not in t and "skills list" not in t  # reminders dropped
    assert "secret reasoning" not in t and "Environment" not in t  # thinking, inline system dropped
    assert "[#3 tool error] E   ModuleNotFoundError: No module named 'clik'" in t  # errors whole
    assert "[#2 tool result] def main(): pass pass" in t and "chars cut]" in t  # long output cut
    assert "[#3 assistant] Done: --verbose is added and tested." in t  # a final answer
    assert "[#1 assistant step] I'll look." in t  # an intermediate step
    assert "[#4 user] thanks, now make it the default" in t
    assert t.rstrip().endswith("[#4 assistant] Verbose is now the default.")
    assert got.stats.tool_calls == 2 and got.stats.failed_tool_calls == 1
    assert got.condensed_tokens < got.source_tokens


def test_condensation_is_deterministic() -> None:
    assert c.condense([CONVERSATION]) == c.condense([CONVERSATION])


def test_compaction_summary_kept_and_compact_request_marked() -> None:
    seg = Segment(
        "compact_1",
        "compact",
        [
            user(
                "This session is being continued from a previous conversation that ran out of context. "
                "Summary:\n1. Primary Request: add a flag"
            ),
            user("go on"),
        ],
        [5, 6],
        {"content": [text("Continuing.")]},
        6,
    )
    before = Segment(
        "main",
        "main",
        [
            user("start"),
            assistant(text("ok")),
            user("Your task is to create a detailed summary of the conversation so far"),
        ],
        [1, 1, 2],
        {"content": [text("<summary>x</summary>")]},
        2,
    )
    t = c.condense([before, seg]).chunks[0]
    assert "[#2 user asked to /compact]" in t
    assert (
        "[#5 compaction summary] This session is being continued" in t and "Primary Request: add a flag" in t
    )
    assert c.condense([before, seg]).stats.compactions == 1


def test_subagents_show_task_and_result_only() -> None:
    sub = Segment(
        "subtask_1",
        "subtask",
        [
            user("SUBAGENT: find the config loader"),
            assistant(text("searching"), tool_use("Grep", pattern="load")),
            result("a.py"),
        ],
        [3, 3, 4],
        {"content": [text("It is in a.py")]},
        4,
        spawned_at=2,
    )
    t = c.condense([sub]).chunks[0]
    assert "=== sub-agent subtask_1 (spawned at #2) ===" in t
    assert "[#3 sub-agent] task: SUBAGENT: find the config loader" in t
    assert "[#4 sub-agent] result: It is in a.py" in t
    assert "Grep" not in t and "searching" not in t


def test_over_budget_tightens_then_chunks_at_prompt_boundaries() -> None:
    seg = turn_pairs(60)
    loose = c.condense([seg], budget=150_000)
    tight = c.condense([seg], budget=2_000)
    assert len(loose.chunks) == 1
    assert "(5000 chars)" in tight.chunks[0]  # tool output dropped to its size once over budget
    assert len(tight.chunks) > 1
    for chunk in tight.chunks:
        assert c.tokens(chunk) <= 2_000
    for chunk in tight.chunks[1:]:
        assert chunk.startswith("[#") and " user] please fix bug number" in chunk.splitlines()[0]
    # every prompt is in exactly one chunk
    joined = "\n".join(tight.chunks)
    assert sum(joined.count(f"please fix bug number {i} in") for i in range(60)) == 60
    assert tight.condensed_tokens < loose.condensed_tokens < loose.source_tokens


def test_prompts_in_a_chunk_by_request_number() -> None:
    chunk = (
        "=== branch main (main) ===\n[#1 user] first line\nsecond line\n[#1 assistant] ok\n[#3 user] other"
    )
    assert c.prompts_in(chunk) == {1: "first line\nsecond line", 3: "other"}


def test_input_hash_changes_with_transcript_model_and_version(monkeypatch: pytest.MonkeyPatch) -> None:
    chunks = c.condense([CONVERSATION]).chunks
    h = prompt.input_hash("m", chunks, "facts")
    assert h == prompt.input_hash("m", list(chunks), "facts")
    assert h != prompt.input_hash("m2", chunks, "facts")
    assert h != prompt.input_hash("m", [*chunks, "[#5 user] more"], "facts")
    monkeypatch.setattr(prompt, "PROMPT_VERSION", "next")
    assert h != prompt.input_hash("m", chunks, "facts")


def answer(**changes: object) -> str:
    doc: dict = {
        "summary": "Ann added a verbose flag.",
        "outcome": "resolved",
        "scores": {
            "task_success": {"value": 5, "reason": "the flag works"},
            "prompt_clarity": {"value": 4, "reason": "clear ask"},
            "efficiency": {"value": 3, "reason": "one failed tool call"},
        },
        "tips": [{"advice": "Name the test command.", "request": 1, "quote": "add a --verbose flag"}],
        "went_well": ["tests were run"],
        "sentiment": "positive",
    }
    doc.update(changes)
    return json.dumps(doc)


QUOTABLE = {1: "Add a --verbose flag to the CLI and test it", 4: "thanks, now make it the default"}


def test_a_valid_answer_passes_with_or_without_a_code_fence() -> None:
    a = validate.check(answer(), QUOTABLE)
    assert a.outcome == "resolved" and a.tips[0].request == 1
    assert validate.check("```json\n" + answer() + "\n```", QUOTABLE) == a


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("I think it went well.", "holds no JSON object"),
        ('{"summary": "x",', "not valid JSON"),
        (answer(outcome="great"), "outcome"),
        (answer(scores={"task_success": {"value": 9, "reason": "x"}}), "scores"),
        (answer(tips=[{"advice": "a", "request": 2, "quote": "add a --verbose"}]), "#2 is not a request"),
        (answer(tips=[{"advice": "a", "request": 4, "quote": "add a --verbose"}]), "not copied exactly"),
        (answer(extra=1), "extra"),
    ],
)
def test_invalid_answers_say_why(text: str, why: str) -> None:
    with pytest.raises(validate.InvalidAnalysis, match=why):
        validate.check(text, QUOTABLE)
