"""The OAuth refresher's settings: one typed object, read once per execution environment."""

from __future__ import annotations

from nexus import env
from nexus.oauth import DEFAULT_CLIENT_ID, DEFAULT_TOKEN_URL
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class RefresherSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", env_ignore_empty=True, populate_by_name=True)

    secrets_prefix: str = Field(validation_alias=env.SECRETS_PREFIX)
    oauth_token_url: str = Field(DEFAULT_TOKEN_URL, validation_alias=env.OAUTH_TOKEN_URL)
    oauth_client_id: str = Field(DEFAULT_CLIENT_ID, validation_alias=env.OAUTH_CLIENT_ID)
    # The stage's alerts topic (ADR 0018): credential failures are published there.
    alerts_topic_arn: str | None = Field(None, validation_alias=env.ALERTS_TOPIC_ARN)
    stage: str | None = Field(None, validation_alias=env.STAGE)
