"""``nexus claude``: the bundled Claude Code CLI, wired to a Nexus proxy with your key.

Locally the proxy of `nexus dev`; with ``--stage`` the deployed stage's proxy (its URL from the
stack's outputs). The key's team decides how it is sent: a team-key team's key goes as the API key
(the proxy sends the team's credential upstream); a pass-through team's key goes in ``X-Nexus-Key``
and your own Anthropic login or key is used upstream.
"""

from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from nexus.access import AccessStore, parse_key_id

from nexus_cli.common import CLIError, add_store_options, stage_output, store_for

if TYPE_CHECKING:
    from nexus_cli.settings import CliSettings


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], settings: CliSettings) -> None:
    p = sub.add_parser(
        "claude",
        help="run Claude Code through the Nexus proxy with your key (arguments after -- go to claude)",
    )
    p.add_argument("--key", default=settings.key, help="your Nexus key [NEXUS_KEY]")
    p.add_argument("--proxy-url", help="the proxy's URL (default: the local stack's, or the stage's)")
    p.add_argument("args", nargs=argparse.REMAINDER, help="arguments for claude, after --")
    add_store_options(p, settings)
    p.set_defaults(func=run)


def claude_binary() -> str:
    """The CLI bundled in claude-agent-sdk (the version Nexus is tested with), else one on PATH."""
    try:
        import claude_agent_sdk

        bundled = Path(claude_agent_sdk.__file__).parent / "_bundled" / "claude"
        if bundled.exists():
            return str(bundled)
    except ImportError:
        pass
    found = shutil.which("claude")
    if not found:
        raise CLIError(
            "no Claude Code CLI found: install the project with `make setup` (or put claude on PATH)"
        )
    return found


def environment(args: argparse.Namespace, base: dict[str, str]) -> dict[str, str]:
    """Claude Code's environment: ``base`` plus the proxy's URL and the key, sent as its team needs."""
    settings = args.settings
    url = args.proxy_url or (
        stage_output(args.stage, "ProxyUrl") if args.stage else f"http://127.0.0.1:{settings.proxy_port}"
    )
    out = {**base, "ANTHROPIC_BASE_URL": url.rstrip("/")}
    if not args.key:
        return out  # keys optional (a local stack on localhost): recorded without team or user
    key_id = parse_key_id(args.key)
    access = AccessStore(store_for(args))
    record = access.keys().get(key_id or "")
    if record is None:
        where = f"stage {args.stage}" if args.stage else f"the local stack in {args.data_dir}"
        raise CLIError(f"that is not a Nexus key of {where} (see: nexus keys list)")
    mode = access.teams().get(record.team, {}).get("mode", "passthrough")
    if mode == "team-key":
        out["ANTHROPIC_API_KEY"] = args.key
        out.pop("ANTHROPIC_AUTH_TOKEN", None)
        out.pop("CLAUDE_CODE_OAUTH_TOKEN", None)  # the team's credential is used upstream
    else:
        headers = [h for h in base.get("ANTHROPIC_CUSTOM_HEADERS", "").splitlines() if h.strip()]
        headers = [h for h in headers if not h.lower().startswith("x-nexus-key:")]
        out["ANTHROPIC_CUSTOM_HEADERS"] = "\n".join([*headers, f"X-Nexus-Key: {args.key}"])
    return out


def run(args: argparse.Namespace) -> int:
    binary = claude_binary()
    extra = args.args[1:] if args.args[:1] == ["--"] else args.args
    env = environment(args, dict(os.environ))
    os.execve(binary, [binary, *extra], env)  # Claude Code takes over this process (and the terminal)
