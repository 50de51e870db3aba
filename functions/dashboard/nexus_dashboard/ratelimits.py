"""Rate-limit read model: per upstream account (a fingerprint of its credential), the latest
``anthropic-ratelimit-*`` readings and their history.

Subscription accounts report unified 5-hour and 7-day utilisation; API-key accounts report
remaining/limit pairs, shown as the share used. Values that are not numbers are kept as text, never
cast in SQL (one odd header must not break the page).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

from nexus_dashboard.filters import Filters

P = "anthropic-ratelimit-"
WARN_UTILISATION = 0.8
WINDOWS = (("5h", "5-hour"), ("7d", "7-day"))
API_LIMITS = ("requests", "tokens", "input-tokens", "output-tokens")


def _num(key: str) -> str:
    v = f"(ratelimit->>'{key}')"
    return f"CASE WHEN {v} ~ '^[0-9]+(\\.[0-9]+)?$' THEN {v}::float8 END"


def _used(kind: str) -> str:
    return f"1 - {_num(P + kind + '-remaining')} / nullif({_num(P + kind + '-limit')}, 0)"


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


def reading(rl: dict[str, str]) -> dict[str, Any]:
    """One response's headers as numbers: utilisation per window, status, resets."""
    out: dict[str, Any] = {"status": rl.get(P + "unified-status"), "windows": []}
    for w, label in WINDOWS:
        u = _float(rl.get(f"{P}unified-{w}-utilization"))
        if u is not None or rl.get(f"{P}unified-{w}-reset"):
            out["windows"].append(
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
            out["windows"].append(
                {
                    "window": kind,
                    "label": f"{kind} per minute",
                    "utilization": round(1 - (left or 0) / limit, 4),
                    "reset": _reset(rl.get(f"{P}{kind}-reset")),
                    "limit": limit,
                    "remaining": left,
                }
            )
    util = [w["utilization"] for w in out["windows"] if w["utilization"] is not None]
    out["warning"] = out["status"] in ("allowed_warning", "rejected") or any(
        u >= WARN_UTILISATION for u in util
    )
    out["headers"] = rl
    return out


def ratelimits(conn: psycopg.Connection, f: Filters) -> dict[str, Any]:
    since = f.since
    with conn.cursor(row_factory=dict_row) as cur:
        latest = cur.execute(
            "SELECT DISTINCT ON (account) account, received_at, status, ratelimit FROM requests"
            " WHERE ratelimit IS NOT NULL AND account IS NOT NULL ORDER BY account, received_at DESC"
        ).fetchall()
        stats = {
            r["account"]: r
            for r in cur.execute(
                "SELECT account, count(*) AS requests, count(*) FILTER (WHERE status = 429) AS rejected_429,"
                " array_agg(DISTINCT team) FILTER (WHERE team IS NOT NULL) AS teams,"
                " array_agg(DISTINCT user_id) FILTER (WHERE user_id IS NOT NULL) AS users"
                " FROM requests WHERE account IS NOT NULL AND (%s::timestamptz IS NULL OR received_at >= %s)"
                " GROUP BY account",
                (since, since),
            ).fetchall()
        }
        history = cur.execute(
            "SELECT account, date_trunc('hour', received_at) AS at,"
            f" max({_num(P + 'unified-5h-utilization')}) AS u5h,"
            f" max({_num(P + 'unified-7d-utilization')}) AS u7d,"
            f" max({_used('tokens')}) AS tokens, max({_used('requests')}) AS requests"
            " FROM requests WHERE ratelimit IS NOT NULL AND account IS NOT NULL"
            " AND (%s::timestamptz IS NULL OR received_at >= %s) GROUP BY 1, 2 ORDER BY 1, 2",
            (since, since),
        ).fetchall()
    accounts = []
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
                "history": [
                    {k: h[k] for k in ("at", "u5h", "u7d", "tokens", "requests")}
                    for h in history
                    if h["account"] == row["account"]
                ],
            }
        )
    accounts.sort(key=lambda a: (not a["latest"]["warning"], a["account"]))
    return {"accounts": accounts, "warn_at": WARN_UTILISATION}
