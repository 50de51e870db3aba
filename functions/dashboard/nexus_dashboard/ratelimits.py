"""Rate-limit read model: per upstream account (a fingerprint of its credential), the latest
``anthropic-ratelimit-*`` readings and their history.

Subscription accounts report unified 5-hour and 7-day utilisation; API-key accounts report
remaining/limit pairs, shown as the share used. Values that are not numbers are kept as text (and
are NULL in the hourly rollup): one odd header must not break the page.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

import psycopg
from psycopg.rows import dict_row

from nexus_dashboard.filters import Filters
from nexus_dashboard.schemas import Account, RateLimitPoint, RateLimits, Reading, Window

P = "anthropic-ratelimit-"
WARN_UTILISATION = 0.8
WINDOWS = (("5h", "5-hour"), ("7d", "7-day"))
API_LIMITS = ("requests", "tokens", "input-tokens", "output-tokens")


def _float(v: Any) -> float | None:
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def _reset(v: Any) -> datetime | str | None:
    """Reset times come as epoch seconds (unified) or RFC 3339 (API keys); anything else as sent."""
    n = _float(v)
    if n is not None and n > 1e9:
        return datetime.fromtimestamp(n, UTC)
    try:
        return datetime.fromisoformat(str(v)) if v else None
    except ValueError:
        return str(v)


def reading(rl: dict[str, str]) -> Reading:
    """One response's headers as numbers: utilisation per window, status, resets."""
    status = rl.get(P + "unified-status")
    windows: list[Window] = []
    for w, label in WINDOWS:
        u = _float(rl.get(f"{P}unified-{w}-utilization"))
        if u is not None or rl.get(f"{P}unified-{w}-reset"):
            windows.append(
                {
                    "window": w,
                    "label": label,
                    "utilization": u,
                    "reset": _reset(rl.get(f"{P}unified-{w}-reset")),
                }
            )
    for kind in API_LIMITS:
        limit, left = _float(rl.get(f"{P}{kind}-limit")), _float(rl.get(f"{P}{kind}-remaining"))
        if limit:
            windows.append(
                {
                    "window": kind,
                    "label": f"{kind} per minute",
                    "utilization": round(1 - (left or 0) / limit, 4),
                    "reset": _reset(rl.get(f"{P}{kind}-reset")),
                    "limit": limit,
                    "remaining": left,
                }
            )
    util = [w["utilization"] for w in windows if w["utilization"] is not None]
    warning = status in ("allowed_warning", "rejected") or any(u >= WARN_UTILISATION for u in util)
    return {"status": status, "windows": windows, "warning": warning, "headers": rl}


def ratelimits(conn: psycopg.Connection, f: Filters) -> RateLimits:
    """Read from the rollups ingest maintains (migration 0003): the latest reading per account, its
    hourly peaks, and the account's requests from the usage rollup. A caller scoped to some teams sees
    the accounts those teams' requests went through, with those teams' requests only."""
    since = f.since_hour
    cond, scope_args = f.scope.sql()
    with conn.cursor(row_factory=dict_row) as cur:
        latest = cur.execute(
            "SELECT account, received_at, status, ratelimit FROM ratelimit_latest ORDER BY account"
        ).fetchall()
        stats = {
            r["account"]: r
            for r in cur.execute(
                "SELECT account, sum(requests)::bigint AS requests,"
                " sum(rate_limited)::bigint AS rejected_429,"
                " array_agg(DISTINCT team) FILTER (WHERE team IS NOT NULL) AS teams,"
                " array_agg(DISTINCT user_id) FILTER (WHERE user_id IS NOT NULL) AS users"
                " FROM usage_hourly WHERE account IS NOT NULL AND (%s::timestamptz IS NULL OR hour >= %s)"
                f" AND {cond} GROUP BY account",
                (since, since, *scope_args),
            ).fetchall()
        }
        history: dict[str, list[RateLimitPoint]] = {}
        for h in cur.execute(
            "SELECT account, hour AS at, u5h, u7d, tokens, requests FROM ratelimit_hourly"
            " WHERE %s::timestamptz IS NULL OR hour >= %s ORDER BY account, hour",
            (since, since),
        ):
            # Less its account, the row is a RateLimitPoint (FastAPI checks the shape at runtime).
            history.setdefault(h.pop("account"), []).append(cast(RateLimitPoint, h))
    accounts: list[Account] = []
    if not f.scope.everything:  # the accounts these teams used: any time, as the unscoped list shows
        used = {
            r[0] for r in conn.execute(f"SELECT DISTINCT account FROM usage_hourly WHERE {cond}", scope_args)
        }
        latest = [row for row in latest if row["account"] in used]
    for row in latest:
        s = stats.get(row["account"], {})
        accounts.append(
            {
                "account": row["account"],
                "at": row["received_at"],
                "latest": reading(row["ratelimit"]),
                "requests": s.get("requests", 0),
                "rejected_429": s.get("rejected_429", 0),
                "teams": s.get("teams") or [],
                "users": s.get("users") or [],
                "history": history.get(row["account"], []),
            }
        )
    accounts.sort(key=lambda a: (not a["latest"]["warning"], a["account"]))
    return {"accounts": accounts, "warn_at": WARN_UTILISATION}
