"""The filters every list, chart and total shares: period, team, user, model, search, page; and the
value types every other query parameter uses.

Declared once as a FastAPI dependency so pages and their JSON twins accept the same query string and
reject a bad one the same way (400 with the field and what it accepts). What the database cannot take
is refused here, before any query: PostgreSQL text cannot hold NUL, and numbers stop at bigint.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

from fastapi import Depends, Query
from pydantic import AfterValidator, BeforeValidator, Field
from pydantic_core import PydanticCustomError

from nexus_dashboard.scope import Scope, caller_scope

Period = Literal["24h", "7d", "30d", "90d", "all"]
Outcome = Literal["resolved", "partly", "not", "abandoned"]
Bucket = Literal["day", "hour"]  # a chart's resolution
PERIODS: dict[str, timedelta | None] = {
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
    "90d": timedelta(days=90),
    "all": None,
}
PAGE_SIZE = 50
BIGINT_MAX = 2**63 - 1  # the largest OFFSET (or any integer) PostgreSQL accepts

# No control characters in text filters: NUL cannot be sent to PostgreSQL at all, and none of them
# (C0, DEL, C1) belongs in a team, user, model, branch or search. The pattern documents the rule in
# the OpenAPI schema; it is spelled out, not written with classes like \s that JSON Schema (ECMA-262)
# and Python read differently.
CONTROL_CHARS = r"\x00-\x1f\x7f-\x9f"
_CONTROL = re.compile(f"[{CONTROL_CHARS}]")
PRINTABLE_PATTERN = f"^[^{CONTROL_CHARS}]*$"


def _printable(value: str) -> str:
    if _CONTROL.search(value):
        raise PydanticCustomError(
            "control_characters", "must not contain control characters (U+0000-U+001F, U+007F-U+009F)"
        )
    return value


_NO_CONTROL = AfterValidator(_printable)
_DOCUMENTED = {"pattern": PRINTABLE_PATTERN}

# Text parameter types: at most so many characters, no control characters. Name: a team, user, model
# or session id.
Name = Annotated[str, Field(max_length=200, json_schema_extra=_DOCUMENTED), _NO_CONTROL]
BranchName = Annotated[str, Field(max_length=100, json_schema_extra=_DOCUMENTED), _NO_CONTROL]
SearchText = Annotated[str, Field(max_length=500, json_schema_extra=_DOCUMENTED), _NO_CONTROL]


# RFC 3339 (what OpenAPI's date-time format means): a date, a time and an offset. Bare numbers are
# refused rather than read as epoch seconds, and so are times before 1970 (nothing was recorded then;
# a negative "since" is a mistake, not a request for everything).
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})")
SINCE_PATTERN = r"^(19[7-9][0-9]|[2-9][0-9]{3})-"
_SINCE_RULE = "must be an RFC 3339 date-time from 1970 on, with an offset, such as 2025-01-31T09:00:00Z"


def _rfc3339(value: object) -> datetime:
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not _RFC3339.fullmatch(value):
        raise PydanticCustomError("rfc3339", _SINCE_RULE)
    try:
        parsed = datetime.fromisoformat(value.upper())
    except ValueError:
        raise PydanticCustomError("rfc3339", _SINCE_RULE) from None
    if parsed.year < 1970:
        raise PydanticCustomError("rfc3339", _SINCE_RULE)
    return parsed


Timestamp = Annotated[
    datetime, BeforeValidator(_rfc3339), Field(json_schema_extra={"pattern": SINCE_PATTERN})
]


@dataclass(frozen=True, slots=True)
class Filters:
    period: Period
    team: str | None
    user: str | None
    model: str | None
    q: str | None
    page: int
    now: datetime
    scope: Scope  # the teams the caller may read (scope.py): every query narrows to them
    outcome: Outcome | None = None  # conversations whose newest analysis says so
    max_score: int | None = None  # ... whose newest analysis scored this or lower somewhere

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
    def bucket(self) -> Bucket:
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
            "outcome": self.outcome,
            "max_score": self.max_score,
        }
        base.update(changes)
        return {k: str(v) for k, v in base.items() if v not in (None, "")}


def _blank_to_none(value: str | None) -> str | None:
    value = value.strip() if value else value
    return value or None


def filters(
    caller: Annotated[Scope, Depends(caller_scope)],
    period: Annotated[Period, Query(description="time window ending now")] = "30d",
    team: Annotated[Name | None, Query()] = None,
    user: Annotated[Name | None, Query()] = None,
    model: Annotated[Name | None, Query()] = None,
    q: Annotated[SearchText | None, Query(description="full-text search of prompts and answers")] = None,
    page: Annotated[int, Query(ge=1, le=10_000)] = 1,
    outcome: Annotated[
        Outcome | Literal[""] | None, Query(description="the newest analysis's outcome (blank: any)")
    ] = None,
    max_score: Annotated[
        Literal["", "1", "2", "3", "4", "5"] | None,
        Query(description="the newest analysis has a score at most this, 1-5 (blank: any)"),
    ] = None,
) -> Filters:
    return Filters(
        period=period,
        team=_blank_to_none(team),
        user=_blank_to_none(user),
        model=_blank_to_none(model),
        q=_blank_to_none(q),
        page=page,
        now=datetime.now(UTC),
        scope=caller,
        outcome=outcome or None,  # a form's "any" sends it empty
        max_score=int(max_score) if max_score else None,
    )


ListFilters = Annotated[Filters, Depends(filters)]
