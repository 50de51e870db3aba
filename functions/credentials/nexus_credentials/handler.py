"""The OAuth refresher in AWS: a scheduled function (every minute) with reserved concurrency 1, so it
is the only writer of team OAuth credentials in the stage. Proxies read the credentials and, on a
401, leave a request in the store that the next pass answers (``nexus.oauth``)."""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools import Logger
from nexus import env
from nexus.alert_events import LogOnly, Notifier
from nexus.aws import client
from nexus.oauth import DEFAULT_CLIENT_ID, DEFAULT_TOKEN_URL, Refresher
from nexus.secrets_manager import SecretsManagerStore

logger = Logger(service="nexus-credentials")
_state: dict[str, Refresher] = {}


def notifier() -> Notifier:
    """Where credential failures go (the stage's alert delivery, once configured)."""
    return LogOnly()


def _refresher() -> Refresher:
    if "refresher" not in _state:
        store = SecretsManagerStore(client("secretsmanager"), os.environ[env.SECRETS_PREFIX])
        _state["refresher"] = Refresher(
            store,
            notifier(),
            token_url=os.environ.get(env.OAUTH_TOKEN_URL) or DEFAULT_TOKEN_URL,
            client_id=os.environ.get(env.OAUTH_CLIENT_ID) or DEFAULT_CLIENT_ID,
        )
    return _state["refresher"]


@logger.inject_lambda_context(log_event=False)
def handle(event: dict[str, Any], context: Any) -> dict[str, str]:
    outcome = _refresher().run_once()
    logger.info("refresh pass", extra={"outcome": outcome})
    return outcome
