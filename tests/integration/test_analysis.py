"""The analysis pipeline on the local stack: a conversation recorded through `nexus dev`, analysed
on request from the dashboard API (the runner in `nexus dev` runs the steps), the model called
through the proxy under the analysis identity, the result stored, idempotent, re-run after new turns;
invalid output retried once then failed with a reason; a 429 retried; `nexus analyze` from the CLI."""

from __future__ import annotations

import json
import time
from typing import Any

import anthropic
import pytest

from tests.integration.http import request
from tests.support.fake_upstream import error_reply
from tests.support.stack import Stack, running_stack

TEAM = "review"
TEAM_API_KEY = "sk-ant-api03-analysis-team"
TOOLS: list[Any] = [
    {"name": "Bash", "description": "Run a command", "input_schema": {"type": "object", "properties": {}}}
]


def _prepare(stack: Stack) -> None:
    for args, stdin in (
        (("teams", "set-mode", TEAM, "team-key"), None),
        (("teams", "set-api-key", TEAM), TEAM_API_KEY),
        (("analysis", "setup", "--team", TEAM), None),
    ):
        done = stack.nexus(*args, input=stdin)
        assert done.returncode == 0, done.stderr


@pytest.fixture(scope="module")
def analysis_stack(pg_server, fake_upstream, tmp_path_factory):
    with running_stack(
        pg_server, fake_upstream, tmp_path_factory.mktemp("analysis"), before_start=_prepare
    ) as s:
        yield s


def post(stack: Stack, path: str) -> tuple[int, Any]:
    r = request(stack.dashboard_url, "POST", path, b"", {"authorization": f"Bearer {stack.dashboard_key}"})
    return r.status, r.json()


def wait_analysis(stack: Stack, cid: str, timeout: float = 40) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, body = stack.api(f"/api/conversations/{cid}/analysis")
        assert status == 200, body
        if body["status"] in ("done", "failed"):
            return body
        time.sleep(0.2)
    raise AssertionError(f"analysis not finished in {timeout}s: {body}")


