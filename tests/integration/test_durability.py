"""Nothing accepted is lost: database outages, crashes after the response, shutdown mid-stream."""

from __future__ import annotations

import signal
import threading
import time

import psycopg
import pytest
from nexus.spool import SpoolReader

from tests.integration.http import CLAUDE_HEADERS, post
from tests.support import pg
from tests.support.claude_cli import run_claude
from tests.support.fake_upstream import Reply, message_events
from tests.support.stack import Stack

BODY = b'{"model":"claude-opus-5-5","max_tokens":5,"stream":true,"messages":[{"role":"user","content":"hi"}]}'


@pytest.fixture
def own_pg():
    """A PostgreSQL server this test may stop and start (not the shared one)."""
    with pg.temporary_server("nexus-outage-pg-") as server:
        yield server


def _count(url: str, session: str) -> tuple[int, int]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT count(*), count(DISTINCT id) FROM requests WHERE session_id = %s", (session,)
        ).fetchone()


def _wait_rows(url: str, session: str, n: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if _count(url, session)[0] >= n:
                return
        except psycopg.OperationalError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"expected {n} rows for {session}, have {_count(url, session)}")


def _spooled(stack: Stack) -> int:
    return SpoolReader(stack.data_dir / "spool").pending()


OUTAGE_S = 12  # ingest retries after 0.5, 1, 2, 4, 5 s: five failed passes; bench/faults.py runs longer


def test_database_outage_keeps_claude_working_and_loses_nothing(own_pg, fake_upstream, tmp_path):
    """PostgreSQL stopped for OUTAGE_S seconds: Claude Code (the real CLI) and API clients keep working,
    and every record appears, once, when the database is back."""
    fake_upstream.reset()
    url = pg.create_database(own_pg.get_uri())
    stack = Stack(tmp_path / "nexus", fake_upstream.url, url).start()
    headers = {**CLAUDE_HEADERS, "x-claude-code-session-id": "outage"}
    try:
        assert post(stack.proxy_url, "/v1/messages", BODY, headers).status == 200
        _wait_rows(url, "outage", 1)
        pg.stop_server(own_pg)
        down_since = time.monotonic()
        cli = run_claude(
            stack.proxy_url,
            tmp_path / "home",
            tmp_path / "project",
            "-p",
            "please TRIGGER_BASH while the database is down",
            "--allowedTools",
            "Bash",
            "--model",
            "claude-opus-5-5",
        )
        assert cli["is_error"] is False and "printed hi" in cli["result"]
        sent = 0
        while time.monotonic() - down_since < OUTAGE_S:
            r = post(stack.proxy_url, "/v1/messages", BODY, headers)
            assert r.status == 200 and b"message_stop" in r.body
            sent += 1
            time.sleep(2)
        assert _spooled(stack) == sent + 2  # the CLI's two requests and ours, all waiting
        pg.restart_server(own_pg)
        _wait_rows(url, "outage", sent + 1)
        _wait_rows(url, cli["session_id"], 2)
        assert _count(url, "outage") == (sent + 1, sent + 1)
        assert _spooled(stack) == 0
        assert "database unavailable" in stack.log() and "database is back" in stack.log()
    finally:
        stack.stop()


def test_crash_after_response_loses_nothing(own_pg, fake_upstream, tmp_path):
    fake_upstream.reset()
    url = pg.create_database(own_pg.get_uri())
    stack = Stack(tmp_path / "nexus", fake_upstream.url, url).start()
    headers = {**CLAUDE_HEADERS, "x-claude-code-session-id": "crash"}
    pg.stop_server(own_pg)  # so the records are still in the spool when the crash comes
    for _ in range(10):
        assert post(stack.proxy_url, "/v1/messages", BODY, headers).status == 200
    deadline = time.monotonic() + 5
    while _spooled(stack) < 10 and time.monotonic() < deadline:
        time.sleep(0.05)
    stack.kill()
    pg.restart_server(own_pg)
    again = Stack(stack.data_dir, fake_upstream.url, url)
    again.proxy_port, again.dashboard_port = stack.proxy_port, stack.dashboard_port
    again.start()
    try:
        _wait_rows(url, "crash", 10)
        assert _count(url, "crash") == (10, 10)
    finally:
        again.stop()


def test_shutdown_lets_inflight_streams_finish_and_records_them(stack_factory, fake_upstream):
    fake_upstream.reset()
    stack = stack_factory()
    events = message_events([{"type": "text", "text": "a slow but complete answer"}], split=8)
    fake_upstream.enqueue(Reply(events=events, delay_s=0.15))
    result: dict = {}

    def call() -> None:
        result["r"] = post(
            stack.proxy_url, "/v1/messages", BODY, {**CLAUDE_HEADERS, "x-claude-code-session-id": "sigterm"}
        )

    t = threading.Thread(target=call)
    t.start()
    time.sleep(0.5)  # mid-stream
    stack.proc.send_signal(signal.SIGTERM)
    t.join(30)
    assert result["r"].status == 200 and result["r"].body == b"".join(events)
    assert stack.proc.wait(60) == 0
    assert _count(stack.database_url, "sigterm") == (1, 1)


@pytest.fixture
def stack_factory(pg_server, fake_upstream, tmp_path):
    made: list[Stack] = []

    def make() -> Stack:
        s = Stack(tmp_path / f"n{len(made)}", fake_upstream.url, pg.create_database(pg_server.get_uri()))
        made.append(s.start())
        return s

    yield make
    for s in made:
        if s.proc and s.proc.poll() is None:
            s.stop()
