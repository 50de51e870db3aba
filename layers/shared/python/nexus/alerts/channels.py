"""Where alerts go: a team's Slack incoming webhook (``slack_sdk``) and the stage's SNS alerts topic.

Each ``send``/``publish`` makes one attempt and returns None or why it failed, in words safe to
store and show: never the webhook itself. Nothing here raises into a source, and nothing retries in
a loop (``slack_sdk``'s own retry handlers are turned off).

The topic message is per protocol (``MessageStructure=json``): email subscribers get readable text;
machine subscribers (the notifier function, queues) get the event as JSON (``event_json``).
Subscribers filter on the message attributes ``audience`` (``team`` or ``operators``), ``team``,
``kind`` and ``level``.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson

from nexus.alert_events import AlertEvent
from nexus.alerts import message

log = logging.getLogger("nexus.alerts")
# slack_sdk logs the request URL (the webhook, a secret) at debug level: its client gets a logger of
# its own that never emits below warning, whatever the process's log level.
_SLACK_SDK_LOG = logging.getLogger("nexus.alerts.slack_sdk")
_SLACK_SDK_LOG.setLevel(logging.WARNING)
FORMAT_VERSION = 1


def event_json(event: AlertEvent, alert_id: int | None = None, stage: str | None = None) -> str:
    doc = {
        "v": FORMAT_VERSION,
        "alert_id": alert_id,
        "stage": stage,
        "kind": event.kind,
        "level": event.level,
        "team": event.team,
        "subject": message.redact(event.subject),
        "message": message.redact(event.message),
        "dedup_key": event.dedup_key,
        "window_s": event.window_s,
        "facts": message.redact_facts(orjson.loads(orjson.dumps(event.facts, default=str))),
    }
    return orjson.dumps(doc).decode()


def parse_event(raw: str) -> tuple[AlertEvent, int | None, str | None]:
    """``event_json`` back into the event, its log row id and stage."""
    doc = orjson.loads(raw)
    if doc.get("v") != FORMAT_VERSION:
        raise ValueError(f"unknown alert message version {doc.get('v')!r}")
    level = doc["level"]
    if level not in ("info", "warning", "critical"):
        raise ValueError(f"unknown alert level {level!r}")
    event = AlertEvent(
        kind=str(doc["kind"]),
        level=level,
        team=doc.get("team"),
        subject=str(doc["subject"]),
        message=str(doc["message"]),
        dedup_key=str(doc["dedup_key"]),
        window_s=int(doc.get("window_s") or 3600),
        facts=dict(doc.get("facts") or {}),
    )
    return event, doc.get("alert_id"), doc.get("stage")


def _safe(exc: BaseException, secret: str | None = None) -> str:
    text = f"{exc.__class__.__name__}: {exc}"
    if secret:
        text = text.replace(secret, "[webhook]")
    return message.redact(text)[:300]


class SlackChannel:
    """Posts to a Slack incoming webhook. The URL is passed per call and never kept or logged."""

    name = "slack"

    def __init__(self, timeout_s: int = 5, stage: str | None = None) -> None:
        self.timeout_s = timeout_s
        self.stage = stage

    def send(self, url: str, event: AlertEvent) -> str | None:
        from slack_sdk.webhook import WebhookClient

        try:
            client = WebhookClient(url, timeout=self.timeout_s, retry_handlers=[], logger=_SLACK_SDK_LOG)
            response = client.send(**message.slack(event, self.stage))
        except Exception as exc:  # unreachable, TLS, timeout: one attempt, recorded
            return _safe(exc, url)
        if response.status_code != 200:
            body = message.redact(str(response.body or ""))[:200]
            return f"HTTP {response.status_code}" + (f": {body}" if body else "")
        return None


class TopicChannel:
    """Publishes to the stage's alerts topic (``sns:Publish``; in AWS through the VPC's SNS endpoint)."""

    name = "sns"

    def __init__(self, client: Any, topic_arn: str, stage: str | None = None) -> None:
        self.client = client
        self.topic_arn = topic_arn
        self.stage = stage

    def publish(self, event: AlertEvent, alert_id: int | None = None) -> str | None:
        subject, text = message.email(event, self.stage)
        machine = event_json(event, alert_id, self.stage)
        body = {"default": text, "email": text, "lambda": machine, "sqs": machine}
        attributes = {
            "audience": "team" if event.team is not None else "operators",
            "kind": event.kind,
            "level": event.level,
            **({"team": event.team} if event.team else {}),
        }
        try:
            self.client.publish(
                TopicArn=self.topic_arn,
                Subject=subject,
                Message=orjson.dumps(body).decode(),
                MessageStructure="json",
                MessageAttributes={
                    k: {"DataType": "String", "StringValue": v} for k, v in attributes.items()
                },
            )
        except Exception as exc:  # throttled, denied, endpoint away: one attempt, recorded
            return _safe(exc)
        return None
