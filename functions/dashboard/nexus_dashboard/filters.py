"""The filters every list, chart and total shares: period, team, user, model, search, page.

Declared once as a FastAPI dependency so pages and their JSON twins accept the same query string and
reject a bad one the same way (400 with the field and what it accepts).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

from fastapi import Depends, Query

Period = Literal["24h", "7d", "30d", "90d", "all"]
PERIODS: dict[str, timedelta | None] = {
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
    "90d": timedelta(days=90),
    "all": None,
}
PAGE_SIZE = 50


@dataclass(frozen=True, slots=True)
class Filters:
    period: str
    team: str | None
    user: str | None
    model: str | None
    q: str | None
    page: int
    now: datetime

    @property
    def since(self) -> datetime | None:
        span = PERIODS[self.period]
        return self.now - span if span else None

    @property
    def since_hour(self) -> datetime | None:
        """The period's start on the hour: totals and charts read hourly rollups."""
        since = self.since
        return since.replace(minute=0, second=0, microsecond=0) if since else None

    @property
    def bucket(self) -> str:
        """Chart resolution that keeps a period readable: hours for a day, days beyond."""
        return "hour" if self.period == "24h" else "day"

    @property
    def offset(self) -> int:
        return (self.page - 1) * PAGE_SIZE

    def query(self, **changes: object) -> dict[str, str]:
        """These filters as query parameters (for links), with ``changes`` applied; unset ones dropped."""
        base: dict[str, object] = {
            "period": self.period,
            "team": self.team,
            "user": self.user,
            "model": self.model,
            "q": self.q,
            "page": self.page if self.page > 1 else None,
        }
        base.update(changes)
        return {k: str(v) for k, v in base.items() if v not in (None, "")}


def _blank_to_none(value: str | None) -> str | None:
    value = value.strip() if value else value
    return value or None


def filters(
    period: Annotated[Period, Query(description="time window ending now")] = "30d",
    team: Annotated[str | None, Query(max_length=200)] = None,
    user: Annotated[str | None, Query(max_length=200)] = None,
    model: Annotated[str | None, Query(max_length=200)] = None,
    q: Annotated[
        str | None, Query(max_length=500, description="full-text search of prompts and answers")
    ] = None,
    page: Annotated[int, Query(ge=1, le=10_000)] = 1,
) -> Filters:
    return Filters(
        period=period,
        team=_blank_to_none(team),
        user=_blank_to_none(user),
        model=_blank_to_none(model),
        q=_blank_to_none(q),
        page=page,
        now=datetime.now(UTC),
    )


ListFilters = Annotated[Filters, Depends(filters)]
