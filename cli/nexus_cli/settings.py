"""The CLI's settings: environment defaults for its options, one typed object read once per run.

A command-line option wins over its variable; a bad variable stops the CLI with a message naming it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from nexus import env
from nexus.config import DEFAULT_UPSTREAM
from nexus.db.connect import DatabaseSettings
from nexus.oauth import DEFAULT_CLIENT_ID, DEFAULT_TOKEN_URL
from pydantic import Field, ValidationError

from nexus_cli.common import CLIError


class CliSettings(DatabaseSettings):
    data_dir: Path = Field(Path(env.DEFAULT_DATA_DIR), validation_alias=env.DATA_DIR)
    stage: str | None = Field(None, validation_alias=env.STAGE)
    # `nexus dev`.
    upstream_url: str = Field(DEFAULT_UPSTREAM, validation_alias=env.UPSTREAM_URL)
    host: str = Field("127.0.0.1", validation_alias=env.HOST)
    proxy_port: int = Field(3000, ge=1, le=65535, validation_alias=env.PROXY_PORT)
    dashboard_port: int = Field(3001, ge=1, le=65535, validation_alias=env.DASHBOARD_PORT)
    gateway_port: int = Field(8080, ge=1, le=65535, validation_alias=env.GATEWAY_PORT)
    gateway: bool = Field(True, validation_alias=env.GATEWAY)  # on/off, 1/0, true/false, yes/no
    keys: Literal["auto", "required", "optional"] = Field("auto", validation_alias=env.KEYS)
    dashboard_key: str | None = Field(None, validation_alias=env.DASHBOARD_KEY)
    key: str | None = Field(None, validation_alias=env.KEY)
    oauth_token_url: str = Field(DEFAULT_TOKEN_URL, validation_alias=env.OAUTH_TOKEN_URL)
    oauth_client_id: str = Field(DEFAULT_CLIENT_ID, validation_alias=env.OAUTH_CLIENT_ID)


def load() -> CliSettings:
    try:
        return CliSettings()
    except ValidationError as exc:
        first = exc.errors()[0]
        # Errors are located by the variable's name (the fields' validation aliases).
        where = str(first["loc"][0]) if first["loc"] else "settings"
        raise CLIError(f"{where}: {first['msg'].lower()}, got {first.get('input')!r}") from None
