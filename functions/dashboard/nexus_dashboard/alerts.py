"""The alerts read model: the log (``nexus.db.alerts``, newest first, narrowed by team and kind) and
each team's channel status from the alerts document, which holds webhook fingerprints, never webhooks."""

from __future__ import annotations

from typing import cast

import psycopg
from nexus.alerts.config import AlertSettings
from nexus.db import alerts as log_table
from nexus.secret_store import SecretStore

from nexus_dashboard.schemas import AlertRow, Alerts, TeamChannels
from nexus_dashboard.scope import Scope


def team_channels(store: SecretStore | None, scope: Scope) -> list[TeamChannels]:
    if store is None:
        return []
    config = AlertSettings(store).config()
    out: list[TeamChannels] = []
    for team, c in sorted(config.teams.items()):
        if not scope.allows(team):
            continue
        out.append(
            {
                "team": team,
                "slack": c.slack,
                "slack_fingerprint": c.slack_fingerprint,
                "slack_set_at": c.slack_set_at,
                "email": list(c.email),
                "rate_limit_threshold": c.rate_limit_threshold,
                "error_rate_share": c.error_rate_share,
                "error_rate_min_requests": c.error_rate_min_requests,
                "error_rate_window_s": c.error_rate_window_s,
                "off": list(c.off),
            }
        )
    return out


def alerts_data(
    conn: psycopg.Connection,
    store: SecretStore | None,
    scope: Scope,
    team: str | None = None,
    kind: str | None = None,
    limit: int = 100,
) -> Alerts:
    # A row of the log is an AlertRow (FastAPI checks the shape at runtime).
    teams = None if scope.teams is None else sorted(scope.teams)
    rows = [cast(AlertRow, r) for r in log_table.recent(conn, team, kind, limit, teams=teams)]
    kinds, _ = log_table.kinds_and_teams(conn)
    return {"alerts": rows, "teams": team_channels(store, scope), "kinds": kinds}
