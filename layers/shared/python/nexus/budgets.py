"""Budgets: monthly (and optionally daily) USD caps per team and per Nexus key.

Pure parts, shared by every side (ADR 0017):
- the caps document ``nexus/budgets`` in the SecretStore, its validation and ``BudgetStore``;
- UTC periods (the calendar month and day) and when they reset;
- ``evaluate``: caps and spend in, one ``BudgetStatus`` per capped subject and period out;
- the state document ``nexus/budget-state``: what the proxy refuses, written by the evaluator
  (``nexus.db.budgets``) only when it changes, read by the proxy's gate;
- the alert events a crossing raises (``nexus.alert_events``).

No database and no AWS here: the evaluator feeds spend in, the proxy reads the state document.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from nexus.access import AccessStore
from nexus.alert_events import BUDGET_EXCEEDED, BUDGET_WARNING, AlertEvent
from nexus.secret_store import SecretStore

BUDGETS_SECRET = "nexus/budgets"
BUDGET_STATE_SECRET = "nexus/budget-state"
DEFAULT_WARN_AT = 0.8
STATE_FORMAT = 1

Kind = Literal["team", "key"]
Period = Literal["monthly", "daily"]
State = Literal["ok", "warning", "over"]
KINDS: tuple[Kind, ...] = ("team", "key")


class BudgetInputError(ValueError):
    """A cap the store refuses; the message says what to fix (the CLI and the dashboard show it)."""


@dataclass(frozen=True, slots=True)
class Cap:
    monthly_usd: float
    daily_usd: float | None = None
    warn_at: float = DEFAULT_WARN_AT
    team: str | None = None  # a key's team, recorded when its cap is set (alerts go to that team)

    def limit(self, period: Period) -> float | None:
        return self.monthly_usd if period == "monthly" else self.daily_usd


@dataclass(frozen=True, slots=True)
class Budgets:
    """The caps document: ``{"teams": {T: cap}, "keys": {KEY_ID: cap}}``."""

    teams: dict[str, Cap]
    keys: dict[str, Cap]

    def of(self, kind: Kind) -> dict[str, Cap]:
        return self.teams if kind == "team" else self.keys

    def __bool__(self) -> bool:
        return bool(self.teams or self.keys)

    @classmethod
    def parse(cls, raw: str | None) -> Budgets:
        doc: dict[str, Any] = json.loads(raw) if raw else {}
        return cls(
            teams={t: Cap(**c) for t, c in (doc.get("teams") or {}).items()},
            keys={k: Cap(**c) for k, c in (doc.get("keys") or {}).items()},
        )

    def dumps(self) -> str:
        def entries(caps: dict[str, Cap]) -> dict[str, dict[str, Any]]:
            out = {}
            for name, cap in sorted(caps.items()):
                entry = asdict(cap)
                if entry["team"] is None:
                    del entry["team"]
                out[name] = entry
            return out

        return json.dumps({"teams": entries(self.teams), "keys": entries(self.keys)}, sort_keys=True)


def _positive(value: float | None, what: str) -> None:
    if value is None:
        return
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        raise BudgetInputError(f"{what} must be a number of US dollars")
    if value <= 0:
        raise BudgetInputError(f"{what} must be a positive number of US dollars, got {value:g}")


def make_cap(
    monthly_usd: float, daily_usd: float | None = None, warn_at: float | None = None, team: str | None = None
) -> Cap:
    """A validated cap: positive dollar amounts, a daily cap no larger than the monthly one, and a
    warning share strictly between 0 and 1."""
    _positive(monthly_usd, "the monthly cap")
    _positive(daily_usd, "the daily cap")
    if daily_usd is not None and daily_usd > monthly_usd:
        raise BudgetInputError(
            f"the daily cap (${daily_usd:g}) is larger than the monthly cap (${monthly_usd:g})"
        )
    warn = DEFAULT_WARN_AT if warn_at is None else warn_at
    if not isinstance(warn, int | float) or not math.isfinite(warn) or not 0 < warn < 1:
        raise BudgetInputError(f"warn-at must be a share between 0 and 1 (e.g. 0.8), got {warn!r}")
    return Cap(float(monthly_usd), None if daily_usd is None else float(daily_usd), float(warn), team)


# --- periods (UTC) -----------------------------------------------------------------------------------


def month_start(now: datetime) -> datetime:
    now = now.astimezone(UTC)
    return datetime(now.year, now.month, 1, tzinfo=UTC)


def next_month_start(now: datetime) -> datetime:
    start = month_start(now)
    return datetime(start.year + start.month // 12, start.month % 12 + 1, 1, tzinfo=UTC)


def day_start(now: datetime) -> datetime:
    now = now.astimezone(UTC)
    return datetime(now.year, now.month, now.day, tzinfo=UTC)


def period_start(period: Period, now: datetime) -> datetime:
    return month_start(now) if period == "monthly" else day_start(now)


def resets_at(period: Period, now: datetime) -> datetime:
    return next_month_start(now) if period == "monthly" else day_start(now) + timedelta(days=1)


def period_id(period: Period, now: datetime) -> str:
    """``2026-05`` for the month, ``2026-05-14`` for the day (UTC)."""
    start = period_start(period, now)
    return start.strftime("%Y-%m") if period == "monthly" else start.strftime("%Y-%m-%d")


def usd(value: float) -> str:
    """Dollars for messages: to the cent, or two significant digits below ten cents ($0.0042)."""
    return f"${value:,.2f}" if value == 0 or abs(value) >= 0.1 else f"${value:.2g}"


def iso(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- evaluation ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Spend:
    """Dollars spent in the current UTC month and day, per subject (``(kind, name)``)."""

    month: dict[tuple[Kind, str], float]
    day: dict[tuple[Kind, str], float]

    def of(self, kind: Kind, name: str, period: Period) -> float:
        return (self.month if period == "monthly" else self.day).get((kind, name), 0.0)


@dataclass(frozen=True, slots=True)
class BudgetStatus:
    kind: Kind
    name: str
    team: str | None  # the team itself, or a key's team
    period: Period
    period_id: str
    spend_usd: float
    cap_usd: float
    warn_at: float
    state: State
    resets_at: datetime

    @property
    def subject(self) -> str:
        return f"{self.kind}:{self.name}"

    @property
    def share(self) -> float:
        return self.spend_usd / self.cap_usd


def evaluate(budgets: Budgets, spend: Spend, now: datetime) -> list[BudgetStatus]:
    """One status per capped subject and period: ``over`` at or past the cap, ``warning`` at or past
    ``warn_at`` of it, else ``ok``. Sorted by kind, name, period (monthly first)."""
    out = []
    for kind in KINDS:
        for name, cap in sorted(budgets.of(kind).items()):
            for period in ("monthly", "daily"):
                limit = cap.limit(period)
                if limit is None:
                    continue
                used = spend.of(kind, name, period)
                state: State = "over" if used >= limit else "warning" if used >= cap.warn_at * limit else "ok"
                out.append(
                    BudgetStatus(
                        kind=kind,
                        name=name,
                        team=name if kind == "team" else cap.team,
                        period=period,
                        period_id=period_id(period, now),
                        spend_usd=used,
                        cap_usd=limit,
                        warn_at=cap.warn_at,
                        state=state,
                        resets_at=resets_at(period, now),
                    )
                )
    return out


# --- the state document the proxy reads ------------------------------------------------------------


def state_document(statuses: list[BudgetStatus]) -> str:
    """``nexus/budget-state``: every subject over a cap, with the numbers its refusal names. Nothing
    that changes while no cap is crossed (no evaluation time), so it is rewritten only on a change;
    spend is rounded to a hundredth of a cent for the same reason."""
    over = [
        {
            "subject": s.subject,
            "kind": s.kind,
            "name": s.name,
            "period": s.period,
            "period_id": s.period_id,
            "spend_usd": round(s.spend_usd, 4),
            "cap_usd": s.cap_usd,
            "resets_at": iso(s.resets_at),
        }
        for s in statuses
        if s.state == "over"
    ]
    return json.dumps({"format": STATE_FORMAT, "over": over}, sort_keys=True)


@dataclass(frozen=True, slots=True)
class Overrun:
    """One entry of the state document: a subject the proxy refuses until ``resets_at``."""

    kind: Kind
    name: str
    period: Period
    spend_usd: float
    cap_usd: float
    resets_at: datetime

    def message(self) -> str:
        who = f"team {self.name!r}" if self.kind == "team" else f"Nexus key {self.name}"
        which = "monthly" if self.period == "monthly" else "daily"
        return (
            f"Nexus budget exceeded: {who} has spent {usd(self.spend_usd)} of its {which} budget of "
            f"{usd(self.cap_usd)}; requests are refused until it resets at {iso(self.resets_at)} "
            "(or the cap is raised: nexus budgets set)"
        )


def parse_state(raw: str | None) -> list[Overrun]:
    doc: dict[str, Any] = json.loads(raw) if raw else {}
    return [
        Overrun(
            kind=e["kind"],
            name=e["name"],
            period=e["period"],
            spend_usd=float(e["spend_usd"]),
            cap_usd=float(e["cap_usd"]),
            resets_at=datetime.fromisoformat(e["resets_at"]),
        )
        for e in doc.get("over") or []
    ]


# --- alerts ------------------------------------------------------------------------------------------


def dedup_key(status: BudgetStatus, threshold: str) -> str:
    """One alert per subject, period, threshold and cap: a raised cap that is crossed again alerts again."""
    return f"budget:{status.subject}:{status.period}:{status.period_id}:{threshold}:{status.cap_usd:g}"


def alert_for(status: BudgetStatus, now: datetime) -> AlertEvent | None:
    """The event a status raises (None below the warning share). Over the cap: ``BUDGET_EXCEEDED``
    only (it implies the warning). The dedup window lasts until the period resets."""
    if status.state == "ok":
        return None
    exceeded = status.state == "over"
    who = f"team {status.name}" if status.kind == "team" else f"Nexus key {status.name}"
    share = f"{status.share:.0%}"
    message = (
        f"{who} reached its {status.period} budget: {usd(status.spend_usd)} of {usd(status.cap_usd)} "
        f"({share}); the proxy refuses its requests until {iso(status.resets_at)}"
        if exceeded
        else f"{who} has used {share} of its {status.period} budget: {usd(status.spend_usd)} of "
        f"{usd(status.cap_usd)} (warning at {status.warn_at:.0%}); resets {iso(status.resets_at)}"
    )
    return AlertEvent(
        kind=BUDGET_EXCEEDED if exceeded else BUDGET_WARNING,
        level="critical" if exceeded else "warning",
        team=status.team,
        subject=status.subject,
        message=message,
        dedup_key=dedup_key(status, "exceeded" if exceeded else "warning"),
        window_s=max(60, int((status.resets_at - now).total_seconds())),
        facts={
            "period": status.period,
            "period_id": status.period_id,
            "spend_usd": round(status.spend_usd, 6),
            "cap_usd": status.cap_usd,
            "warn_at": status.warn_at,
            "resets_at": iso(status.resets_at),
        },
    )


# --- the caps in the SecretStore -----------------------------------------------------------------


class BudgetStore:
    """Reads and writes the caps document. Setting or clearing a cap also drops, from the state
    document, a refusal the new cap no longer justifies, so a raised cap applies at the proxies' next
    check instead of at the next evaluation (which needs traffic or the local timer)."""

    def __init__(self, store: SecretStore) -> None:
        self.store = store

    def load(self) -> Budgets:
        return Budgets.parse(self.store.get(BUDGETS_SECRET))

    def set_cap(
        self,
        kind: Kind,
        name: str,
        monthly_usd: float,
        daily_usd: float | None = None,
        warn_at: float | None = None,
    ) -> Cap:
        """Validate and store a cap: the team or the (unrevoked) key must exist in the access store."""
        access = AccessStore(self.store)
        team = None
        if kind == "team":
            if name not in access.teams():
                raise BudgetInputError(f"no team {name!r} (see: nexus teams list)")
        else:
            rec = access.keys().get(name)
            if rec is None:
                raise BudgetInputError(f"no key with id {name!r} (see: nexus keys list)")
            if rec.revoked_at:
                raise BudgetInputError(f"key {name} is revoked: it cannot spend anything")
            team = rec.team
        cap = make_cap(monthly_usd, daily_usd, warn_at, team)
        self.set(kind, name, cap)
        return cap

    def set(self, kind: Kind, name: str, cap: Cap) -> Budgets:
        budgets = self.load()
        budgets.of(kind)[name] = cap
        self.store.put(BUDGETS_SECRET, budgets.dumps())
        self._lift(kind, name, cap)
        return budgets

    def clear(self, kind: Kind, name: str) -> Cap:
        budgets = self.load()
        cap = budgets.of(kind).pop(name, None)
        if cap is None:
            raise BudgetInputError(f"{kind} {name!r} has no budget (see: nexus budgets list)")
        self.store.put(BUDGETS_SECRET, budgets.dumps())
        self._lift(kind, name, None)
        return cap

    def overruns(self) -> list[Overrun]:
        return parse_state(self.store.get(BUDGET_STATE_SECRET))

    def _lift(self, kind: Kind, name: str, cap: Cap | None) -> None:
        raw = self.store.get(BUDGET_STATE_SECRET)
        if not raw:
            return
        doc = json.loads(raw)
        kept = []
        for e in doc.get("over") or []:
            if e["kind"] == kind and e["name"] == name:
                limit = cap.limit(e["period"]) if cap else None
                if limit is None or e["spend_usd"] < limit:
                    continue
                e = {**e, "cap_usd": limit}
            kept.append(e)
        if kept != doc.get("over"):
            self.store.put(BUDGET_STATE_SECRET, json.dumps({**doc, "over": kept}, sort_keys=True))
