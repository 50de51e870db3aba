"""``functions/proxy/run.sh``, the handler the Lambda Web Adapter starts, serves the same proxy app:
started here as the adapter would (its port in ``AWS_LWA_PORT``, the code root in LAMBDA_TASK_ROOT)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from nexus.spool import SpoolReader

from tests.integration.http import CLAUDE_HEADERS, post, request
from tests.support.fake_upstream import text_reply
from tests.support.stack import free_port

ROOT = Path(__file__).resolve().parents[2]


def test_run_sh_serves_the_proxy_on_the_adapter_port(upstream, tmp_path) -> None:
    port = free_port()
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "LAMBDA_TASK_ROOT": str(ROOT / "functions" / "proxy"),
        "AWS_LWA_PORT": str(port),
        "NEXUS_UPSTREAM_URL": upstream.url,
        "NEXUS_REQUIRE_KEYS": "false",
        "NEXUS_DATA_DIR": str(tmp_path),
    }
    proc = subprocess.Popen(
        ["/bin/sh", str(ROOT / "functions" / "proxy" / "run.sh")], cwd=env["LAMBDA_TASK_ROOT"], env=env
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while True:  # the adapter's readiness check
            try:
                if request(base, "GET", "/health").status == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline and proc.poll() is None, "run.sh did not become ready"
            time.sleep(0.1)
        upstream.enqueue(text_reply("via the adapter's port"))
        body = {"model": "claude-sonnet-4-5", "max_tokens": 5, "stream": True, "messages": []}
        resp = post(base, "/v1/messages", body, CLAUDE_HEADERS)
        assert resp.status == 200 and resp.body.endswith(b'data: {"type":"message_stop"}\n\n')
    finally:
        proc.terminate()
        proc.wait(10)
    [record] = [item.record for item in SpoolReader(tmp_path / "spool").take(10)]
    assert record.status == 200 and record.response_body == resp.body
