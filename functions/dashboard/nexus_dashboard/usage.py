"""Usage read model: tokens and cost per hour or day, split by team, user or model."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any, Literal, TypedDict, cast

import psycopg
from fastapi import HTTPException, Query
from psycopg.rows import dict_row

from nexus_dashboard.filters import Bucket, Filters
from nexus_dashboard.overview import USAGE_SUMS, cache_hit_ratio, usage_where
from nexus_dashboard.schemas import Group, Usage, UsageGroup, UsageRow

COLUMNS = {"model": "model", "team": "team", "user": "user_id"}
TokenKey = Literal["input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"]
Measure = Literal["requests", TokenKey, "cost_usd"]  # a number a usage row sums
TOKEN_KEYS: tuple[TokenKey, ...] = (
    "input_tokens",
    "output_tokens",
    "cache_creation_input_tokens",
    "cache_read_input_tokens",
)
TOKEN_NAMES = ("input", "output", "cache write", "cache read")
CHART_SERIES = 7  # the biggest groups by cost get a colour each; the rest are summed as "other"
HOURLY_MAX_PERIODS = frozenset({"24h", "7d"})
BucketParam = Annotated[
    Bucket | None,
    Query(description="`hour` (only with period=24h or 7d; 400 otherwise) or `day`; default: hour for 24h"),
]


class UsageError(ValueError):
    """A combination of parameters the usage view cannot show; the message says which."""


class TokenRow(TypedDict):
    """Tokens by kind in one hour or day, all groups together (a chart's row)."""

    at: datetime
    input_tokens: int
    output_tokens: int
    cache_creation_input_tokens: int
    cache_read_input_tokens: int


def usage(conn: psycopg.Connection, f: Filters, group: Group, bucket: Bucket) -> Usage:
    if bucket == "hour" and f.period not in HOURLY_MAX_PERIODS:
        raise UsageError("bucket=hour is available for period=24h or 7d; pick one, or use bucket=day")
    w, args = usage_where(f)
    col = COLUMNS[group]
    with conn.cursor(row_factory=dict_row) as cur:
        found = cur.execute(
            f"SELECT date_trunc('{bucket}', hour) AS at, coalesce({col}, '(none)') AS key,"
            f" {USAGE_SUMS} FROM usage_hourly{w} GROUP BY 1, 2 ORDER BY 1, 2",
            args,
        ).fetchall()
    rows = cast(list[UsageRow], found)  # the SELECT list is UsageRow's (FastAPI checks it at runtime)
    groups: dict[str, UsageGroup] = {}
    for r in rows:
        g = groups.setdefault(
            r["key"],
            {
                "key": r["key"],
                "requests": 0,
                "cost_usd": 0.0,
                "input_tokens": 0,
                "output_tokens": 0,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
                "cache_hit_ratio": None,  # once the sums are in
            },
        )
        g["requests"] += r["requests"]
        g["cost_usd"] += r["cost_usd"]
        for k in TOKEN_KEYS:
            g[k] += r[k]
    ranked = sorted(groups.values(), key=lambda g: (-g["cost_usd"], -g["requests"], g["key"]))
    for g in ranked:
        g["cache_hit_ratio"] = cache_hit_ratio(g)
    return {"group": group, "bucket": bucket, "rows": rows, "groups": ranked}


def usage_data(conn: psycopg.Connection, f: Filters, group: Group, bucket: Bucket | None) -> Usage:
    """The usage page and its JSON twin: ``bucket`` defaults to the period's; 400 for a combination
    the view cannot show."""
    try:
        return usage(conn, f, group, bucket or f.bucket)
    except UsageError as exc:
        raise HTTPException(400, str(exc)) from None


def chart_rows(rows: Sequence[UsageRow], series: list[str], value: Measure) -> list[dict[str, Any]]:
    """Long rows pivoted to one row per bucket (``at``) with a column per series (others summed)."""
    wanted = set(series[:-1]) if series and series[-1] == "other" else set(series)
    out: dict[datetime, dict[str, Any]] = {}
    for r in rows:
        row = out.setdefault(r["at"], {"at": r["at"]})
        key = r["key"] if r["key"] in wanted else "other"
        row[key] = row.get(key, 0) + r[value]
    return list(out.values())


def series_names(groups: list[UsageGroup]) -> list[str]:
    names = [g["key"] for g in groups[:CHART_SERIES]]
    return [*names, "other"] if len(groups) > CHART_SERIES else names


def token_rows(rows: Sequence[UsageRow]) -> list[TokenRow]:
    """Tokens by kind per bucket, all groups together."""
    out: dict[datetime, TokenRow] = {}
    for r in rows:
        row = out.setdefault(
            r["at"],
            {
                "at": r["at"],
                "input_tokens": 0,
                "output_tokens": 0,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
            },
        )
        for k in TOKEN_KEYS:
            row[k] += r[k]
    return list(out.values())


def to_csv(data: Usage) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow([data["bucket"], data["group"], "requests", *TOKEN_KEYS, "cost_usd"])
    for r in data["rows"]:
        w.writerow(
            [
                r["at"].isoformat(),
                r["key"],
                r["requests"],
                *(r[k] for k in TOKEN_KEYS),
                f"{r['cost_usd']:.6f}",
            ]
        )
    return buf.getvalue()
