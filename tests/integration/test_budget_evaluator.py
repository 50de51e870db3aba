"""The budget evaluator on a real database: given recorded requests ingested at known times, the spend
per capped team and key, the state document it writes (only on a change), and one alert per crossing."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from nexus.access import AccessStore
from nexus.alert_events import BUDGET_EXCEEDED, BUDGET_WARNING, LogOnly
from nexus.budgets import BUDGET_STATE_SECRET, BudgetStore
from nexus.db.budgets import SPEND_SQL, BudgetEvaluator
from nexus.db.migrate import migrate
from nexus.db.records import KnownHashes
from nexus.record import RawRecord
from nexus.secret_store import LocalSecretStore
from nexus_ingest.pipeline import ingest_batch

from tests.support.fake_upstream import Usage, message_events

MODEL = "claude-sonnet-4-5"  # $15 per million output tokens (short prompts)
NOW = datetime(2026, 5, 31, 23, 30, tzinfo=UTC)


class Clock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


def _record(n: int, at: datetime, team: str, key_id: str | None, usd: float) -> RawRecord:
    tokens = round(usd / 15 * 1_000_000)  # output tokens at $15/M
    return RawRecord(
        id=f"00000000-0000-7000-8000-{n:012d}",
        received_at=at.timestamp(),
        method="POST",
        path="/v1/messages",
        query="",
        request_headers=[["content-type", "application/json"]],
        team=team,
        user="u",
        key_id=key_id,
        status=200,
        response_headers=[["content-type", "text/event-stream"]],
        request_body=json.dumps(
            {
                "model": MODEL,
                "max_tokens": 5,
                "stream": True,
                "messages": [{"role": "user", "content": f"m{n}"}],
            }
        ).encode(),
        response_body=b"".join(
            message_events(
                [{"type": "text", "text": "ok"}], MODEL, usage=Usage(input_tokens=0, output_tokens=tokens)
            )
        ),
    )


@pytest.fixture
def world(database_url, tmp_path):
    migrate(database_url)
    store = LocalSecretStore(tmp_path / "secrets.json")
    access = AccessStore(store)
    _, key = access.create_key("web", "ada")
    access.create_key("ops", "bob")
    budgets = BudgetStore(store)
    budgets.set_cap("team", "web", 10, daily_usd=4)
    budgets.set_cap("key", key.id, 5, warn_at=0.5)
    conn = psycopg.connect(database_url)
    known = KnownHashes()
    counter = iter(range(1, 10_000))

    def spend(at: datetime, team: str, usd: float, key_id: str | None = None) -> None:
        ingest_batch(conn, [_record(next(counter), at, team, key_id, usd)], known)

    notifier = LogOnly()
    clock = Clock(NOW)
    evaluator = BudgetEvaluator(store, notifier, refresh_s=0, clock=clock)
    yield evaluator, spend, notifier, clock, key.id, store, conn
    conn.close()


def test_spend_counts_only_this_utc_month_and_day(world):
    evaluator, spend, _, _, key_id, _, conn = world
    spend(datetime(2026, 4, 30, 23, 59, tzinfo=UTC), "web", 3.0)  # last month
    spend(datetime(2026, 5, 30, 23, 59, tzinfo=UTC), "web", 2.0)  # this month, yesterday
    spend(datetime(2026, 5, 31, 0, 0, tzinfo=UTC), "web", 1.0, key_id)  # today, through the key
    spend(NOW, "ops", 50.0)  # a team without a cap
    by = {(s.subject, s.period): s for s in evaluator.run(conn)}
    assert by[("team:web", "monthly")].spend_usd == pytest.approx(3.0, abs=1e-3)
    assert by[("team:web", "daily")].spend_usd == pytest.approx(1.0, abs=1e-3)
    assert by[(f"key:{key_id}", "monthly")].spend_usd == pytest.approx(1.0, abs=1e-3)
    assert not any(s.name == "ops" for s in by.values()), "only capped subjects are evaluated"
    assert all(s.state == "ok" for s in by.values())


def test_crossings_alert_once_and_the_state_is_written_only_on_change(world):
    evaluator, spend, notifier, clock, key_id, store, conn = world
    spend(NOW - timedelta(days=3), "web", 8.5)
    evaluator.run(conn)
    assert [e.kind for e in notifier.seen] == [BUDGET_WARNING]  # 85% of the monthly cap
    assert json.loads(store.get(BUDGET_STATE_SECRET))["over"] == []
    writes = evaluator.writes
    evaluator.run(conn)
    spend(NOW - timedelta(days=3), "web", 0.1)
    evaluator.run(conn)
    assert len(notifier.seen) == 1, "still above the warning share: no second warning"
    assert evaluator.writes == writes, "nothing changed for the proxy: no write"

    spend(NOW, "web", 2.0)  # 10.6 this month: over the monthly cap; 2.0 today: 50% of the daily one
    evaluator.run(conn)
    assert [e.kind for e in notifier.seen] == [BUDGET_WARNING, BUDGET_EXCEEDED]
    (over,) = json.loads(store.get(BUDGET_STATE_SECRET))["over"]
    assert over["subject"] == "team:web" and over["period"] == "monthly"
    assert over["spend_usd"] == 10.6 and over["cap_usd"] == 10.0
    assert over["resets_at"] == "2026-06-01T00:00:00Z"

    spend(NOW, "web", 3.0, key_id)  # the key at 60% of its cap (warns at 50%), the team's day over too
    evaluator.run(conn)
    kinds = [(e.kind, e.subject) for e in notifier.seen[2:]]
    assert sorted(kinds) == [(BUDGET_EXCEEDED, "team:web"), (BUDGET_WARNING, f"key:{key_id}")]
    assert notifier.seen[2].dedup_key != notifier.seen[1].dedup_key  # the daily cap's own key
    assert {e["period"] for e in json.loads(store.get(BUDGET_STATE_SECRET))["over"]} == {"monthly", "daily"}

    clock.at = datetime(2026, 6, 1, 0, 5, tzinfo=UTC)  # a new month and day: nothing is over any more
    evaluator.run(conn)
    assert json.loads(store.get(BUDGET_STATE_SECRET))["over"] == []
    assert len(notifier.seen) == 4


def test_a_raised_cap_is_read_at_the_next_run(world):
    evaluator, spend, _, _, _, store, conn = world
    spend(NOW, "web", 3.9)
    BudgetStore(store).set_cap("team", "web", 3)
    evaluator.run(conn)
    assert len(json.loads(store.get(BUDGET_STATE_SECRET))["over"]) == 1
    BudgetStore(store).set_cap("team", "web", 30, daily_usd=10)
    evaluator.run(conn)
    assert json.loads(store.get(BUDGET_STATE_SECRET))["over"] == []


def test_the_spend_query_reads_the_rollup_by_its_hour_index(world):
    """EXPLAIN on a rollup with many hours: the month's rows come from the hour index, not a scan of
    requests (no extra index needed)."""
    _, _, _, _, _, _, conn = world
    with conn.transaction():
        conn.execute(
            "INSERT INTO usage_hourly (hour, team, user_id, model, key_id, account, requests, errors,"
            " rate_limited, input_tokens, output_tokens, cache_creation_input_tokens,"
            " cache_read_input_tokens,"
            " cost_usd, last_at)"
            " SELECT h, 't' || (i % 50), 'u', 'm', 'k' || (i % 200), NULL, 1, 0, 0, 1, 1, 0, 0, 0.01, h"
            " FROM generate_series(1, 40000) i, LATERAL (SELECT now() - i * interval '1 hour' AS h) x"
        )
        conn.execute("ANALYZE usage_hourly")
    plan = "\n".join(
        r[0]
        for r in conn.execute(
            "EXPLAIN " + SPEND_SQL,
            {"month": NOW - timedelta(days=30), "day": NOW, "teams": ["t1"], "keys": ["k1"]},
        ).fetchall()
    )
    conn.rollback()
    assert "usage_hourly_hour" in plan and "requests" not in plan, plan
