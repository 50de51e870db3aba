"""What an operator turns on for the engine: an allowlist of Claude Code's own tools, extra
directories, MCP servers from a config file; and a team's cap on what one request may spend."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.gateway.conftest import Gateway, _make_key
from tests.support.fake_upstream import Reply, Usage, message_events, text_reply, tool_use_block
from tests.support.stack import running_stack

MCP_SERVER = '''
from mcp.server.mcpserver import MCPServer

server = MCPServer("lookup")


@server.tool()
def capital(country: str) -> str:
    """The capital of a country."""
    return {"france": "Paris", "japan": "Tokyo"}.get(country.lower(), "unknown")


server.run("stdio")
'''


@pytest.fixture(scope="module")
def operator(pg_server, fake_upstream, tmp_path_factory) -> Iterator[tuple[Gateway, Path, str]]:
    root = tmp_path_factory.mktemp("gwops")
    shared = root / "shared"
    shared.mkdir()
    (shared / "notes.txt").write_text("The launch code is 4711.\n")
    server = root / "lookup_server.py"
    server.write_text(MCP_SERVER)
    config = root / "mcp.json"
    config.write_text(
        json.dumps({"mcpServers": {"lookup": {"command": sys.executable, "args": [str(server)]}}})
    )
    keys: list[str] = []

    def before(s) -> None:
        keys.append(_make_key(s))
        out = s.nexus("keys", "create", "--team", "thrifty", "--user", "bo")
        keys.append(re.search(r"nxk_\S+", out.stdout).group(0))
        assert s.nexus("teams", "set-mode", "thrifty", "team-key").returncode == 0
        assert s.nexus("teams", "set-api-key", "thrifty", input="sk-ant-thrifty").returncode == 0
        assert s.nexus("teams", "set-request-cap", "thrifty", "0.0001").returncode == 0

    env = {
        "NEXUS_GATEWAY_BUILTIN_TOOLS": '["Read"]',
        "NEXUS_GATEWAY_EXTRA_DIRS": json.dumps([str(shared)]),
        "NEXUS_GATEWAY_MCP_CONFIG": str(config),
        "NEXUS_GATEWAY_WARM_SPARES": "0",
    }
    with running_stack(
        pg_server, fake_upstream, root / "nexus", env=env, gateway=True, before_start=before
    ) as s:
        yield Gateway(s, keys[0]), shared, keys[1]


def _tool_results(upstream, n: int) -> list[dict]:
    user = [m for m in upstream.messages_requests()[n].json()["messages"] if m["role"] == "user"][-1]
    return [b for b in user["content"] if b.get("type") == "tool_result"]


def test_an_allowed_builtin_tool_runs_inside_the_turn(operator, upstream):
    gateway, shared, _ = operator
    read = tool_use_block("Read", {"file_path": str(shared / "notes.txt")})
    upstream.enqueue(
        Reply(events=message_events([read], stop_reason="tool_use")), text_reply("The code is 4711.")
    )
    r = gateway.client().chat.completions.create(
        model="sonnet", messages=[{"role": "user", "content": "Code?"}]
    )
    assert r.choices[0].message.content == "The code is 4711." and r.choices[0].message.tool_calls is None
    assert "Read" in {t["name"] for t in upstream.messages_requests()[0].json()["tools"]}
    (result,) = _tool_results(upstream, 1)
    assert result["tool_use_id"] == read["id"] and "4711" in json.dumps(result["content"])


def test_an_mcp_server_from_the_config_file_answers_the_model(operator, upstream):
    gateway, _, _ = operator
    call = tool_use_block("mcp__lookup__capital", {"country": "Japan"})
    upstream.enqueue(Reply(events=message_events([call], stop_reason="tool_use")), text_reply("Tokyo."))
    r = gateway.client().chat.completions.create(
        model="sonnet", messages=[{"role": "user", "content": "Capital?"}]
    )
    assert r.choices[0].message.content == "Tokyo."
    (result,) = _tool_results(upstream, 1)
    assert "Tokyo" in json.dumps(result["content"])


def test_a_team_cap_ends_a_request_before_it_spends_more(operator, upstream):
    gateway, shared, thrifty_key = operator
    read = tool_use_block("Read", {"file_path": str(shared / "notes.txt")})
    pricey = Usage(input_tokens=20_000, output_tokens=500)  # $0.0675 at Sonnet prices: over the cap
    upstream.enqueue(
        Reply(
            events=message_events(
                [{"type": "text", "text": "Let me read."}, read], stop_reason="tool_use", usage=pricey
            )
        ),
        text_reply("should never be asked"),
    )
    client = gateway.client(api_key=thrifty_key)
    r = client.chat.completions.create(model="sonnet", messages=[{"role": "user", "content": "Read it"}])
    assert r.choices[0].finish_reason == "length" and r.choices[0].message.content == "Let me read."
    gateway.wait_idle()
    assert len(upstream.messages_requests()) == 1  # the tool loop did not go on
