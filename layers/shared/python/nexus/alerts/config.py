"""Per-team alert configuration, kept in the ``SecretStore`` like keys and teams (so
``nexus alerts ... --stage`` works from a laptop): a document ``nexus/alerts`` with every team's
channels and thresholds, and each team's Slack incoming-webhook URL as its own secret
``nexus/team/<team>/slack-webhook``. The document holds only the webhook's fingerprint: the dashboard
and ``nexus alerts show`` read the document, never the webhook.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
import time
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from nexus.alert_events import BUDGET_EXCEEDED, BUDGET_WARNING, CREDENTIAL_FAILED, ERROR_RATE, RATE_LIMIT
from nexus.secret_store import SecretStore

ALERTS_SECRET = "nexus/alerts"
KINDS = (BUDGET_WARNING, BUDGET_EXCEEDED, RATE_LIMIT, CREDENTIAL_FAILED, ERROR_RATE)
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def slack_webhook_secret(team: str) -> str:
    return f"nexus/team/{team}/slack-webhook"


def fingerprint(secret: str) -> str:
    """What may be shown of a secret: enough to tell two apart, nothing to use."""
    return "sha256:" + hashlib.sha256(secret.encode()).hexdigest()[:12]


def check_webhook_url(url: str) -> str:
    """A Slack incoming-webhook URL: https, or http to this machine only (a local test receiver)."""
    url = url.strip()
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return url
    if parts.scheme == "http" and parts.hostname:
        host = parts.hostname
        try:
            loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
        if loopback:
            return url
    raise ValueError("the Slack webhook must be an https:// URL (http:// only to localhost)")


@dataclass(frozen=True)
class TeamAlerts:
    """One team's alert settings (also the operators' defaults for events with ``team=None``)."""

    email: tuple[str, ...] = ()  # subscribed to the stage's alerts topic, filtered to this team
    slack_fingerprint: str | None = None  # set when the team's webhook secret exists
    slack_set_at: str | None = None
    rate_limit_threshold: float = 0.9  # unified 5h/7d utilisation (0..1) that raises an alert
    error_rate_share: float = 0.25  # share of failed answers (5xx, 529, upstream 429) in the window
    error_rate_min_requests: int = 20  # fewer requests than this in the window: no error-rate alert
    error_rate_window_s: int = 900
    off: tuple[str, ...] = ()  # kinds this team does not want

    def wants(self, kind: str) -> bool:
        return kind not in self.off

    @property
    def slack(self) -> bool:
        return self.slack_fingerprint is not None

    def to_doc(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["email"], doc["off"] = list(self.email), list(self.off)
        return doc

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> TeamAlerts:
        known = {k: v for k, v in doc.items() if k in cls.__dataclass_fields__}
        for k in ("email", "off"):
            if k in known:
                known[k] = tuple(known[k])
        return cls(**known)

    def validated(self) -> TeamAlerts:
        if not 0 < self.rate_limit_threshold <= 1:
            raise ValueError("the rate-limit threshold is a share of the limit: 0 < t <= 1 (e.g. 0.9)")
        if not 0 < self.error_rate_share <= 1:
            raise ValueError("the error-rate share is a share of requests: 0 < s <= 1 (e.g. 0.25)")
        if self.error_rate_min_requests < 1 or self.error_rate_window_s < 60:
            raise ValueError("the error-rate minimum is at least 1 request and its window at least 60 s")
        unknown = [k for k in self.off if k not in KINDS]
        if unknown:
            raise ValueError(f"unknown kind(s) {', '.join(unknown)}; kinds are {', '.join(KINDS)}")
        bad = [e for e in self.email if not _EMAIL.match(e)]
        if bad:
            raise ValueError(f"not an email address: {bad[0]!r}")
        return self


OPERATORS = TeamAlerts()  # events with team=None: the stage's topic (operators' email), defaults


@dataclass(frozen=True)
class AlertsConfig:
    teams: dict[str, TeamAlerts] = field(default_factory=dict)

    def for_team(self, team: str | None) -> TeamAlerts:
        if team is None:
            return OPERATORS
        return self.teams.get(team, TeamAlerts())


def parse(raw: str | None) -> AlertsConfig:
    doc = json.loads(raw) if raw else {}
    return AlertsConfig({t: TeamAlerts.from_doc(c) for t, c in (doc.get("teams") or {}).items()})


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class AlertSettings:
    """Reads and writes the alerts document and the webhook secrets (the CLI's and tests' door)."""

    def __init__(self, store: SecretStore) -> None:
        self.store = store

    def config(self) -> AlertsConfig:
        return parse(self.store.get(ALERTS_SECRET))

    def team(self, team: str) -> TeamAlerts:
        return self.config().for_team(team)

    def _save(self, config: AlertsConfig) -> None:
        doc = {"teams": {t: c.to_doc() for t, c in sorted(config.teams.items())}}
        self.store.put(ALERTS_SECRET, json.dumps(doc))

    def update(self, team: str, **changes: Any) -> TeamAlerts:
        """Change some of a team's settings (validated; the others stay)."""
        config = self.config()
        conf = replace(config.for_team(team), **changes).validated()
        self._save(AlertsConfig({**config.teams, team: conf}))
        return conf

    def set_slack_webhook(self, team: str, url: str) -> TeamAlerts:
        url = check_webhook_url(url)
        self.store.put(slack_webhook_secret(team), url)
        return self.update(team, slack_fingerprint=fingerprint(url), slack_set_at=_now())

    def remove_slack_webhook(self, team: str) -> TeamAlerts:
        self.store.delete(slack_webhook_secret(team))
        return self.update(team, slack_fingerprint=None, slack_set_at=None)

    def slack_webhook(self, team: str) -> str | None:
        """The webhook itself: for delivery only, never to be shown or logged."""
        return self.store.get(slack_webhook_secret(team))


class ConfigCache:
    """The alerts document for a long-lived process (ingest, the notifier function): reloaded when the
    store's version token changes, checked at most once per ``refresh_s``."""

    def __init__(self, store: SecretStore, refresh_s: float = 1.0) -> None:
        self.store = store
        self.refresh_s = refresh_s
        self._checked = -float("inf")
        self._version: object = object()
        self._config = AlertsConfig()
        self._webhooks: dict[str, str | None] = {}

    def get(self) -> AlertsConfig:
        now = time.monotonic()
        if now - self._checked >= self.refresh_s:
            self._checked = now
            version = self.store.version(ALERTS_SECRET)
            if version != self._version or version is None:
                self._version = version
                self._config = parse(self.store.get(ALERTS_SECRET))
                self._webhooks = {}  # a changed document may mean a changed webhook
        return self._config

    def slack_webhook(self, team: str) -> str | None:
        if team not in self._webhooks:
            self._webhooks[team] = self.store.get(slack_webhook_secret(team))
        return self._webhooks[team]
