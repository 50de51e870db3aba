"""Budgets as the dashboard shows them: each cap (``nexus budgets``) against this UTC month's and day's
spend from the database, with the state the proxies act on (ADR 0017). The same pure evaluation as the
evaluator's (``nexus.budgets.evaluate``); the spend is read now, so the page can be a little ahead of
the proxies, which follow the evaluator's state document."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import psycopg
from nexus.access import AccessStore
from nexus.budgets import BudgetInputError, BudgetStore, evaluate
from nexus.db.budgets import spend
from nexus.secret_store import SecretStore
from pydantic import BaseModel, ConfigDict, Field

from nexus_dashboard.audit_log import Auditor
from nexus_dashboard.keys import KeyInputError, one_line
from nexus_dashboard.schemas import Budget, BudgetCap, BudgetList

Dollars = Field(gt=0, le=1e9)


class NewCap(BaseModel):
    """The JSON body that sets a team's or a key's cap (as `nexus budgets set` does)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"monthly_usd": 500, "daily_usd": 50}]},
    )
    monthly_usd: float = Dollars
    daily_usd: float | None = Field(None, gt=0, le=1e9)
    warn_at: float | None = Field(None, gt=0, lt=1, description="share of a cap that warns (0.8)")


class NoSuchSubject(BudgetInputError):
    """The team or key a cap names does not exist."""


class Contradiction(BudgetInputError):
    """Each amount is valid alone, not together: a daily cap above the monthly one."""


def set_cap(store: SecretStore, fields: dict[str, Any], log: Auditor) -> BudgetCap:
    """Validate and store a cap from the API's body or the page's form (recorded in the audit log).
    BudgetInputError says why not."""
    try:
        name = one_line(fields.get("name"), "name")
    except KeyInputError as exc:
        raise NoSuchSubject(str(exc)) from None
    kind = fields.get("kind")
    if kind not in ("team", "key"):
        raise NoSuchSubject(f"no budget subject of kind {kind!r}: team or key")

    def amount(field: str, required: bool = False) -> float | None:
        raw = fields.get(field)
        if raw is None or raw == "":
            if required:
                raise BudgetInputError(f"{field} is required")
            return None
        try:
            return float(raw)
        except (TypeError, ValueError):
            raise BudgetInputError(f"{field} must be a number, got {raw!r}") from None

    access = AccessStore(store)
    known = access.teams() if kind == "team" else access.keys()
    if name not in known:
        raise NoSuchSubject(f"no {kind} {name!r} (see: nexus {kind}s list)")
    monthly = amount("monthly_usd", required=True)
    assert monthly is not None
    daily = amount("daily_usd")
    if daily is not None and daily > monthly:
        raise Contradiction(f"the daily cap (${daily:g}) is larger than the monthly cap (${monthly:g})")
    cap = BudgetStore(store).set_cap(kind, name, monthly, amount("daily_usd"), amount("warn_at"))
    log(
        "budget.set",
        f"{kind}:{name}",
        {"monthly_usd": cap.monthly_usd, "daily_usd": cap.daily_usd, "warn_at": cap.warn_at},
    )
    return {
        "kind": kind,
        "name": name,
        "monthly_usd": cap.monthly_usd,
        "daily_usd": cap.daily_usd,
        "warn_at": cap.warn_at,
        "team": cap.team,
    }


def clear_cap(store: SecretStore, kind: str, name: str, log: Auditor) -> None:
    if kind not in ("team", "key"):
        raise NoSuchSubject(f"no budget subject of kind {kind!r}: team or key")
    BudgetStore(store).clear(kind, name)  # type: ignore[arg-type]  # checked just above
    log("budget.clear", f"{kind}:{name}")


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
