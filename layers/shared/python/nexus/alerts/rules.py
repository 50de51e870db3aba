"""When stored requests raise an alert (pure: rows and numbers in, ``AlertEvent``s out).

Rate limits come from the unified headers of subscription accounts, as ``nexus.derive`` keeps them in
the row's ``ratelimit``: ``anthropic-ratelimit-unified-status`` (``allowed``, ``allowed_warning``,
``rejected``), ``-unified-5h-utilization`` / ``-unified-7d-utilization`` (0..1) and their ``-reset``
times (epoch seconds), plus ``-unified-reset`` for the limit that applies now.

One alert per crossing: a utilisation alert's dedup key names the team, the account, the window and
the window's reset time, so the same window crossing again is one alert, and the next window's
crossing is a new one. Error rates are judged over a recent window per team (ingest counts it with
one query, only for teams whose batch held a failure).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from nexus.alert_events import ERROR_RATE, RATE_LIMIT, AlertEvent
from nexus.alerts.config import TeamAlerts

P = "anthropic-ratelimit-unified-"
WINDOWS = {"5h": ("5-hour", 5 * 3600), "7d": ("7-day", 7 * 86400)}
REJECTED_WINDOW_S = 3600  # without a reset time, a rejection is alerted at most hourly


def _float(v: Any) -> float | None:
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def _ratelimit(row: dict[str, Any]) -> dict[str, str]:
    rl = row.get("ratelimit")
    if isinstance(rl, str | bytes):
        rl = orjson.loads(rl)
    return rl if isinstance(rl, dict) else {}


def _when(epoch: str | None) -> str:
    n = _float(epoch)
    if n is None or n < 1e9:
        return ""
    return datetime.fromtimestamp(n, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _who(team: str | None) -> str:
    return f"team {team}" if team is not None else "requests without a team"


def is_failure(row: dict[str, Any]) -> bool:
    """An answer that counts towards the error rate: a 5xx (the proxy's own 502/504 included, and
    529 overloaded) or a 429 from upstream (the proxy's own 429s, e.g. a budget refusal, carry no
    upstream headers and are not upstream failures)."""
    status = row.get("status")
    if status is None:
        return False
    if status >= 500:
        return True
    return bool(status == 429 and row.get("response_headers") not in (None, "[]", []))


def rate_limit_events(
    rows: Iterable[dict[str, Any]], team_conf: Callable[[str | None], TeamAlerts]
) -> list[AlertEvent]:
    """Events for rows whose unified utilisation reached the team's threshold, or were rejected.
    One event per dedup key (the highest reading wins)."""
    found: dict[str, AlertEvent] = {}
    for row in rows:
        rl = _ratelimit(row)
        if not any(k.startswith(P) for k in rl):
            continue
        team, account = row.get("team"), row.get("account") or "unknown"
        conf = team_conf(team)
        if not conf.wants(RATE_LIMIT):
            continue
        subject = f"team:{team}" if team is not None else f"account:{account}"
        status = rl.get(P + "status")
        if status == "rejected":
            reset = rl.get(P + "reset") or max(
                (rl.get(f"{P}{w}-reset") or "" for w in WINDOWS), key=lambda v: _float(v) or 0
            )
            key = f"{RATE_LIMIT}:{team or '-'}:{account}:rejected:{reset}"
            until = _when(reset)
            found.setdefault(
                key,
                AlertEvent(
                    kind=RATE_LIMIT,
                    level="critical",
                    team=team,
                    subject=subject,
                    message=f"Anthropic is rejecting requests of {_who(team)} on account {account}: "
                    f"the unified rate limit is reached" + (f" until {until}." if until else "."),
                    dedup_key=key,
                    window_s=WINDOWS["5h"][1] if reset else REJECTED_WINDOW_S,
                    facts={
                        "account": account,
                        "status": status,
                        "reset": reset or None,
                        "representative_claim": rl.get(P + "representative-claim"),
                        "request_id": row.get("id"),
                    },
                ),
            )
            continue
        for w, (label, window_s) in WINDOWS.items():
            u = _float(rl.get(f"{P}{w}-utilization"))
            if u is None or u < conf.rate_limit_threshold:
                continue
            reset = rl.get(f"{P}{w}-reset") or ""
            key = f"{RATE_LIMIT}:{team or '-'}:{account}:{w}:{reset}"
            if key in found and (found[key].facts.get("utilization") or 0) >= u:
                continue
            until = _when(reset)
            found[key] = AlertEvent(
                kind=RATE_LIMIT,
                level="warning",
                team=team,
                subject=subject,
                message=f"{_who(team).capitalize()} has used {u:.0%} of the {label} rate limit of "
                f"account {account} (alert at {conf.rate_limit_threshold:.0%})"
                + (f"; it resets {until}." if until else "."),
                dedup_key=key,
                window_s=window_s,
                facts={
                    "account": account,
                    "window": w,
                    "utilization": u,
                    "threshold": conf.rate_limit_threshold,
                    "status": status,
                    "reset": reset or None,
                    "request_id": row.get("id"),
                },
            )
    return list(found.values())


@dataclass(frozen=True)
class ErrorWindow:
    """What ingest asks the database: per team, the teams' requests in the window ending at ``until``."""

    teams: dict[str | None, int]  # team -> window in seconds (the team's setting)
    until: datetime


def error_rate_window(
    rows: Iterable[dict[str, Any]], team_conf: Callable[[str | None], TeamAlerts]
) -> ErrorWindow | None:
    """The teams worth counting: those with a failure in this batch (no failure, no query)."""
    teams: dict[str | None, int] = {}
    until: datetime | None = None
    for row in rows:
        if not is_failure(row):
            continue
        conf = team_conf(row.get("team"))
        if not conf.wants(ERROR_RATE):
            continue
        teams[row.get("team")] = conf.error_rate_window_s
        at = row.get("received_at")
        if isinstance(at, datetime) and (until is None or at > until):
            until = at
    if not teams or until is None:
        return None
    return ErrorWindow(teams, until)


def error_rate_event(
    team: str | None, requests: int, failures: int, conf: TeamAlerts, until: datetime
) -> AlertEvent | None:
    """An event when failures reach the team's share of at least its minimum number of requests."""
    if requests < conf.error_rate_min_requests or requests == 0:
        return None
    share = failures / requests
    if share < conf.error_rate_share:
        return None
    minutes = conf.error_rate_window_s // 60
    return AlertEvent(
        kind=ERROR_RATE,
        level="critical" if share >= 0.5 else "warning",
        team=team,
        subject=f"team:{team}" if team is not None else "stage",
        message=f"{failures} of the last {requests} requests of {_who(team)} failed ({share:.0%}) in "
        f"{minutes} minutes: 5xx, 529 overloaded or 429 answers (alert at "
        f"{conf.error_rate_share:.0%} of at least {conf.error_rate_min_requests}).",
        dedup_key=f"{ERROR_RATE}:{team or '-'}",
        window_s=conf.error_rate_window_s,
        facts={
            "requests": requests,
            "failures": failures,
            "share": round(share, 4),
            "threshold": conf.error_rate_share,
            "window_s": conf.error_rate_window_s,
            "until": until.isoformat(),
        },
    )
