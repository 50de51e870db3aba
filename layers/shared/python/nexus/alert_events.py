"""What raises an alert and what delivers it meet here: a source (budgets, the credential refresher,
ingest's rate-limit and error-rate checks) builds an ``AlertEvent`` and hands it to a ``Notifier``;
the notifier de-duplicates, logs and delivers (Slack, SNS/email). Sources never deliver themselves.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

Level = Literal["info", "warning", "critical"]

# Kinds of events (the alert log and the per-team configuration name them).
BUDGET_WARNING = "budget_warning"  # spend crossed the warning share of a cap (80% by default)
BUDGET_EXCEEDED = "budget_exceeded"  # spend reached a cap: the proxy now refuses
RATE_LIMIT = "rate_limit"  # unified rate-limit utilisation over a threshold, or requests rejected
CREDENTIAL_FAILED = "credential_failed"  # a team OAuth credential could not be refreshed (re-login)
ERROR_RATE = "error_rate"  # the share of failed requests spiked


@dataclass(frozen=True)
class AlertEvent:
    kind: str
    level: Level
    team: str | None  # whose configuration receives it (None: the stage's operators)
    subject: str  # what it is about, e.g. "team:web" or "key:ab12cd34ef"
    message: str  # one readable sentence; never a secret
    # One alert per crossing: events with the same dedup key inside ``window_s`` are logged once.
    dedup_key: str
    window_s: int = 3600
    facts: dict[str, Any] = field(default_factory=dict)  # numbers behind the message (spend, cap...)


class Notifier(Protocol):
    def notify(self, event: AlertEvent) -> bool:
        """Deliver unless a duplicate; True when it was delivered (or queued for delivery)."""
        ...


class LogOnly:
    """Until a stage configures delivery: events go to the log and nowhere else."""

    def __init__(self) -> None:
        self.seen: list[AlertEvent] = []

    def notify(self, event: AlertEvent) -> bool:
        import logging

        logging.getLogger("nexus.alerts").warning("%s: %s", event.kind, event.message)
        self.seen.append(event)
        return True
