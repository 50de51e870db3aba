"""Ingest's alert sources: after each stored batch, rate limits from the rows just stored and error
rates from one small query (only when the batch held a failure). Called by the local spool consumer
and the ingest Lambda; never raises into them."""

from __future__ import annotations

import logging
from typing import Any

import psycopg

from nexus.alerts import rules
from nexus.alerts.notifier import AlertNotifier
from nexus.db import alerts as log_table

log = logging.getLogger("nexus.alerts")


def after_batch(notifier: AlertNotifier, rows: list[dict[str, Any]]) -> int:
    """Raise the batch's alerts; returns how many were new (not duplicates)."""
    if not rows:
        return 0
    try:
        conf = notifier.config.get().for_team
        events = rules.rate_limit_events(rows, conf)
        window = rules.error_rate_window(rows, conf)
        if window is not None:
            with notifier.lock:
                counts = log_table.error_counts(notifier.connection(), window)
            for team, (requests, failures) in counts.items():
                event = rules.error_rate_event(team, requests, failures, conf(team), window.until)
                if event is not None:
                    events.append(event)
        return sum(notifier.notify(e) for e in events)
    except psycopg.OperationalError as exc:
        notifier.close()
        log.warning("alerts not checked: database unavailable (%s)", exc)
    except Exception:
        log.exception("alerts not checked for this batch")
    return 0
