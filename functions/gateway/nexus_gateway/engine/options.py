"""How a Claude Code process is started for the gateway: isolated, quiet, and pointed at the relay.

- No filesystem settings (``setting_sources=[]``), no built-in tools unless the operator allows
  some, only the MCP servers given here (``strict_mcp_config``), its own HOME and working directory.
- The client's system prompt is the system prompt (Claude Code's own agent prompt only if the
  operator opts in).
- Side traffic is off (``CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC``: no title generation), and the
  per-version billing block is not added to the system prompt (``CLAUDE_CODE_ATTRIBUTION_HEADER=0``),
  so a turn costs one upstream call and its prompt caches across versions. Claude Code still puts
  one line of its own before the client's system prompt ("You are a Claude agent, built on
  Anthropic's Claude Agent SDK."); no setting removes it.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from claude_agent_sdk import ClaudeAgentOptions
from claude_agent_sdk.types import McpSdkServerConfig
from nexus_gateway.dialogue import ToolSpec
from nexus_gateway.engine import client_tools

PLACEHOLDER_KEY = "sk-ant-nexus-gateway-relay"  # replaced by the relay with the caller's credentials


@dataclass(frozen=True)
class EngineConfig:
    """What a Claude Code process fixes when it starts (see ``Dialogue.config_key``)."""

    key: str
    system: str | None
    tools: tuple[ToolSpec, ...]
    json_schema: dict[str, Any] | None
    max_tokens: int | None
    model: str
    effort: str | None = None


@dataclass(frozen=True)
class SessionStart:
    """How a process begins its session: new, resumed, or forked from an earlier point."""

    session_id: str  # the session this process will write
    project: str  # the working directory's name under conversations/ (fixes the transcript's key)
    resume: str | None = None  # the session whose transcript it loads
    fork_at: str | None = None  # with resume: keep the transcript up to this entry, under session_id

    @classmethod
    def new(cls) -> SessionStart:
        sid = str(uuid.uuid4())
        return cls(sid, sid)

    @classmethod
    def resumed(cls, session_id: str, project: str) -> SessionStart:
        return cls(session_id, project, resume=session_id)

    @classmethod
    def forked(cls, session_id: str, project: str, at: str) -> SessionStart:
        return cls(str(uuid.uuid4()), project, resume=session_id, fork_at=at)


@dataclass(frozen=True)
class Isolation:
    """Operator settings that apply to every process."""

    builtin_tools: tuple[str, ...] = ()
    extra_dirs: tuple[Path, ...] = ()
    mcp_servers: dict[str, Any] = field(default_factory=dict)
    claude_code_prompt: bool = False


def load_mcp_config(path: Path | None) -> dict[str, Any]:
    """Operator MCP servers from a file in the ``{"mcpServers": {...}}`` shape."""
    if path is None:
        return {}
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"MCP config {path}: {exc}") from None
    servers = doc.get("mcpServers") if isinstance(doc, dict) else None
    if not isinstance(servers, dict):
        raise ValueError(f'MCP config {path}: expected {{"mcpServers": {{...}}}}')
    if client_tools.SERVER_NAME in servers:
        raise ValueError(f"MCP config {path}: the server name {client_tools.SERVER_NAME!r} is reserved")
    return servers


def build(
    config: EngineConfig,
    isolation: Isolation,
    *,
    home: Path,
    cwd: Path,
    base_url: str,
    pending: client_tools.PendingCalls,
    start: SessionStart,
    session_store: Any = None,
    stderr: Any = None,
) -> ClaudeAgentOptions:
    servers: dict[str, Any] = dict(isolation.mcp_servers)
    if config.tools:
        servers[client_tools.SERVER_NAME] = McpSdkServerConfig(
            type="sdk",
            name=client_tools.SERVER_NAME,
            instance=client_tools.server(list(config.tools), pending),
        )
    system: Any = config.system or ""
    if isolation.claude_code_prompt:
        system = {
            "type": "preset",
            "preset": "claude_code",
            **({"append": config.system} if config.system else {}),
        }
    env = {
        "HOME": str(home),
        # Named explicitly so the SDK mirrors this process's transcripts to the session store (it
        # looks for them under the CLAUDE_CONFIG_DIR it is told about, not under HOME).
        "CLAUDE_CONFIG_DIR": str(home / ".claude"),
        # Images it is given are written under the temporary directory: keep them with the worker.
        "TMPDIR": str(home / "tmp"),
        "ANTHROPIC_BASE_URL": base_url,
        "ANTHROPIC_API_KEY": PLACEHOLDER_KEY,
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "CLAUDE_CODE_ATTRIBUTION_HEADER": "0",
        # Minimal mode: no environment block (this machine's paths) in the first message, no hooks,
        # plugins, memory files or background prefetches.
        "CLAUDE_CODE_SIMPLE": "1",
        "CLAUDE_AGENT_SDK_MCP_NO_PREFIX": "1",
        "DISABLE_AUTOUPDATER": "1",
        # The model the client named is the model used (Claude Code maps older ids to newer ones).
        "CLAUDE_CODE_DISABLE_LEGACY_MODEL_REMAP": "1",
    }
    if config.max_tokens:
        env["CLAUDE_CODE_MAX_OUTPUT_TOKENS"] = str(config.max_tokens)
    return ClaudeAgentOptions(
        system_prompt=system,
        tools=list(isolation.builtin_tools),
        # Every tool of the client's server and of the operator's servers is allowed (by server).
        allowed_tools=[
            *isolation.builtin_tools,
            *(f"mcp__{name}" for name in (*isolation.mcp_servers, client_tools.SERVER_NAME)),
        ],
        mcp_servers=servers,
        strict_mcp_config=True,
        setting_sources=[],
        permission_mode="dontAsk",
        cwd=str(cwd),
        add_dirs=[str(d) for d in isolation.extra_dirs],
        model=config.model,
        include_partial_messages=True,
        # Client text is delivered as written: no @path file expansion, no slash commands, and no
        # environment block (paths of this machine) attached to the turn.
        verbatim_prompts=True,
        output_format={"type": "json_schema", "schema": config.json_schema} if config.json_schema else None,
        # Thinking only when the client asks for reasoning effort: then Claude decides how much.
        thinking={"type": "adaptive"} if config.effort else {"type": "disabled"},
        effort=config.effort,  # type: ignore[arg-type]
        env=env,
        # A new session gets the id chosen for it; a resumed one continues under its own; a fork
        # takes the transcript up to an earlier point under a new id.
        resume=start.resume,
        session_id=start.session_id if start.resume is None or start.fork_at else None,
        fork_session=start.fork_at is not None,
        resume_session_at=start.fork_at,
        session_store=session_store,
        stderr=stderr,
    )
