"""`nexus dev` supervises its embedded PostgreSQL: a server killed with SIGKILL is restarted, loudly,
records made meanwhile arrive, and stopping the stack stops the server running then."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import psutil

from tests.integration.http import CLAUDE_HEADERS, post
from tests.support import pg
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


# Run in a process of its own that adopts orphans and never reaps them (PR_SET_CHILD_SUBREAPER):
# the postmaster, daemonized by pg_ctl, becomes its child, and once killed stays a zombie, as under
# a container init that does not reap.
ZOMBIE_KEEPER = """
import ctypes, os, signal, sys, time
from pathlib import Path
ctypes.CDLL("libc.so.6", use_errno=True).prctl(36, 1)  # PR_SET_CHILD_SUBREAPER
from nexus.db.embedded import EmbeddedPostgres
pg = EmbeddedPostgres(Path(sys.argv[1]))
pg.supervise()
first = pg.pid
os.kill(first, signal.SIGKILL)
started = time.monotonic()
while time.monotonic() - started < 20 and pg.restarts == 0:
    time.sleep(0.1)
zombie = open(f"/proc/{first}/stat").read().split(")")[1].split()[0] == "Z"
print(f"zombie={zombie} restarts={pg.restarts} after={time.monotonic() - started:.1f}", flush=True)
pg.stop()
"""


def test_a_killed_postgres_that_stays_a_zombie_is_restarted_at_once():
    """Its pid file and its socket's lock file name a process that still "exists" (a zombie) until
    it is reaped: both are cleared, and the server comes back in seconds, not when the zombie goes."""
    with pg.server_dir("nexus-zombie-pg-") as root:
        done = subprocess.run(
            [sys.executable, "-c", ZOMBIE_KEEPER, str(root / "pg")],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode == 0, done.stderr[-3000:]
    line = done.stdout.strip().splitlines()[-1]
    assert line.startswith("zombie=True restarts=1 "), line
    assert float(line.rsplit("=", 1)[1]) < 10, line
