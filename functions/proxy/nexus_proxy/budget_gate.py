"""The proxy's budget gate: refuse a caller over its team's or key's cap before the upstream is called.

No database on the hot path: the gate reads the state document the evaluator writes
(``nexus/budget-state``, see ``nexus.budgets``), cached and re-read when the store's version changes,
checked at most once per ``refresh_s`` like the Authenticator's documents (a stat locally, a Secrets
Manager call in AWS). A check is a dictionary probe. An entry past its reset time is ignored, so a new
month or day lets callers through at once, before the evaluator has run.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime

from nexus.budgets import BUDGET_STATE_SECRET, Overrun, parse_state
from nexus.secret_store import SecretStore

log = logging.getLogger("nexus.proxy")

# Only these spend money; counting tokens is free and stays allowed over a cap.
BUDGETED_PATHS = frozenset({"/v1/messages"})


class BudgetGate:
    def __init__(self, store: SecretStore, refresh_s: float = 1.0) -> None:
        self.store = store
        self.refresh_s = refresh_s
        self._checked = -float("inf")
        self._version: object = object()
        self._over: dict[tuple[str, str], Overrun] = {}
        self.refused = 0

    def _refresh(self) -> None:
        now = time.monotonic()
        if now - self._checked < self.refresh_s:
            return
        self._checked = now
        try:
            version = self.store.version(BUDGET_STATE_SECRET)
            if version == self._version:
                return
            over = parse_state(self.store.get(BUDGET_STATE_SECRET))
        except Exception:  # a store hiccup or a bad document: keep what we had, try again later
            log.exception("could not read the budget state; keeping the previous one")
            return
        self._version = version
        # Per subject, the refusal that lasts longest (a monthly one outlives a daily one).
        table: dict[tuple[str, str], Overrun] = {}
        for o in sorted(over, key=lambda o: o.resets_at):
            table[(o.kind, o.name)] = o
        self._over = table

    def refusal(self, path: str, team: str | None, key_id: str | None) -> Overrun | None:
        """The budget that refuses this caller, or None. ``team``/``key_id``: the identified caller."""
        self._refresh()
        if not self._over or path not in BUDGETED_PATHS:
            return None
        now: datetime | None = None
        for kind, name in (("key", key_id), ("team", team)):
            o = self._over.get((kind, name)) if name is not None else None
            if o is None:
                continue
            now = now or datetime.now(UTC)
            if o.resets_at > now:
                self.refused += 1
                return o
        return None
