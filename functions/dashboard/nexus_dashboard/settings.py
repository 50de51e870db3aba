"""The dashboard's settings: one typed object, read from the environment once per process (locally:
the uvicorn factory; in AWS: the Lambda handler, once per execution environment)."""

from __future__ import annotations

from pathlib import Path

from nexus import env
from nexus.db.connect import DatabaseSettings
from pydantic import Field, model_validator

from nexus_dashboard import oidc


class DashboardSettings(DatabaseSettings):
    # Locally: the key itself, and the data directory whose secret store holds keys and teams.
    dashboard_key: str | None = Field(None, validation_alias=env.DASHBOARD_KEY)
    # /mcp: Nexus keys required (the default), or optional (the local stack on localhost, as the proxy).
    require_keys: bool = Field(True, validation_alias=env.REQUIRE_KEYS)
    data_dir: Path = Field(Path(env.DEFAULT_DATA_DIR), validation_alias=env.DATA_DIR)
    # In AWS: the dashboard key's secret, and the prefix of the stage's keys and teams secrets.
    dashboard_key_secret: str | None = Field(None, validation_alias=env.DASHBOARD_KEY_SECRET)
    secrets_prefix: str | None = Field(None, validation_alias=env.SECRETS_PREFIX)
    # Sign-in through an OpenID Connect provider (ADR 0025): a Cognito user pool or any issuer.
    oidc_issuer: str | None = Field(None, validation_alias=env.OIDC_ISSUER)
    oidc_client_id: str | None = Field(None, validation_alias=env.OIDC_CLIENT_ID)
    oidc_client_secret: str | None = Field(None, validation_alias=env.OIDC_CLIENT_SECRET)  # locally
    oidc_client_secret_secret: str | None = Field(None, validation_alias=env.OIDC_CLIENT_SECRET_SECRET)  # AWS
    oidc_config_secret: str | None = Field(None, validation_alias=env.OIDC_CONFIG_SECRET)  # AWS, Cognito
    oidc_groups_claim: str = Field("cognito:groups", validation_alias=env.OIDC_GROUPS_CLAIM)
    oidc_label: str = Field("your identity provider", validation_alias=env.OIDC_LABEL)

    @model_validator(mode="after")
    def _oidc_complete(self) -> DashboardSettings:
        if bool(self.oidc_issuer) != bool(self.oidc_client_id):
            raise ValueError("OIDC sign-in needs both NEXUS_OIDC_ISSUER and NEXUS_OIDC_CLIENT_ID")
        if self.oidc_issuer and not self.oidc_issuer.startswith(
            ("https://", "http://127.0.0.1", "http://localhost")
        ):
            raise ValueError("NEXUS_OIDC_ISSUER must be an https URL")
        return self

    def oidc_config(self, client_secret: str | None) -> oidc.Config | None:
        if not self.oidc_issuer or not self.oidc_client_id:
            return None
        return oidc.Config(
            self.oidc_issuer,
            self.oidc_client_id,
            client_secret or None,
            self.oidc_groups_claim,
            self.oidc_label,
        )
