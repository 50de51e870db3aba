"""Budgets as the dashboard shows them: each cap (``nexus budgets``) against this UTC month's and day's
spend from the database, with the state the proxies act on (ADR 0017). The same pure evaluation as the
evaluator's (``nexus.budgets.evaluate``); the spend is read now, so the page can be a little ahead of
the proxies, which follow the evaluator's state document."""

from __future__ import annotations

from datetime import UTC, datetime

import psycopg
from nexus.budgets import BudgetStore, evaluate
from nexus.db.budgets import spend
from nexus.secret_store import SecretStore

from nexus_dashboard.schemas import Budget, BudgetList


def budgets_data(store: SecretStore, conn: psycopg.Connection) -> BudgetList:
    budget_store = BudgetStore(store)
    caps = budget_store.load()
    now = datetime.now(UTC)
    refused = {(o.kind, o.name, o.period) for o in budget_store.overruns() if o.resets_at > now}
    rows: list[Budget] = [
        {
            "subject": s.subject,
            "kind": s.kind,
            "name": s.name,
            "team": s.team,
            "period": s.period,
            "period_id": s.period_id,
            "spend_usd": s.spend_usd,
            "cap_usd": s.cap_usd,
            "share": s.share,
            "warn_at": s.warn_at,
            "state": s.state,
            "refused": (s.kind, s.name, s.period) in refused,
            "resets_at": s.resets_at,
        }
        for s in evaluate(caps, spend(conn, caps, now), now)
    ]
    return {"budgets": rows, "evaluated_at": now}
