"""Run the real Claude Code CLI (bundled in claude-agent-sdk) against a proxy."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import claude_agent_sdk

from tests.support.secret_scan import CLI_KEY

CLAUDE = Path(claude_agent_sdk.__file__).parent / "_bundled" / "claude"


def run_claude(
    base_url: str,
    home: Path,
    cwd: Path,
    *args: str,
    headers: str | None = None,
    oauth_token: str | None = None,
    timeout: float = 90,
) -> dict[str, Any]:
    """``claude -p ... --output-format json``; returns the parsed result line. ``oauth_token``: sign
    in with a Claude subscription token (``CLAUDE_CODE_OAUTH_TOKEN``) instead of an API key."""
    home.mkdir(parents=True, exist_ok=True)
    cwd.mkdir(parents=True, exist_ok=True)
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(home),
        "ANTHROPIC_BASE_URL": base_url,
        "ANTHROPIC_API_KEY": CLI_KEY,
        # Without it the CLI probes api.anthropic.com and <base>/api/hello; there is no internet here.
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    }
    if headers:
        env["ANTHROPIC_CUSTOM_HEADERS"] = headers
    if oauth_token:
        del env["ANTHROPIC_API_KEY"]
        env["CLAUDE_CODE_OAUTH_TOKEN"] = oauth_token
    cmd = [str(CLAUDE), *args, "--output-format", "json"]
    out = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if out.returncode != 0:
        raise AssertionError(
            f"claude {' '.join(args)} failed ({out.returncode}):\n{out.stdout}\n{out.stderr}"
        )
    return json.loads(out.stdout.strip().splitlines()[-1])
