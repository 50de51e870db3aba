"""The automatic trigger's sweep on a real database: only opted-in teams, only conversations idle for
the team's minutes, within its daily cap, and never one already analysed since its last request."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
from nexus.analysis import settings as analysis_settings
from nexus.db.migrate import migrate
from nexus.secret_store import LocalSecretStore
from nexus_analysis import steps

from tests.support.conversations import record_conversation


def test_idle_conversations_of_opted_in_teams_are_queued_within_the_daily_cap(database_url, tmp_path) -> None:
    migrate(database_url)
    secrets = LocalSecretStore(tmp_path / "secrets.json")
    analysis_settings.save(
        secrets,
        analysis_settings.AnalysisSettings(
            auto={"web": analysis_settings.AutoPolicy(idle_minutes=30, daily_cap=2)}
        ),
    )

    @contextlib.contextmanager
    def connection() -> Iterator[psycopg.Connection]:
        with psycopg.connect(database_url, autocommit=True) as conn:
            yield conn

    ctx = steps.Context(connection=connection, secrets=secrets)
    with psycopg.connect(database_url, autocommit=True) as conn:
        web = [record_conversation(conn, [f"task {i}"], team="web") for i in range(3)]
        other = record_conversation(conn, ["not opted in"], team="ops")
        last_at = conn.execute("SELECT max(last_at) FROM conversations").fetchone()[0]

        # not idle long enough yet
        assert steps.sweep(ctx, {"now": (last_at + timedelta(minutes=10)).isoformat()})["queued"] == []
        later = (last_at + timedelta(minutes=31)).isoformat()
        queued = steps.sweep(ctx, {"now": later})["queued"]
        assert len(queued) == 2 and {q["conversation_id"] for q in queued} <= set(web)
        assert other not in {q["conversation_id"] for q in queued}
        assert steps.sweep(ctx, {"now": later})["queued"] == []  # the cap is used up for the day
        rows = conn.execute("SELECT trigger, status, team FROM analyses").fetchall()
        assert rows == [("auto", "queued", "web")] * 2

        # the next day: the third is queued; the two still queued are not queued twice
        first = {q["conversation_id"] for q in queued}
        conn.execute("UPDATE analyses SET created_at = created_at - interval '1 day'")
        next_day = (datetime.fromisoformat(later) + timedelta(days=1)).astimezone(UTC)
        again = steps.sweep(ctx, {"now": next_day.isoformat()})["queued"]
        assert [q["conversation_id"] for q in again] == [c for c in web if c not in first]


def test_a_run_stuck_in_flight_does_not_block_its_conversation(database_url) -> None:
    from nexus.analysis import store

    migrate(database_url)
    with psycopg.connect(database_url, autocommit=True) as conn:
        cid = record_conversation(conn, ["anything"])
        first = store.enqueue(conn, cid, "manual")
        assert first is not None and first.created
        joined = store.enqueue(conn, cid, "manual")
        assert joined is not None and (joined.id, joined.created) == (first.id, False)  # in flight: joined
        conn.execute("UPDATE analyses SET status = 'running', created_at = now() - interval '2 hours'")
        fresh = store.enqueue(conn, cid, "manual")
        assert fresh is not None and fresh.created and fresh.id != first.id
        status, reason = conn.execute(
            "SELECT status, reason FROM analyses WHERE id = %s", (first.id,)
        ).fetchone()
        assert status == "failed" and reason.startswith("abandoned: no result within 35 minutes")
        assert store.requeue_running(conn) == 0  # the fresh one is queued, not running
