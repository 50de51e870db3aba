"""`nexus dev` supervises its embedded PostgreSQL: a server killed with SIGKILL is restarted, loudly,
records made meanwhile arrive, and stopping the stack stops the server running then."""

from __future__ import annotations

import os
import signal
import time

import psutil

from tests.integration.http import CLAUDE_HEADERS, post
from tests.support.stack import Stack

BODY = b'{"model":"claude-opus-5-5","max_tokens":5,"stream":true,"messages":[{"role":"user","content":"hi"}]}'
SESSION = "0e6bedde-0000-4000-8000-000000000001"


def _postmaster(stack: Stack) -> int:
    return int((stack.data_dir / "pg" / "postmaster.pid").read_text().split("\n", 1)[0])


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _send() -> dict[str, str]:
    return {**CLAUDE_HEADERS, "x-claude-code-session-id": SESSION}


def test_a_killed_embedded_postgres_is_restarted_and_stopped_with_the_stack(fake_upstream, tmp_path):
    fake_upstream.reset()
    stack = Stack(tmp_path / "nexus", fake_upstream.url).start(timeout=120)  # no DATABASE_URL
    try:
        assert post(stack.proxy_url, "/v1/messages", BODY, _send()).status == 200
        stack.wait_count(1, session_id=SESSION)
        first = _postmaster(stack)
        os.kill(first, signal.SIGKILL)

        # Claude Code keeps working while the database is away.
        assert post(stack.proxy_url, "/v1/messages", BODY, _send()).status == 200
        deadline = time.monotonic() + 60
        while "embedded PostgreSQL restarted" not in stack.log() and time.monotonic() < deadline:
            time.sleep(0.2)
        log = stack.log()
        assert f"embedded PostgreSQL (pid {first}) is gone: restarting it" in log
        assert "embedded PostgreSQL restarted" in log
        second = _postmaster(stack)
        assert second != first and _alive(second)

        assert post(stack.proxy_url, "/v1/messages", BODY, _send()).status == 200
        stack.wait_count(3, session_id=SESSION, timeout=30)  # nothing made during the outage lost
    finally:
        stack.stop()
    assert not _alive(second), "nexus dev left the restarted PostgreSQL running"
    assert not (stack.data_dir / "pg" / "postmaster.pid").exists()
