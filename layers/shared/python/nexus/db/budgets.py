"""Budgets on the database side: spend per capped team and key, and the evaluator that turns caps and
spend into the proxy's state document and alert events (ADR 0017).

Spend is read from the hourly rollup (``usage_hourly``, maintained at ingest in the same transaction
as the requests), not from ``requests``: a month is at most 744 hours per team, key and model, so one
grouped query stays cheap however many requests the month holds.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime

import psycopg

from nexus.alert_events import LogOnly, Notifier
from nexus.budgets import (
    BUDGET_STATE_SECRET,
    BUDGETS_SECRET,
    Budgets,
    BudgetStatus,
    Kind,
    Spend,
    alert_for,
    day_start,
    evaluate,
    month_start,
    state_document,
)
from nexus.secret_store import SecretStore

log = logging.getLogger("nexus.budgets")

# One statement, one grouping per kind; only the capped subjects are summed.
SPEND_SQL = """
SELECT 'team' AS kind, team AS name, sum(cost_usd)::float8,
       coalesce(sum(cost_usd) FILTER (WHERE hour >= %(day)s), 0)::float8
FROM usage_hourly WHERE hour >= %(month)s AND team = ANY(%(teams)s) GROUP BY team
UNION ALL
SELECT 'key', key_id, sum(cost_usd)::float8,
       coalesce(sum(cost_usd) FILTER (WHERE hour >= %(day)s), 0)::float8
FROM usage_hourly WHERE hour >= %(month)s AND key_id = ANY(%(keys)s) GROUP BY key_id
"""


def spend(conn: psycopg.Connection, budgets: Budgets, now: datetime) -> Spend:
    """Dollars spent by each capped subject in the UTC month and day of ``now`` (requests without a
    known price count nothing; see ``cost_flag``)."""
    month: dict[tuple[Kind, str], float] = {}
    day: dict[tuple[Kind, str], float] = {}
    if not budgets:
        return Spend(month, day)
    params = {
        "month": month_start(now),
        "day": day_start(now),
        "teams": sorted(budgets.teams),
        "keys": sorted(budgets.keys),
    }
    with conn.transaction(), conn.cursor() as cur:
        for kind, name, m, d in cur.execute(SPEND_SQL, params).fetchall():
            month[(kind, name)] = m
            day[(kind, name)] = d
    return Spend(month, day)


class BudgetEvaluator:
    """Caps from the SecretStore, spend from the database; writes ``nexus/budget-state`` only when it
    changes and hands each threshold crossing to the notifier once per process (the notifier
    de-duplicates across processes by the events' dedup keys).

    Both documents are cached and re-read when the store's version changes, checked at most every
    ``refresh_s`` (a stat locally; in AWS a Secrets Manager call, hence a longer interval): a run
    after a batch costs the one grouped query and, only on a change, one write.
    """

    def __init__(
        self,
        store: SecretStore,
        notifier: Notifier | None = None,
        refresh_s: float = 0.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.store = store
        self.notifier: Notifier = notifier or LogOnly()
        self.refresh_s = refresh_s
        self.clock = clock
        self._checked = -float("inf")
        self._versions: tuple[object, object] | None = None
        self._budgets = Budgets({}, {})
        self._state: str | None = None  # the state document as last read or written
        self._alerted: set[str] = set()
        self.runs = 0
        self.writes = 0

    def _refresh(self) -> None:
        now = time.monotonic()
        if now - self._checked < self.refresh_s:
            return
        self._checked = now
        versions = (self.store.version(BUDGETS_SECRET), self.store.version(BUDGET_STATE_SECRET))
        if versions == self._versions:
            return
        self._versions = versions
        self._budgets = Budgets.parse(self.store.get(BUDGETS_SECRET))
        self._state = self.store.get(BUDGET_STATE_SECRET)

    def run(self, conn: psycopg.Connection) -> list[BudgetStatus]:
        self._refresh()
        now = self.clock()
        statuses = evaluate(self._budgets, spend(conn, self._budgets, now), now)
        self.runs += 1
        doc = state_document(statuses)
        if doc != self._state and not (self._state is None and not statuses):
            self.store.put(BUDGET_STATE_SECRET, doc)
            self._state = doc
            self.writes += 1
        for status in statuses:
            event = alert_for(status, now)
            if event is None or event.dedup_key in self._alerted:
                continue
            self._alerted.add(event.dedup_key)
            if status.state == "over":  # the warning is implied; never send it after the fact
                self._alerted.add(event.dedup_key.replace(":exceeded:", ":warning:"))
            try:
                self.notifier.notify(event)
            except Exception:  # a failing delivery must not stop the evaluation (nor ingest)
                log.exception("could not deliver %s for %s", event.kind, event.subject)
        return statuses
