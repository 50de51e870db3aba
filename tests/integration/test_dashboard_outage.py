"""The dashboard through a PostgreSQL outage: it answers 503 in each caller's shape, fast, while the
database is down, says so on /health, and serves again by itself once the database is back."""

from __future__ import annotations

import time

import pytest

from tests.integration.http import Response, request
from tests.support import pg
from tests.support.stack import Stack

FAST_S = 5.0  # a request while the database is down must not hang for the pool's old 30 s


@pytest.fixture
def own_pg():
    """A PostgreSQL server this test may stop and start (not the shared one)."""
    with pg.temporary_server("nexus-dash-outage-pg-") as server:
        yield server


def timed(stack: Stack, path: str) -> tuple[Response, float]:
    t0 = time.monotonic()
    r = request(stack.dashboard_url, "GET", path, headers={"authorization": f"Bearer {stack.dashboard_key}"})
    return r, time.monotonic() - t0


def assert_unavailable(r: Response, elapsed: float) -> None:
    assert r.status == 503, (r.status, r.body[:300])
    assert elapsed < FAST_S, f"took {elapsed:.1f}s"
    assert int(r.header("retry-after") or "0") >= 1


def test_database_down_gives_503_and_the_dashboard_recovers_by_itself(own_pg, fake_upstream, tmp_path):
    stack = Stack(tmp_path / "nexus", fake_upstream.url, pg.create_database(own_pg.get_uri())).start()
    try:
        health, _ = timed(stack, "/health")
        assert health.status == 200 and health.json() == {"status": "ok", "database": "ok"}
        assert timed(stack, "/api/overview")[0].status == 200

        pg.stop_server(own_pg)
        for _ in range(3):  # the pool's idle connection is dead now, then none can be made
            r, elapsed = timed(stack, "/health")
            assert_unavailable(r, elapsed)
            body = r.json()
            assert body["status"] == "unavailable" and body["database"]
            assert body["error"]["status"] == 503
            r, elapsed = timed(stack, "/api/overview?period=7d")
            assert_unavailable(r, elapsed)
            message = r.json()["error"]["message"]
            assert message.startswith("database unavailable: ") and r.json()["error"]["status"] == 503
        page, elapsed = timed(stack, "/")
        assert_unavailable(page, elapsed)
        assert (page.header("content-type") or "").startswith("text/html")
        assert "database unavailable" in page.body.decode() and "Traceback" not in page.body.decode()

        pg.restart_server(own_pg)
        deadline = time.monotonic() + 20
        while (health := timed(stack, "/health")[0]).status != 200:
            assert time.monotonic() < deadline, f"still {health.status} after the database came back"
            time.sleep(0.2)
        assert health.json() == {"status": "ok", "database": "ok"}
        assert timed(stack, "/api/overview")[0].status == 200
        assert timed(stack, "/")[0].status == 200
    finally:
        stack.stop()
