"""The dashboard's settings: one typed object, read from the environment once per process (locally:
the uvicorn factory; in AWS: the Lambda handler, once per execution environment)."""

from __future__ import annotations

from pathlib import Path

from nexus import env
from nexus.db.connect import DatabaseSettings
from pydantic import Field


class DashboardSettings(DatabaseSettings):
    # Locally: the key itself, and the data directory whose secret store holds keys and teams.
    dashboard_key: str | None = Field(None, validation_alias=env.DASHBOARD_KEY)
    # /mcp: Nexus keys required (the default), or optional (the local stack on localhost, as the proxy).
    require_keys: bool = Field(True, validation_alias=env.REQUIRE_KEYS)
    data_dir: Path = Field(Path(env.DEFAULT_DATA_DIR), validation_alias=env.DATA_DIR)
    # In AWS: the dashboard key's secret, and the prefix of the stage's keys and teams secrets.
    dashboard_key_secret: str | None = Field(None, validation_alias=env.DASHBOARD_KEY_SECRET)
    secrets_prefix: str | None = Field(None, validation_alias=env.SECRETS_PREFIX)
