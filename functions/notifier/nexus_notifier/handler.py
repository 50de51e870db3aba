"""Notifier Lambda entry: subscribed to the stage's alerts topic, it posts each alert to its team's
Slack webhook. It runs outside the VPC (the ingest function, inside, cannot reach Slack) and touches no
database: ingest has already de-duplicated and logged the alert before publishing it.

One attempt per alert. A failed post is logged (never the webhook) and fails the invocation, which is
not retried (the function's async retries are 0): the function's Errors alarm tells the operators.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Tracer
from nexus import env
from nexus.alerts.channels import SlackChannel, parse_event
from nexus.alerts.config import ConfigCache
from nexus.alerts.notifier import deliver
from nexus.secret_store import SecretStore
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

logger = Logger(service="nexus-notifier")
tracer = Tracer(service="nexus-notifier")
_state: dict[str, Any] = {}
REFRESH_S = 30.0


class NotifierSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", env_ignore_empty=True, populate_by_name=True)

    secrets_prefix: str = Field(validation_alias=env.SECRETS_PREFIX)
    stage: str | None = Field(None, validation_alias=env.STAGE)


class DeliveryFailed(Exception):
    """Some alerts of this invocation did not reach Slack (details in the log lines before)."""


def _config(store: SecretStore | None = None) -> ConfigCache:
    if "config" not in _state:
        if store is None:
            from nexus.aws import client
            from nexus.secrets_manager import SecretsManagerStore

            settings = NotifierSettings()  # from the environment
            store = SecretsManagerStore(client("secretsmanager"), settings.secrets_prefix)
        _state["config"] = ConfigCache(store, REFRESH_S)
    config: ConfigCache = _state["config"]
    return config


def handle_records(records: list[dict[str, Any]], config: ConfigCache, slack: SlackChannel) -> list[str]:
    """Deliver each SNS record's alert; returns the errors (empty: all delivered or nothing to do)."""
    errors: list[str] = []
    for record in records:
        raw = (record.get("Sns") or {}).get("Message", "")
        try:
            event, alert_id, stage = parse_event(raw)
        except (ValueError, KeyError, TypeError) as exc:
            logger.error("not an alert message", extra={"reason": str(exc)})
            errors.append(f"unreadable message: {exc}")
            continue
        conf = config.get().for_team(event.team)
        if not conf.wants(event.kind):
            continue
        slack.stage = stage
        out = deliver(event, conf, config.slack_webhook, slack, None, alert_id)
        info = {"alert_id": alert_id, "kind": event.kind, "team": event.team, "delivered": out.delivered}
        if out.errors:
            logger.error("alert not delivered", extra={**info, "errors": out.errors})
            errors += [f"{channel}: {e}" for channel, e in out.errors.items()]
        else:
            logger.info("alert delivered", extra=info)
    return errors


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler(capture_response=False)
def handle(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    errors = handle_records(event.get("Records") or [], _config(), SlackChannel())
    if errors:
        raise DeliveryFailed(f"{len(errors)} alert delivery(ies) failed")
    return {"delivered": len(event.get("Records") or [])}
