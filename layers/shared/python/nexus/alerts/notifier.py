"""The ``Notifier`` sources are given: de-duplicate in PostgreSQL, then deliver, then record where it
went. Never raises into a source: every failure is logged and, when the row exists, recorded in it.

Two shapes of the same notifier (ADR 0018):
- direct (``nexus dev``, ``nexus alerts test``): Slack from here, and the stage topic if there is one;
- relay (the ingest function in AWS, in a VPC without internet): the stage topic only, through the
  VPC's SNS endpoint; the notifier function outside the VPC, subscribed to it, posts to Slack
  (``deliver`` with the topic left out), and email subscribers get it from the topic.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import psycopg

from nexus.alert_events import AlertEvent
from nexus.alerts.channels import SlackChannel, TopicChannel
from nexus.alerts.config import ConfigCache, TeamAlerts
from nexus.db import alerts as log_table
from nexus.secret_store import SecretStore

log = logging.getLogger("nexus.alerts")


@dataclass
class Outcome:
    delivered: list[str] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)


def deliver(
    event: AlertEvent,
    conf: TeamAlerts,
    webhook: Callable[[str], str | None],
    slack: SlackChannel | None,
    topic: TopicChannel | None,
    alert_id: int | None = None,
) -> Outcome:
    """One attempt per channel. ``webhook(team)`` reads the team's Slack webhook secret."""
    out = Outcome()
    if slack is not None and event.team is not None and conf.slack:
        url = webhook(event.team)
        error = slack.send(url, event) if url else "the team's webhook secret is missing"
        _note(out, slack.name, error, event)
    if topic is not None:
        _note(out, topic.name, topic.publish(event, alert_id), event)
    return out


def _note(out: Outcome, channel: str, error: str | None, event: AlertEvent) -> None:
    if error is None:
        out.delivered.append(channel)
    else:
        out.errors[channel] = error
        log.warning("alert %s for %s not delivered to %s: %s", event.kind, event.subject, channel, error)


class AlertNotifier:
    """``nexus.alert_events.Notifier``: what budgets, the credential refresher and ingest call."""

    def __init__(
        self,
        config: ConfigCache,
        connect: Callable[[], psycopg.Connection],
        *,
        slack: SlackChannel | None = None,
        topic: TopicChannel | None = None,
    ) -> None:
        self.config = config
        self._connect = connect
        self._conn: psycopg.Connection | None = None
        # Sources call from several threads (nexus dev: ingest and the OAuth refresher): one at a time
        # on the one connection.
        self.lock = threading.RLock()
        self.slack = slack
        self.topic = topic

    def connection(self) -> psycopg.Connection:
        """Its own connection (autocommit): a source's open transaction never holds an alert back."""
        if self._conn is None or self._conn.closed:
            self._conn = self._connect()
        return self._conn

    def close(self) -> None:
        with self.lock:
            if self._conn is not None:
                with contextlib.suppress(psycopg.Error):
                    self._conn.close()
            self._conn = None

    def notify(self, event: AlertEvent) -> bool:
        with self.lock:
            return self._notify(event)

    def _notify(self, event: AlertEvent) -> bool:
        try:
            conf = self.config.get().for_team(event.team)
            if not conf.wants(event.kind):
                log.info("alert %s for %s: this kind is off for its team", event.kind, event.subject)
                return False
            alert_id = log_table.claim(self.connection(), event)
            if alert_id is None:
                return False  # the same crossing inside its window: logged once already
            log.warning("alert %s (%s) for %s: %s", event.kind, event.level, event.subject, event.message)
            out = deliver(event, conf, self.config.slack_webhook, self.slack, self.topic, alert_id)
            log_table.record_delivery(self.connection(), alert_id, out.delivered, out.errors)
            return True
        except psycopg.OperationalError as exc:
            self.close()
            log.warning("alert %s for %s not raised: database away (%s)", event.kind, event.subject, exc)
        except Exception:
            log.exception("alert %s for %s not raised", event.kind, event.subject)
        return False


def topic_channel(topic_arn: str | None, stage: str | None = None) -> TopicChannel | None:
    if not topic_arn:
        return None
    from nexus.aws import client

    return TopicChannel(client("sns"), topic_arn, stage)


def direct_notifier(
    store: SecretStore, conninfo: str, topic_arn: str | None = None, refresh_s: float = 0.5
) -> AlertNotifier:
    """``nexus dev``'s notifier: Slack from this process, and the stage topic when one is configured
    (``NEXUS_ALERTS_TOPIC_ARN``, with AWS credentials)."""
    return AlertNotifier(
        ConfigCache(store, refresh_s),
        lambda: psycopg.connect(
            conninfo, autocommit=True, connect_timeout=5, application_name="nexus-alerts"
        ),
        slack=SlackChannel(),
        topic=topic_channel(topic_arn),
    )


class TopicNotifier:
    """``Notifier`` for sources outside the VPC, without a database (the OAuth refresher in AWS): the
    stage topic only, from which the notifier function posts to Slack and email subscribers read.
    Not in the alerts log (no database here); de-duplicated in memory per process, which suits a
    single-instance source that also raises each failure once itself."""

    def __init__(self, config: ConfigCache, topic: TopicChannel) -> None:
        self.config = config
        self.topic = topic
        self._sent: dict[str, float] = {}  # dedup key -> monotonic time sent
        self.lock = threading.Lock()

    def notify(self, event: AlertEvent) -> bool:
        import time

        with self.lock:
            try:
                if not self.config.get().for_team(event.team).wants(event.kind):
                    return False
                now = time.monotonic()
                sent = self._sent.get(event.dedup_key)
                if sent is not None and now - sent < event.window_s:
                    return False
                error = self.topic.publish(event)
                if error is not None:
                    log.warning("alert %s for %s not published: %s", event.kind, event.subject, error)
                    return False
                self._sent[event.dedup_key] = now
                log.warning("alert %s (%s) for %s: %s", event.kind, event.level, event.subject, event.message)
                return True
            except Exception:
                log.exception("alert %s for %s not raised", event.kind, event.subject)
                return False
