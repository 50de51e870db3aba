"""The OAuth refresher in AWS: a scheduled function (every minute) with reserved concurrency 1, so it
is the only writer of team OAuth credentials in the stage. Proxies read the credentials and, on a
401, leave a request in the store that the next pass answers (``nexus.oauth``)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from nexus.alert_events import LogOnly, Notifier
from nexus.aws import client
from nexus.oauth import Refresher
from nexus.secret_store import SecretStore
from nexus.secrets_manager import SecretsManagerStore

from nexus_credentials.settings import RefresherSettings

logger = Logger(service="nexus-credentials")
_state: dict[str, Refresher] = {}


def notifier(settings: RefresherSettings, store: SecretStore) -> Notifier:
    """Where credential failures go: the stage's alerts topic (ADR 0018; this function has no database,
    so they are not in the alerts log), or the log alone where no topic is configured."""
    if not settings.alerts_topic_arn:
        return LogOnly()
    from nexus.alerts.channels import TopicChannel
    from nexus.alerts.config import ConfigCache
    from nexus.alerts.notifier import TopicNotifier

    topic = TopicChannel(client("sns"), settings.alerts_topic_arn, settings.stage)
    return TopicNotifier(ConfigCache(store, refresh_s=30.0), topic)


def _refresher() -> Refresher:
    if "refresher" not in _state:
        settings = RefresherSettings()  # secrets_prefix comes from the environment
        store = SecretsManagerStore(client("secretsmanager"), settings.secrets_prefix)
        _state["refresher"] = Refresher(
            store,
            notifier(settings, store),
            token_url=settings.oauth_token_url,
            client_id=settings.oauth_client_id,
        )
    return _state["refresher"]


@logger.inject_lambda_context(log_event=False)
def handle(event: dict[str, Any], context: Any) -> dict[str, str]:
    outcome = _refresher().run_once()
    logger.info("refresh pass", extra={"outcome": outcome})
    return outcome
