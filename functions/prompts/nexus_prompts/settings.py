"""The fetcher's settings: one typed object, read once per execution environment, so a function
deployed without its source fails at once with a message naming the variable."""

from __future__ import annotations

from nexus import env
from nexus.prompts import sync
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class FetcherSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", env_ignore_empty=True, populate_by_name=True)

    repo: str = Field(validation_alias=sync.REPO)
    ref: str | None = Field(None, validation_alias=sync.REF)
    path: str = Field("", validation_alias=sync.PATH)
    applier: str = Field(validation_alias=env.PROMPTS_APPLIER)  # the applier's function name
    secrets_prefix: str = Field(validation_alias=env.SECRETS_PREFIX)  # where the token secret is
