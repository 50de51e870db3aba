"""A full disk under the spool costs no record: what cannot be written waits in memory and is
written once space returns; past the memory hold, new requests are refused (503, retryable) before
the upstream is called, never served unrecorded. Runs on a real tmpfs the test fills."""

from __future__ import annotations

import json
import os
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.conftest import strict_skips
from tests.integration.http import CLAUDE_HEADERS, post, request
from tests.support import pg
from tests.support.faults import fill, tmpfs
from tests.support.stack import Stack

SESSION = "d15cf011-0000-4000-8000-000000000001"
TMPFS_BYTES = 6 * 1024 * 1024
HOLD_BYTES = 400 * 1024


@pytest.fixture
def small_disk(tmp_path):
    try:
        with tmpfs(tmp_path / "disk", TMPFS_BYTES) as mnt:
            yield mnt
    except PermissionError as exc:
        if strict_skips():
            pytest.fail(str(exc))
        pytest.skip(str(exc))


def _body(n: int) -> bytes:
    text = f"request {n}: " + "lorem ipsum " * 2500  # ~30 KB: a few fill the memory hold
    return json.dumps(
        {
            "model": "claude-sonnet-4-5-20250929",
            "max_tokens": 16,
            "stream": True,
            "messages": [{"role": "user", "content": text}],
        }
    ).encode()


def _health(stack: Stack) -> tuple[int, dict]:
    r = request(stack.proxy_url, "GET", "/health")
    return r.status, r.json()


def _send(stack: Stack, n: int):
    return post(
        stack.proxy_url, "/v1/messages", _body(n), {**CLAUDE_HEADERS, "x-claude-code-session-id": SESSION}
    )


def test_disk_full_holds_records_refuses_past_the_hold_and_loses_none(small_disk, pg_server, fake_upstream):
    fake_upstream.reset()
    url = pg.create_database(pg_server.get_uri())
    stack = Stack(
        small_disk / "nexus", fake_upstream.url, url, env={"NEXUS_RECORD_HOLD_BYTES": str(HOLD_BYTES)}
    )
    stack.start()
    try:
        assert _send(stack, 0).status == 200
        stack.wait_count(1, session_id=SESSION)
        filler = fill(small_disk)

        with ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(lambda n: _send(stack, n), range(1, 41)))
        ok = [a for a in answers if a.status == 200]
        refused = [a for a in answers if a.status == 503]
        assert len(ok) + len(refused) == 40
        assert 5 <= len(ok) < 40, "some requests are held in memory, the rest refused"
        for r in refused:
            assert r.json()["type"] == "error" and "cannot record" in r.json()["error"]["message"]
            assert r.header("retry-after") == "5" and r.header("x-should-retry") is None
        # Refused requests never reached the upstream: nothing was spent unrecorded.
        assert len(fake_upstream.messages_requests()) == 1 + len(ok)

        status, doc = _health(stack)
        assert status == 503 and doc["status"] == "not_recording"
        assert doc["recording"]["held"] == len(ok) and doc["recording"]["refused"] == len(refused)
        assert "No space left" in doc["recording"]["last_error"]

        os.unlink(filler)  # space comes back
        rows = stack.wait_count(1 + len(ok), session_id=SESSION, timeout=30)
        assert len(rows) == 1 + len(ok)
        deadline = time.monotonic() + 10
        while _health(stack)[0] != 200 and time.monotonic() < deadline:
            time.sleep(0.1)
        status, doc = _health(stack)
        assert doc["status"] == "ok" and doc["recording"]["written_late"] == len(ok)

        # Requests after the episode are served and recorded as usual.
        assert _send(stack, 99).status == 200
        stack.wait_count(2 + len(ok), session_id=SESSION)
        assert not list((stack.data_dir / "spool" / "dead").iterdir())
        assert "recording resumed" in stack.log()
    finally:
        stack.stop()
