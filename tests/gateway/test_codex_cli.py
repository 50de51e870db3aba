"""Codex CLI, an agent CLI that speaks OpenAI's Responses API, working through the gateway: its
system prompt, tools and a real tool round trip (Codex runs the command the model asked for)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import strict_skips
from tests.gateway.conftest import Gateway
from tests.support.fake_upstream import Reply, message_events, text_reply, tool_use_block

CODEX = Path(__file__).resolve().parents[2] / "node_modules" / ".bin" / "codex"


def _codex(gateway: Gateway, tmp_path: Path, prompt: str) -> subprocess.CompletedProcess:
    if not CODEX.exists():
        reason = f"Codex CLI not installed at {CODEX} (make setup installs it from package.json)"
        if strict_skips():
            pytest.fail(reason)
        pytest.skip(reason)
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    provider = f'{{name="Nexus",base_url="{gateway.url}",env_key="NEXUS_KEY",wire_api="responses"}}'
    cmd = [str(CODEX), "exec", "--skip-git-repo-check", "-c", "model_provider=nexus"]
    cmd += ["-c", f"model_providers.nexus={provider}", "-m", "sonnet", prompt]
    env = {**os.environ, "HOME": str(home), "NEXUS_KEY": gateway.key}
    return subprocess.run(
        cmd, env=env, cwd=work, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL
    )


def test_codex_answers_through_the_gateway(gateway: Gateway, upstream, tmp_path):
    upstream.enqueue(text_reply("Codex, meet Claude."))
    done = _codex(gateway, tmp_path, "Introduce yourselves")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Codex, meet Claude." in done.stdout
    (request,) = upstream.messages_requests()
    body = request.json()
    assert "Codex CLI" in body["system"][-1]["text"]  # Codex's instructions are the system prompt
    assert "exec_command" in {t["name"] for t in body["tools"]}  # its function tools, shown as tools


def test_codex_runs_the_command_the_model_asked_for_and_the_turn_goes_on(
    gateway: Gateway, upstream, tmp_path
):
    call = tool_use_block("exec_command", {"cmd": "echo nexus-was-here"})
    upstream.enqueue(
        Reply(events=message_events([call], stop_reason="tool_use")), text_reply("The command printed it.")
    )
    done = _codex(gateway, tmp_path, "Run echo and tell me")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "The command printed it." in done.stdout
    first, second = upstream.messages_requests()
    assert first.header("x-claude-code-session-id") == second.header("x-claude-code-session-id")
    results = second.json()["messages"][-1]["content"]
    assert results[0]["tool_use_id"] == call["id"]
    assert "nexus-was-here" in json.dumps(results[0]["content"])  # what Codex's shell really printed
