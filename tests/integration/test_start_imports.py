"""What a new proxy or dashboard process does before it can answer: the cold start on Lambda, and
every `nexus dev`. The heavy libraries they do without must stay out (bench/cold_start.py measures
the proxy's time)."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.support.aws import FUNCTION_ENV

# pydantic: the proxy's settings are a dataclass (docs/adr/0021-proxy-settings-without-pydantic.md);
# boto3 and botocore: nexus.aws_calls; click and uvicorn.main: uvicorn's command line, not used;
# Powertools: imported when the first JSON log line is written.
KEPT_OUT = (
    "pydantic",
    "pydantic_settings",
    "boto3",
    "botocore.client",
    "click",
    "uvicorn.main",
    "aws_lambda_powertools",
)

LOAD = """
import sys
from nexus_proxy import serve
serve.config(serve.parse([])).load()
print(",".join(m for m in sys.argv[1:] if m in sys.modules))
"""


def _loaded(environ: dict[str, str]) -> str:
    done = subprocess.run(
        [sys.executable, "-c", LOAD, *KEPT_OUT], env=environ, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_the_local_start_leaves_out_the_heavy_libraries(tmp_path) -> None:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("NEXUS_", "AWS_"))}
    assert _loaded({**environ, "NEXUS_DATA_DIR": str(tmp_path)}) == ""


def test_the_aws_start_leaves_out_the_heavy_libraries(tmp_path) -> None:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("NEXUS_", "AWS_"))}
    environ.update(
        FUNCTION_ENV,
        NEXUS_DATA_DIR=str(tmp_path),
        NEXUS_QUEUE_URL="https://sqs.us-east-1.amazonaws.com/123456789012/records.fifo",
    )
    assert _loaded(environ) == ""


DASHBOARD = """
import sys
from nexus import accounts
from nexus_dashboard.app import create_app
create_app("dbname=unused", "nxd_key")
print(",".join(m for m in sys.argv[1:] if m in sys.modules), accounts._dummy.cache_info().currsize)
"""


def test_the_dashboard_starts_without_the_mcp_sdk_or_a_password_hash() -> None:
    """The MCP SDK (~0.7 s of imports) loads on the first /mcp request; the dummy argon2 hash that
    evens out unknown user names (~0.25 s) on the first sign-in."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("NEXUS_", "AWS_"))}
    done = subprocess.run(
        [sys.executable, "-c", DASHBOARD, "mcp", "mcp_types", "nexus_dashboard.mcp_prompts"],
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["0"]
