"""Dashboard Lambda entry: the same FastAPI app behind Mangum (buffered responses are fine here).

The dashboard key and the database credentials come from Secrets Manager through Powertools
parameters, cached for five minutes. A rotated key is picked up without a redeploy (the app is
rebuilt when it changes). A rotated database password costs no request: the pool reads the secret
for each new connection, and a connection refused for its password reads it afresh and tries again
(``SecretConninfo``); connections already open keep working through a rotation.
"""

from __future__ import annotations

from typing import Any, TypedDict

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities import parameters
from fastapi import FastAPI
from mangum import Mangum
from nexus import env
from nexus.aws import client
from nexus.db.connect import SECRET_MAX_AGE_S, SecretConninfo
from nexus.logs import json_logging
from nexus.secrets_manager import SecretsManagerStore

from nexus_dashboard import oidc
from nexus_dashboard.app import create_app
from nexus_dashboard.db import Pool
from nexus_dashboard.settings import DashboardSettings

logger = Logger(service="nexus-dashboard")
tracer = Tracer(service="nexus-dashboard")


class _Current(TypedDict, total=False):
    """The app this execution environment serves, and what it was built with."""

    settings: DashboardSettings  # read once per execution environment
    database: SecretConninfo
    key: str  # the dashboard key the app was built with
    app: FastAPI
    handler: Mangum


_current: _Current = {}


def _handler() -> Mangum:
    settings = _current.get("settings")
    if settings is None:
        # Every line (audit, database pool, MCP) as Powertools JSON, as the function's own: Lambda's
        # default handler would write the nexus.* ones as plain text.
        json_logging("nexus-dashboard")
        settings = _current["settings"] = DashboardSettings()
    if not settings.dashboard_key_secret or settings.secrets_prefix is None:
        raise RuntimeError(f"set {env.DASHBOARD_KEY_SECRET} and {env.SECRETS_PREFIX}")
    key = parameters.get_secret(settings.dashboard_key_secret, max_age=SECRET_MAX_AGE_S)
    database = _current.get("database")
    if database is None:
        database = _current["database"] = SecretConninfo(settings, application_name="nexus-dashboard")
    if _current.get("key") != key:
        old = _current.get("app")
        # /mcp requires Nexus keys here; a key check reads Secrets Manager at most every 30 s.
        app = create_app(
            database,
            key,
            _secret_store(settings.secrets_prefix),
            access_refresh_s=30,
            oidc_config=_oidc(settings),
        )
        # Mangum would run the app's lifespan (opening and closing its pool) on every invocation;
        # the pool is opened once per execution environment and kept when the key changes.
        app.state.pool = (
            old.state.pool
            if old is not None
            else Pool(database, max_size=2, connection_class=database.connection_class())
        )
        _current.update({"key": key, "app": app, "handler": Mangum(app, lifespan="off")})
    return _current["handler"]


def _oidc(settings: DashboardSettings) -> oidc.Config | None:
    """Sign-in through OIDC: with Cognito in the stack, its issuer and client id from the config
    secret (``infra/identity.py``); with an external issuer, from the environment (and its client
    secret, if any, from Secrets Manager)."""
    if settings.oidc_config_secret:
        doc = parameters.get_secret(settings.oidc_config_secret, transform="json", max_age=SECRET_MAX_AGE_S)
        return oidc.Config(
            str(doc["issuer"]),
            str(doc["client_id"]),
            None,
            settings.oidc_groups_claim,
            str(doc.get("label") or settings.oidc_label),
        )
    secret = settings.oidc_client_secret
    if settings.oidc_client_secret_secret:
        secret = parameters.get_secret(settings.oidc_client_secret_secret, max_age=SECRET_MAX_AGE_S)
    return settings.oidc_config(secret)


def _secret_store(prefix: str) -> SecretsManagerStore:
    """The stage's keys and teams documents, for the keys page (same store as `nexus keys --stage`)."""
    return SecretsManagerStore(client("secretsmanager"), prefix)


@logger.inject_lambda_context(log_event=False, correlation_id_path="requestContext.requestId")
@tracer.capture_lambda_handler(capture_response=False)
def handle(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return _handler()(event, context)
