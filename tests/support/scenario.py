"""One real Claude Code session with every shape the dashboard draws: a sub-agent that makes a tool
call of its own, a compaction, turns after it, and a forked branch. Driven by the real CLI through
`nexus dev` against the scripted upstream."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.integration.http import request
from tests.support.claude_cli import run_claude
from tests.support.stack import Stack

MODEL = "claude-opus-5-5"
FIRST_PROMPT = "please TRIGGER_AGENT_TOOLS for the scenario"


@dataclass
class Scenario:
    conversation: dict[str, Any]
    session_id: str

    @property
    def id(self) -> str:
        return self.conversation["id"]

    def branch(self, kind: str) -> dict[str, Any]:
        return next(b for b in self.conversation["branches"] if b["kind"] == kind)

    def requests_on(self, kind: str) -> list[dict[str, Any]]:
        name = self.branch(kind)["name"]
        return [r for r in self.conversation["requests"] if r["branch"] == name]


TEAM, USER = "platform", "ann"


def run_scenario(stack: Stack, tmp_path: Path) -> Scenario:
    made = request(
        stack.dashboard_url,
        "POST",
        "/api/keys",
        json.dumps({"team": TEAM, "user": USER, "name": "scenario"}).encode(),
        {"authorization": f"Bearer {stack.dashboard_key}", "content-type": "application/json"},
    )
    assert made.status == 201, made.body
    headers = f"X-Nexus-Key: {made.json()['key']}"

    def claude(*args: str) -> dict[str, Any]:
        return run_claude(
            stack.proxy_url, tmp_path / "home", tmp_path / "project", *args, "--model", MODEL, headers=headers
        )

    sid = claude("-p", FIRST_PROMPT, "--allowedTools", "Agent", "Bash")["session_id"]
    claude("--resume", sid, "-p", "/compact")
    claude("--resume", sid, "-p", "a turn after compaction")
    forked = claude("--resume", sid, "--fork-session", "-p", "a forked turn")["session_id"]
    stack.wait_for(lambda rows: len(rows) >= 1, session_id=forked)
    rows = stack.wait_for(lambda rows: len(rows) >= 6, session_id=sid)
    status, req = stack.api(f"/api/requests/{rows[0]['id']}")
    assert status == 200, req
    status, conv = stack.api(f"/api/conversations/{req['conversation_id']}?period=all")
    assert status == 200, conv
    kinds = {b["kind"] for b in conv["branches"]}
    assert {"main", "subtask", "compact", "branch"} <= kinds, conv["branches"]
    return Scenario(conv, sid)
