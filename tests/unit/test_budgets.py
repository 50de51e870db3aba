"""Budgets' pure decisions on fixed data: UTC periods and resets, the states at the thresholds, the
state document the proxy reads, the alert a crossing raises, the caps' validation, and the proxy's gate
reading the state document."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from nexus.access import AccessStore
from nexus.alert_events import BUDGET_EXCEEDED, BUDGET_WARNING
from nexus.budgets import (
    BUDGET_STATE_SECRET,
    BudgetInputError,
    Budgets,
    BudgetStore,
    Cap,
    Spend,
    alert_for,
    evaluate,
    make_cap,
    parse_state,
    period_id,
    resets_at,
    state_document,
)
from nexus.secret_store import LocalSecretStore
from nexus_proxy.budget_gate import BudgetGate

NOW = datetime(2026, 3, 31, 23, 59, 59, tzinfo=UTC)


def test_periods_are_the_utc_calendar_month_and_day():
    assert period_id("monthly", NOW) == "2026-03"
    assert period_id("daily", NOW) == "2026-03-31"
    assert resets_at("monthly", NOW) == datetime(2026, 4, 1, tzinfo=UTC)
    assert resets_at("daily", NOW) == datetime(2026, 4, 1, tzinfo=UTC)
    december = datetime(2026, 12, 15, 8, tzinfo=UTC)
    assert resets_at("monthly", december) == datetime(2027, 1, 1, tzinfo=UTC)
    assert resets_at("daily", datetime(2028, 2, 28, 12, tzinfo=UTC)) == datetime(2028, 2, 29, tzinfo=UTC)
    # 01:30 on April 1st in UTC+2 is still March 31st in UTC: the UTC period applies.
    local = datetime(2026, 4, 1, 1, 30, tzinfo=timezone(timedelta(hours=2)))
    assert period_id("monthly", local) == "2026-03" and period_id("daily", local) == "2026-03-31"
    one_second_later = NOW + timedelta(seconds=1)
    assert period_id("monthly", one_second_later) == "2026-04"
    assert resets_at("monthly", one_second_later) == datetime(2026, 5, 1, tzinfo=UTC)


def _budgets() -> Budgets:
    return Budgets(
        teams={"web": Cap(100.0, 10.0, 0.8), "ops": Cap(50.0)},
        keys={"k1": Cap(20.0, None, 0.5, team="web")},
    )


def test_states_at_the_thresholds():
    spend = Spend(
        month={("team", "web"): 79.99, ("team", "ops"): 50.0, ("key", "k1"): 10.0},
        day={("team", "web"): 8.0},
    )
    by = {(s.subject, s.period): s for s in evaluate(_budgets(), spend, NOW)}
    assert set(by) == {
        ("team:ops", "monthly"),
        ("team:web", "monthly"),
        ("team:web", "daily"),
        ("key:k1", "monthly"),
    }, "a period without a cap is not evaluated"
    assert by[("team:web", "monthly")].state == "ok"  # just under 80%
    assert by[("team:web", "daily")].state == "warning"  # exactly 80%
    assert by[("team:ops", "monthly")].state == "over"  # exactly the cap
    assert by[("key:k1", "monthly")].state == "warning"  # its own warn_at, 50%
    assert by[("key:k1", "monthly")].team == "web"
    assert by[("team:web", "daily")].resets_at == datetime(2026, 4, 1, tzinfo=UTC)


def test_the_state_document_lists_only_overruns_and_is_stable():
    spend = Spend(month={("team", "ops"): 50.00004}, day={})
    doc = state_document(evaluate(_budgets(), spend, NOW))
    assert json.loads(doc) == {
        "format": 1,
        "over": [
            {
                "subject": "team:ops",
                "kind": "team",
                "name": "ops",
                "period": "monthly",
                "period_id": "2026-03",
                "spend_usd": 50.0,
                "cap_usd": 50.0,
                "resets_at": "2026-04-01T00:00:00Z",
            }
        ],
    }
    # Spend moving under a cap (or by less than a hundredth of a cent) and time passing change
    # nothing: no write.
    more = Spend(month={("team", "ops"): 50.00001, ("team", "web"): 30.0}, day={})
    assert state_document(evaluate(_budgets(), more, NOW - timedelta(hours=5))) == doc
    (o,) = parse_state(doc)
    assert "team 'ops' has spent $50.00 of its monthly budget of $50.00" in o.message()
    assert "until it resets at 2026-04-01T00:00:00Z" in o.message()


def test_alerts_name_the_threshold_and_dedupe_per_period_and_cap():
    warn_spend = Spend(month={("team", "web"): 85.0}, day={})
    (monthly, _daily) = [s for s in evaluate(_budgets(), warn_spend, NOW) if s.name == "web"]
    event = alert_for(monthly, NOW)
    assert event is not None and event.kind == BUDGET_WARNING and event.level == "warning"
    assert event.team == "web" and event.subject == "team:web"
    assert event.dedup_key == "budget:team:web:monthly:2026-03:warning:100"
    assert event.window_s == 60, "the dedup window lasts until the reset (at least a minute)"
    assert event.facts["spend_usd"] == 85.0 and event.facts["cap_usd"] == 100.0
    over = next(s for s in evaluate(_budgets(), Spend({("team", "web"): 100.0}, {}), NOW) if s.name == "web")
    exceeded = alert_for(over, NOW)
    assert exceeded is not None and exceeded.kind == BUDGET_EXCEEDED and exceeded.level == "critical"
    assert "refuses its requests until 2026-04-01T00:00:00Z" in exceeded.message
    april = NOW + timedelta(days=2)
    later = next(s for s in evaluate(_budgets(), warn_spend, april) if s.name == "web")
    assert alert_for(later, april).dedup_key.endswith(":2026-04:warning:100")  # type: ignore[union-attr]
    assert alert_for(evaluate(_budgets(), Spend({}, {}), NOW)[0], NOW) is None


@pytest.mark.parametrize(
    ("args", "says"),
    [
        ((0,), "positive"),
        ((-5,), "positive"),
        ((float("nan"),), "number"),
        ((10, 20), "larger than the monthly cap"),
        ((10, None, 1.0), "between 0 and 1"),
        ((10, None, 0), "between 0 and 1"),
    ],
)
def test_bad_caps_are_refused_readably(args, says):
    with pytest.raises(BudgetInputError, match=says):
        make_cap(*args)


@pytest.fixture
def store(tmp_path) -> LocalSecretStore:
    s = LocalSecretStore(tmp_path / "secrets.json")
    AccessStore(s).create_key("web", "ada")
    return s


def test_caps_need_an_existing_team_or_live_key(store):
    budgets = BudgetStore(store)
    key_id = next(iter(AccessStore(store).keys()))
    with pytest.raises(BudgetInputError, match="no team 'nope'"):
        budgets.set_cap("team", "nope", 10)
    with pytest.raises(BudgetInputError, match="no key with id 'nope'"):
        budgets.set_cap("key", "nope", 10)
    assert budgets.set_cap("key", key_id, 10).team == "web", "a key's cap remembers its team"
    AccessStore(store).revoke_key(key_id)
    with pytest.raises(BudgetInputError, match="revoked"):
        budgets.set_cap("key", key_id, 10)
    budgets.set_cap("team", "web", 10, 2, 0.9)
    assert budgets.load().teams["web"] == Cap(10.0, 2.0, 0.9)


def _over(store, monthly_spend: float) -> None:
    """The state document as the evaluator writes it for this spend, now (so it is in force)."""
    now = datetime.now(UTC)
    statuses = evaluate(BudgetStore(store).load(), Spend({("team", "web"): monthly_spend}, {}), now)
    store.put(BUDGET_STATE_SECRET, state_document(statuses))


def test_raising_or_clearing_a_cap_lifts_the_refusal_at_once(store):
    budgets = BudgetStore(store)
    budgets.set_cap("team", "web", 10)
    _over(store, 12.0)
    assert [o.name for o in budgets.overruns()] == ["web"]
    budgets.set_cap("team", "web", 11)  # still under the spend: the refusal stays, with the new cap
    assert [o.cap_usd for o in budgets.overruns()] == [11.0]
    budgets.set_cap("team", "web", 20)
    assert budgets.overruns() == []
    _over(store, 25.0)
    budgets.clear("team", "web")
    assert budgets.overruns() == []
    with pytest.raises(BudgetInputError, match="has no budget"):
        budgets.clear("team", "web")


def test_the_gate_refuses_from_the_state_document(store):
    budgets = BudgetStore(store)
    budgets.set_cap("team", "web", 10)
    gate = BudgetGate(store, refresh_s=0)
    assert gate.refusal("/v1/messages", "web", "k") is None
    _over(store, 12.0)
    over = gate.refusal("/v1/messages", "web", "k")
    assert over is not None and over.kind == "team" and over.name == "web"
    assert gate.refusal("/v1/messages/count_tokens", "web", "k") is None, "counting tokens is free"
    assert gate.refusal("/v1/messages", "other", None) is None
    assert gate.refusal("/v1/messages", None, None) is None
    # Past its reset time an entry no longer refuses (the evaluator may not have run yet).
    doc = json.loads(store.get(BUDGET_STATE_SECRET) or "")
    doc["over"][0]["resets_at"] = "2000-01-01T00:00:00Z"
    store.put(BUDGET_STATE_SECRET, json.dumps(doc))
    assert gate.refusal("/v1/messages", "web", None) is None


def test_the_gate_checks_the_store_at_most_once_per_interval(store):
    BudgetStore(store).set_cap("team", "web", 10)
    gate = BudgetGate(store, refresh_s=3600)
    assert gate.refusal("/v1/messages", "web", None) is None
    _over(store, 12.0)
    assert gate.refusal("/v1/messages", "web", None) is None, "not before the interval has passed"
    gate._checked -= 3600
    assert gate.refusal("/v1/messages", "web", None) is not None