def converse(
    stack: Stack, prompts: list[str], session: str, messages: list[dict[str, Any]] | None = None
) -> str:
    """A conversation through the proxy (the SDK, as a client would), continuing ``messages`` (which
    grows); its id once tracked."""
    client = anthropic.Anthropic(base_url=stack.proxy_url, api_key="sk-ant-user", max_retries=0)
    messages = [] if messages is None else messages
    for p in prompts:
        messages.append({"role": "user", "content": p})
        with client.messages.stream(
            model="claude-sonnet-5",
            max_tokens=100,
            messages=messages,
            tools=TOOLS,  # a Claude Code turn carries tools; a call without is a side call (not tracked)
            extra_headers={"x-claude-code-session-id": session},
        ) as s:
            reply = s.get_final_message()
        messages.append({"role": "assistant", "content": reply.content[0].text})  # type: ignore[union-attr]
    rows = stack.wait_count(len(messages) // 2, session_id=session)
    conv = {r["conversation_id"] for r in rows}
    assert len(conv) == 1, [
        (r["id"][-6:], r["link"], r["conversation_id"][-6:], r["parent_request_id"], r["message_count"])
        for r in rows
    ]
    return conv.pop()


def test_a_conversation_is_analysed_on_request_and_stored(analysis_stack: Stack, upstream) -> None:
    stack = analysis_stack
    history: list[dict[str, Any]] = []
    cid = converse(
        stack, ["Add a --verbose flag to the CLI", "now make it the default please"], "s-one", history
    )
    status, body = stack.api(f"/api/conversations/{cid}/analysis")
    assert status == 200, body
    assert (body["status"], body["analysis"]) == ("none", None)

    status, body = post(stack, f"/api/conversations/{cid}/analysis")
    assert status == 202 and body["status"] in ("queued", "running", "done")
    got = wait_analysis(stack, cid)
    assert got["status"] == "done" and got["stale"] is False, got
    a = got["analysis"]
    assert a["outcome"] == "resolved" and a["scores"]["task_success"]["value"] == 4
    tip = a["tips"][0]
    assert tip["request"] == 1 and tip["quote"] == "Add a --verbose flag"
    first_request = stack.requests(session_id="s-one")[-1]
    assert tip["request_id"] == first_request["id"]  # the tip links to the prompt it quotes
    f = a["facts"]
    assert f["calls"] == 1 and f["chunks"] == 1 and f["request_count"] == 2 and f["cost_usd"] > 0
    assert f["condensed_tokens"] > 0 and len(f["input_hash"]) == 64

    # the model call went through the proxy as the analysis identity, on the team's credential
    calls = [s for s in upstream.messages_requests() if "You review Claude Code" in s.body.decode()]
    assert len(calls) == 1
    assert calls[0].header("x-api-key") == TEAM_API_KEY
    recorded = stack.wait_for(lambda rows: any(r["user"] == "analysis" for r in rows))
    mine = [r for r in recorded if r["user"] == "analysis"]
    assert mine[0]["team"] == TEAM and mine[0]["cost_usd"] > 0

    # the conversation list filters by the newest analysis: outcome, lowest score
    def listed(query: str) -> set[str]:
        status, body = stack.api(f"/api/conversations?{query}")
        assert status == 200, body
        return {c["id"] for c in body["conversations"]}

    assert cid in listed("outcome=resolved") and cid not in listed("outcome=abandoned")
    assert cid in listed("max_score=3") and cid not in listed("max_score=2")  # its lowest score is 3
    assert cid in listed("outcome=&max_score=")  # a form's "any"

    # unchanged conversation, same prompt version: no new model call
    status, body = post(stack, f"/api/conversations/{cid}/analysis")
    assert status == 202
    again = wait_analysis(stack, cid)
    assert again["analysis"]["facts"]["input_hash"] == f["input_hash"]
    time.sleep(1.5)  # the runner has had its chance
    assert upstream.analysis_calls == 1

    # a new turn: analysed again, the new analysis sees three requests
    assert converse(stack, ["and document it"], "s-one", history) == cid
    status, body = stack.api(f"/api/conversations/{cid}/analysis")
    assert body["stale"] is True
    post(stack, f"/api/conversations/{cid}/analysis")
    deadline = time.monotonic() + 30
    while upstream.analysis_calls < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    newer = wait_analysis(stack, cid)
    assert newer["analysis"]["facts"]["request_count"] == 3 and newer["stale"] is False

    # the conversation page shows the panel: scores, summary, the tip linking to its request
    r = request(
        stack.dashboard_url,
        "GET",
        f"/conversations/{cid}",
        None,
        {"authorization": f"Bearer {stack.dashboard_key}"},
    )
    page = r.body.decode()
    assert r.status == 200 and 'id="analysis"' in page and "Task success" in page
    assert f'href="/requests/{first_request["id"]}">#1</a>' in page


def test_invalid_output_is_retried_once_with_the_error(analysis_stack: Stack, upstream) -> None:
    cid = converse(analysis_stack, ["please TRIGGER nothing, just fix the typo in README"], "s-invalid-once")
    upstream.analysis_invalid = 1
    post(analysis_stack, f"/api/conversations/{cid}/analysis")
    got = wait_analysis(analysis_stack, cid)
    assert got["status"] == "done" and got["analysis"]["facts"]["calls"] == 2
    retry = [s.json() for s in upstream.messages_requests() if "You review Claude Code" in s.body.decode()][
        -1
    ]
    assert [m["role"] for m in retry["messages"]] == ["user", "assistant", "user"]
    assert "holds no JSON object" in retry["messages"][2]["content"]


def test_output_invalid_twice_fails_with_a_stored_reason(analysis_stack: Stack, upstream) -> None:
    cid = converse(analysis_stack, ["rename the module to parser_v2"], "s-invalid")
    upstream.analysis_invalid = -1
    post(analysis_stack, f"/api/conversations/{cid}/analysis")
    got = wait_analysis(analysis_stack, cid)
    assert got["status"] == "failed" and got["analysis"] is None
    assert got["reason"].startswith("InvalidAnalysis: the answer holds no JSON object")
    assert upstream.analysis_calls == 2
    # the two invalid answers were paid for: the failed run says what it cost
    assert got["run_cost_usd"] is not None and got["run_cost_usd"] > 0


def test_a_rate_limited_call_is_retried(analysis_stack: Stack, upstream) -> None:
    cid = converse(analysis_stack, ["split the config loader in two"], "s-429")
    upstream.enqueue(error_reply(429, "rate_limit_error", "slow down", {"retry-after": "1"}))
    post(analysis_stack, f"/api/conversations/{cid}/analysis")
    got = wait_analysis(analysis_stack, cid)
    assert got["status"] == "done", got
    assert upstream.analysis_calls == 1  # the 429 came from the script, then one analysis answer


def test_nexus_analyze_from_the_cli(analysis_stack: Stack, upstream) -> None:
    cid = converse(analysis_stack, ["explain the retry loop in the fetcher"], "s-cli")
    done = analysis_stack.nexus("analyze", cid, "--proxy-url", analysis_stack.proxy_url)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["tips"][0]["quote"] == "explain the retry loop"
    _, body = analysis_stack.api(f"/api/conversations/{cid}/analysis")
    assert body["status"] == "done" and body["trigger"] == "cli"
    assert analysis_stack.nexus("analyze", "00000000-0000-0000-0000-000000000000").returncode == 2


def test_nexus_analyze_on_a_stage_goes_through_its_dashboard(
    analysis_stack: Stack, upstream, monkeypatch, capsys, tmp_path
) -> None:
    """`nexus analyze ID --stage S`: the stage's dashboard URL from its stack's outputs and its key
    from its Secrets Manager (CloudFormation and Secrets Manager under moto); the run is queued
    there and followed to its end. Here the "stage's dashboard" is the local stack's."""
    import boto3
    from moto import mock_aws
    from nexus.access import DASHBOARD_KEY_SECRET
    from nexus.secrets_manager import stage_prefix
    from nexus_cli.main import main

    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(var, "testing")
    cid = converse(analysis_stack, ["make the exporter stream its rows"], "s-stage")
    template = {
        "Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
        "Outputs": {"DashboardUrl": {"Value": analysis_stack.dashboard_url + "/"}},
    }
    with mock_aws():
        boto3.client("cloudformation").create_stack(
            StackName="Nexus-staging", TemplateBody=json.dumps(template)
        )
        boto3.client("secretsmanager").create_secret(
            Name=stage_prefix("staging") + DASHBOARD_KEY_SECRET, SecretString=analysis_stack.dashboard_key
        )
        stage = ["--stage", "staging", "--data-dir", str(tmp_path)]
        assert main(["analyze", cid, *stage]) == 0
        printed = json.loads(capsys.readouterr().out)
        assert printed["tips"][0]["quote"] == "make the exporter stream"
        assert main(["analyze", "00000000-0000-0000-0000-000000000000", *stage]) == 2
        assert "no conversation 00000000-0000-0000-0000-000000000000 in stage 'staging'" in (
            capsys.readouterr().err
        )
        assert main(["analyze", cid, "--stage", "prod", "--data-dir", str(tmp_path)]) == 2
        assert "cannot read stack Nexus-prod" in capsys.readouterr().err
    _, body = analysis_stack.api(f"/api/conversations/{cid}/analysis")
    assert body["status"] == "done"


@pytest.mark.cli
def test_a_real_claude_code_session_is_analysed_end_to_end(analysis_stack: Stack, upstream, tmp_path) -> None:
    """The real CLI (sub-agent with a tool call, /compact, a turn after it, a fork) through the stack,
    then analysed: every branch is read, the tip quotes the session's first prompt."""
    from tests.support.scenario import FIRST_PROMPT, run_scenario

    scenario = run_scenario(analysis_stack, tmp_path)
    status, _ = post(analysis_stack, f"/api/conversations/{scenario.id}/analysis")
    assert status == 202
    got = wait_analysis(analysis_stack, scenario.id, timeout=60)
    assert got["status"] == "done", got
    facts = got["analysis"]["facts"]
    assert facts["request_count"] == len(scenario.conversation["requests"])
    tip = got["analysis"]["tips"][0]
    assert FIRST_PROMPT.startswith(tip["quote"]) and tip["request_id"] is not None
    sent = [s.json() for s in upstream.messages_requests() if "You review Claude Code" in s.body.decode()][-1]
    transcript = sent["messages"][0]["content"]
    for header in ("=== branch main (main) ===", "=== sub-agent subtask_1", "(compact) ===", "(branch) ==="):
        assert header in transcript, transcript[:3000]
    assert "[#" in transcript and "user asked to /compact]" in transcript
    assert "system-reminder" not in transcript
