"""The prompt library over MCP on a running `nexus dev` (keys required, as in AWS): synced at start
from a local Git repository (NEXUS_PROMPTS_REPO), listed and rendered through the official `mcp`
client SDK with a Nexus key; a missing argument is an MCP error, a wrong key is refused with a 401;
each use is logged and shows in the dashboard's API. Then the real Claude Code CLI: it connects, and a
prompt runs as a slash command in a session (`claude -p "/mcp__nexus__explain ..."`)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import urllib.error
import urllib.request

import pytest
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.exceptions import MCPError

from tests.integration.test_prompt_sync import Repo, review
from tests.support.claude_cli import CLAUDE, run_claude
from tests.support.secret_scan import CLI_KEY
from tests.support.stack import running_stack

EXPLAIN = """---
description: Explain a topic
arguments:
  - name: topic
  - name: level
    required: false
---
Explain {{topic}} at {{level}} level.
"""


@pytest.fixture(scope="module")
def library(pg_server, fake_upstream, tmp_path_factory):
    repo = Repo(tmp_path_factory.mktemp("prompt-repo"))
    repo.write("review.md", review())
    repo.write("explain.md", EXPLAIN)
    repo.commit("library")

    def configure(s) -> None:
        s.member_key = s.nexus("keys", "create", "--team", "web", "--user", "ada").stdout.strip()
        assert s.member_key.startswith("nxk_")

    with running_stack(
        pg_server,
        fake_upstream,
        tmp_path_factory.mktemp("prompts-stack"),
        keys="required",
        env={"NEXUS_PROMPTS_REPO": str(repo.root)},
        before_start=configure,
    ) as s:
        s.repo = repo
        _wait_for_library(s)
        yield s


def _wait_for_library(s, timeout: float = 30) -> None:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, body = s.api("/api/prompts")
        if status == 200 and body["prompts"]:
            return
        time.sleep(0.2)
    raise AssertionError(f"the library was not synced at start:\n{s.log()}")


def mcp_call(url: str, key: str | None, action):
    """One MCP connection with the official client SDK: initialize, then ``action(session)``."""

    async def run():
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        client = create_mcp_http_client(headers=headers)
        async with (
            streamable_http_client(url, http_client=client) as (read, write),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            return await action(session)

    try:
        return asyncio.run(run())
    except BaseExceptionGroup as group:  # the SDK's task groups wrap what the call raised
        raise _leaf(group) from None


def _leaf(exc: BaseException) -> BaseException:
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    return exc


def test_a_member_lists_and_renders_prompts_with_their_key(library):
    url = library.dashboard_url + "/mcp"
    listed = mcp_call(url, library.member_key, lambda s: s.list_prompts())
    by_name = {p.name: p for p in listed.prompts}
    assert sorted(by_name) == ["explain", "review"]
    assert by_name["explain"].description == "Explain a topic"
    assert [(a.name, a.required) for a in by_name["explain"].arguments] == [("topic", True), ("level", False)]

    got = mcp_call(
        url, library.member_key, lambda s: s.get_prompt("explain", {"topic": "MCP", "level": "expert"})
    )
    assert got.messages[0].role == "user"
    assert got.messages[0].content.text == "Explain MCP at expert level."

    # Its use is logged against the key, and counted in the library.
    status, body = library.api("/api/prompts/explain")
    assert status == 200, body
    assert body["uses"] >= 1
    assert body["recent_uses"][0]["team"] == "web" and body["recent_uses"][0]["user"] == "ada"


def test_a_missing_argument_is_an_mcp_error_not_a_crash(library):
    url = library.dashboard_url + "/mcp"
    with pytest.raises(MCPError, match=r"missing required argument\(s\): topic") as exc:
        mcp_call(url, library.member_key, lambda s: s.get_prompt("explain", {"level": "basic"}))
    assert exc.value.code == -32602
    with pytest.raises(MCPError, match="no prompt named 'nope'"):
        mcp_call(url, library.member_key, lambda s: s.get_prompt("nope", {}))
    # The server still answers afterwards.
    assert len(mcp_call(url, library.member_key, lambda s: s.list_prompts()).prompts) == 2


@pytest.mark.parametrize("key", [None, "nxk_0000000000_wrong", "nxd_dashboard-key-is-not-a-member-key"])
def test_without_a_valid_nexus_key_the_endpoint_answers_401(library, key):
    headers = {"content-type": "application/json", "accept": "application/json, text/event-stream"}
    if key:
        headers["authorization"] = f"Bearer {key}"
    body = {"jsonrpc": "2.0", "id": 1, "method": "prompts/list", "params": {}}
    req = urllib.request.Request(library.dashboard_url + "/mcp", json.dumps(body).encode(), headers)
    with pytest.raises(urllib.error.HTTPError) as exc:
        urllib.request.urlopen(req, timeout=10)
    assert exc.value.code == 401
    assert exc.value.headers["www-authenticate"].startswith("Bearer")
    err = json.loads(exc.value.read())["error"]
    assert "Nexus key" in err["message"]
    # The SDK client is refused too, at initialize.
    with pytest.raises(Exception, match="Nexus key"):
        mcp_call(library.dashboard_url + "/mcp", key, lambda s: s.list_prompts())


def test_the_dashboard_shows_the_library_its_versions_and_use(library):
    status, body = library.api("/api/prompts?q=topic")
    assert status == 200 and [p["name"] for p in body["prompts"]] == ["explain"]
    assert body["last_sync"]["repo"] == str(library.repo.root) and body["last_sync"]["added"] == 2
    assert library.api("/api/prompts/nope")[0] == 404
    assert library.api("/api/prompts/review?version=9")[0] == 404
    req = urllib.request.Request(library.dashboard_url + "/prompts/review")
    req.add_header("Authorization", f"Bearer {library.dashboard_key}")
    with urllib.request.urlopen(req, timeout=10) as r:
        html = r.read().decode()
    assert "Review #{{pr}}." in html and "Versions" in html
    req = urllib.request.Request(library.dashboard_url + "/prompts?q=explain")
    req.add_header("Authorization", f"Bearer {library.dashboard_key}")
    with urllib.request.urlopen(req, timeout=10) as r:
        html = r.read().decode()
    assert 'href="/prompts/explain"' in html and "claude mcp add --transport http nexus" in html


def _claude(home, cwd, *args: str, timeout: float = 90) -> subprocess.CompletedProcess:
    """The real Claude Code CLI, as tests/support/claude_cli.py runs it: a temporary HOME, no
    non-essential traffic (there is no internet here)."""
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(home),
        "ANTHROPIC_API_KEY": CLI_KEY,
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    }
    return subprocess.run(
        [str(CLAUDE), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


@pytest.mark.cli
def test_claude_code_adds_the_server_and_sees_it_connected(library, tmp_path):
    home, cwd = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    cwd.mkdir()
    url = library.dashboard_url + "/mcp"
    added = _claude(
        home, cwd, "mcp", "add", "--transport", "http", "nexus", url, "--header",
        f"Authorization: Bearer {library.member_key}",
    )  # fmt: skip
    assert added.returncode == 0, added.stdout + added.stderr
    listed = _claude(home, cwd, "mcp", "list")
    assert listed.returncode == 0, listed.stdout + listed.stderr
    line = next(x for x in listed.stdout.splitlines() if x.startswith("nexus"))
    assert url in line and "Connected" in line, listed.stdout
    # (a wrong key's 401 is test_without_a_valid_nexus_key_the_endpoint_answers_401, by the SDK)


def _user_texts(body: dict) -> list[str]:
    return [
        b["text"]
        for m in body["messages"]
        if m["role"] == "user" and isinstance(m["content"], list)
        for b in m["content"]
        if b.get("type") == "text"
    ]


@pytest.mark.cli
def test_a_prompt_runs_as_a_slash_command_in_a_claude_code_session(library, upstream, tmp_path):
    """`claude -p "/mcp__nexus__explain MCP expert"`, the server given with --mcp-config and the member's
    key, the session through the proxy: Claude Code gets the prompt from /mcp with the words after the
    command as its arguments, in the order the prompt declares them, and sends the rendered text as the
    user's message. The use is logged against the key."""
    key = library.member_key
    server = {
        "type": "http",
        "url": library.dashboard_url + "/mcp",
        "headers": {"Authorization": f"Bearer {key}"},
    }
    config = json.dumps({"mcpServers": {"nexus": server}})
    uses = library.api("/api/prompts/explain")[1]["uses"]

    def slash(command: str, home: str) -> list[str]:
        upstream.reset()
        result = run_claude(
            library.proxy_url,
            tmp_path / home,
            tmp_path / "work",
            *("-p", command, "--mcp-config", config),
            headers=f"X-Nexus-Key: {key}",
        )
        assert result["is_error"] is False, result
        [sent] = [s for s in upstream.messages_requests() if "/mcp__nexus__explain" in s.body.decode()]
        return _user_texts(sent.json())

    texts = slash("/mcp__nexus__explain MCP expert", "home")
    assert "Explain MCP at expert level." in texts  # rendered by Nexus, arguments substituted
    assert any("<command-name>/mcp__nexus__explain</command-name>" in t for t in texts)
    status, body = library.api("/api/prompts/explain")
    assert status == 200 and body["uses"] == uses + 1
    assert (body["recent_uses"][0]["team"], body["recent_uses"][0]["user"]) == ("web", "ada")

    # Arguments are split on spaces, without quoting: a value cannot hold a space, extra words are dropped.
    texts = slash("/mcp__nexus__explain the MCP protocol", "home2")
    assert "Explain the at MCP level." in texts
