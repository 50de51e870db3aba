"""The overview's read model: totals and activity for a period, and the conversations list."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any, cast

import psycopg
from psycopg.rows import dict_row

from nexus_dashboard.filters import PAGE_SIZE, Filters
from nexus_dashboard.queries import CONVERSATION_FIELDS, where, with_window
from nexus_dashboard.schemas import Activity, Choices, ConversationSummary, Overview, Totals, UsageSums
from nexus_dashboard.scope import Scope

TOKEN_SUMS = (
    "coalesce(sum(input_tokens), 0)::bigint AS input_tokens,"
    " coalesce(sum(output_tokens), 0)::bigint AS output_tokens,"
    " coalesce(sum(cache_creation_input_tokens), 0)::bigint AS cache_creation_input_tokens,"
    " coalesce(sum(cache_read_input_tokens), 0)::bigint AS cache_read_input_tokens,"
    " coalesce(sum(cost_usd), 0)::float8 AS cost_usd"
)
# Sums over usage_hourly (migration 0003), the rollup ingest maintains: whole hours of the period.
USAGE_SUMS = f"coalesce(sum(requests), 0)::bigint AS requests, {TOKEN_SUMS}"


SEARCH_COUNT_CAP = 500


def usage_where(f: Filters, *extra: tuple[str, Any]) -> tuple[str, list[Any]]:
    return where(
        [
            ("hour >= %s", f.since_hour),
            ("team = %s", f.team),
            ("user_id = %s", f.user),
            ("model = %s", f.model),
            *extra,
        ],
        scope=f.scope,
    )


def _conversation_where(f: Filters) -> tuple[str, list[Any]]:
    return where(
        [
            ("team = %s", f.team),
            ("user_id = %s", f.user),
            ("%s = ANY(models)", f.model),
            ("last_at >= %s", f.since),
            (
                "id IN (SELECT conversation_id FROM conversation_text"
                " WHERE tsv @@ websearch_to_tsquery('english', %s))",
                f.q,
            ),
            ("id IN (SELECT conversation_id FROM conversation_analysis WHERE outcome = %s)", f.outcome),
            (
                "id IN (SELECT conversation_id FROM conversation_analysis WHERE lowest_score <= %s)",
                f.max_score,
            ),
        ],
        scope=f.scope,
    )


def totals(conn: psycopg.Connection, f: Filters) -> Totals:
    w, args = usage_where(f)
    cw, cargs = _conversation_where(replace(f, q=None, outcome=None, max_score=None))
    sql = (
        f"SELECT {USAGE_SUMS}, count(DISTINCT user_id) AS active_users,"
        " coalesce(sum(errors), 0)::bigint AS errors,"
        f" (SELECT count(*) FROM conversations{cw}) AS conversations FROM usage_hourly{w}"
    )
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(sql, [*cargs, *args]).fetchone()
    assert row is not None
    # The SELECT list is Totals' but for the ratio, set here (FastAPI checks the shape at runtime).
    sums = cast(Totals, row)
    sums["cache_hit_ratio"] = cache_hit_ratio(sums)
    return sums


def cache_hit_ratio(sums: UsageSums) -> float | None:
    """Share of prompt tokens served from the cache."""
    prompt = sums["input_tokens"] + sums["cache_creation_input_tokens"] + sums["cache_read_input_tokens"]
    return round(sums["cache_read_input_tokens"] / prompt, 4) if prompt else None


def activity(conn: psycopg.Connection, f: Filters) -> list[Activity]:
    """Requests, tokens and cost per hour or day of the period, oldest first."""
    w, args = usage_where(f)
    sql = (
        f"SELECT date_trunc('{f.bucket}', hour) AS at, {USAGE_SUMS}"
        f" FROM usage_hourly{w} GROUP BY 1 ORDER BY 1"
    )
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(sql, args).fetchall()
    return cast(list[Activity], rows)  # the SELECT list is Activity's (FastAPI checks it at runtime)


@dataclass(frozen=True, slots=True)
class ConversationPage:
    rows: list[ConversationSummary]
    total: int  # at most SEARCH_COUNT_CAP when ``capped``
    capped: bool  # a search matched more than SEARCH_COUNT_CAP conversations


def conversations(
    conn: psycopg.Connection, f: Filters, limit: int = PAGE_SIZE, offset: int | None = None
) -> ConversationPage:
    """One page of conversations active in the period (newest activity first), and how many match:
    with a search, counted up to ``SEARCH_COUNT_CAP`` + 1 (a common word matches most conversations,
    and counting them all would cost more than the page; the caller shows "1,000+")."""
    w, args = _conversation_where(f)
    count = f"SELECT 1 FROM conversations{w}"
    if f.q:
        count += f" LIMIT {SEARCH_COUNT_CAP + 1}"
    with conn.cursor(row_factory=dict_row) as cur:
        total = cur.execute(f"SELECT count(*) AS n FROM ({count}) matched", args).fetchone()
        rows = cur.execute(
            f"SELECT {CONVERSATION_FIELDS} FROM conversations{w}"
            " ORDER BY last_at DESC, id DESC LIMIT %s OFFSET %s",
            [*args, limit, f.offset if offset is None else offset],
        ).fetchall()
    n = int(total["n"]) if total else 0
    capped = bool(f.q) and n > SEARCH_COUNT_CAP
    return ConversationPage([with_window(c) for c in rows], SEARCH_COUNT_CAP if capped else n, capped)


CHOICES_TTL_S = 60.0
_choices: dict[str, tuple[float, Choices]] = {}


def choices(conn: psycopg.Connection, scope: Scope) -> Choices:
    """Values the filter menus offer: teams, users and models seen in the conversations ``scope``
    may read. Kept for a minute per database and scope: the query scans every conversation, and a
    new team can wait that long."""
    key = f"{conn.info.dsn}\x1e{scope.key()}"
    cached = _choices.get(key)
    if cached and time.monotonic() - cached[0] < CHOICES_TTL_S:
        return cached[1]
    cond, args = scope.sql()
    row = conn.execute(
        "SELECT (SELECT array_agg(DISTINCT team ORDER BY team) FROM conversations"
        f" WHERE team IS NOT NULL AND {cond}),"
        " (SELECT array_agg(DISTINCT user_id ORDER BY user_id) FROM conversations"
        f" WHERE user_id IS NOT NULL AND {cond}),"
        f" (SELECT array_agg(DISTINCT m ORDER BY m) FROM conversations, unnest(models) m WHERE {cond})",
        args * 3,
    ).fetchone()
    teams, users, models = row or (None, None, None)
    found: Choices = {"teams": teams or [], "users": users or [], "models": models or []}
    _choices[key] = (time.monotonic(), found)
    return found


def overview_data(conn: psycopg.Connection, f: Filters) -> Overview:
    """The overview page and its JSON twin: totals, activity and one page of conversations."""
    listed = conversations(conn, f)
    return {
        "period": f.period,
        "since": f.since,
        "totals": totals(conn, f),
        "bucket": f.bucket,
        "activity": activity(conn, f),
        "conversations": listed.rows,
        "conversation_total": listed.total,
        "conversation_total_capped": listed.capped,
        "page": f.page,
        "page_size": PAGE_SIZE,
        "choices": choices(conn, f.scope),
    }
