"""The gateway's settings: one typed object, read once at start.

Sources, highest first: ``NEXUS_GATEWAY_*`` environment variables, then the TOML file named by
``NEXUS_GATEWAY_CONFIG`` (keys as below, without the prefix), then the defaults. A key the gateway
does not know, in the file or as a ``NEXUS_GATEWAY_*`` variable, stops the start with a message that
names it: a typo must not silently fall back to a default.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from nexus import env
from pydantic import AliasChoices, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

ENV_PREFIX = "NEXUS_GATEWAY_"
CONFIG_ENV = "NEXUS_GATEWAY_CONFIG"


class SettingsError(Exception):
    """A setting is unknown or invalid; the message names it."""


class _TomlFile(PydanticBaseSettingsSource):
    def __init__(self, settings_cls: type[BaseSettings], path: Path | None) -> None:
        super().__init__(settings_cls)
        self.data: dict[str, Any] = {}
        if path is not None:
            try:
                self.data = tomllib.loads(path.read_text())
            except FileNotFoundError:
                raise SettingsError(f"{CONFIG_ENV}={path}: no such file") from None
            except tomllib.TOMLDecodeError as exc:
                raise SettingsError(f"{path}: not valid TOML: {exc}") from None
            unknown = sorted(set(self.data) - set(settings_cls.model_fields))
            if unknown:
                raise SettingsError(f"{path}: unknown setting(s) {', '.join(unknown)}")

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return self.data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self.data)


class GatewaySettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, extra="forbid", validate_default=True, populate_by_name=True
    )

    # Where the engine's Claude Code sends its Anthropic traffic: the Nexus proxy, so every call is
    # recorded under the caller's key like any Claude Code session.
    proxy_url: str = "http://127.0.0.1:3000"
    require_keys: bool = True
    # The local stack's data directory (its secret store holds keys and teams), as the other processes.
    data_dir: Path = Field(
        Path(env.DEFAULT_DATA_DIR), validation_alias=AliasChoices(ENV_PREFIX + "DATA_DIR", env.DATA_DIR)
    )
    # The engine's Anthropic credential for callers who bring none, when keys are not required.
    anthropic_api_key: str | None = Field(
        None, validation_alias=AliasChoices(ENV_PREFIX + "ANTHROPIC_API_KEY", "ANTHROPIC_API_KEY")
    )
    # PostgreSQL for sessions (the SDK SessionStore) and conversations; None keeps them in memory.
    database_url: str | None = None
    # In AWS (a worker task): the RDS secret instead of a URL, and the stage's keys and teams.
    db_secret_arn: str | None = Field(
        None, validation_alias=AliasChoices(ENV_PREFIX + "DB_SECRET_ARN", env.DB_SECRET_ARN)
    )
    secrets_prefix: str | None = Field(
        None, validation_alias=AliasChoices(ENV_PREFIX + "SECRETS_PREFIX", env.SECRETS_PREFIX)
    )

    # Where the container entry (``python -m nexus_gateway.serve``) listens: all interfaces in its
    # task (the security group admits only the router), loopback in tests.
    host: str = "0.0.0.0"
    worker_port: int = Field(env.DEFAULT_GATEWAY_WORKER_PORT, ge=1, le=65535)

    # Where conversations' working directories live (default: <data_dir>/gateway/conversations).
    # Every process sharing a session store must use the same absolute path: a transcript's key in
    # the store is derived from it, so another worker can resume the conversation. Tasks built from
    # one image share it by construction.
    workspace_root: Path | None = None
    # In AWS: publish the worker's load to CloudWatch (the service scales on it).
    publish_metrics: bool = False

    # The pool of warm Claude Code sessions.
    max_sessions: int = Field(8, ge=1, le=256, description="Claude Code processes running at once")
    warm_spares: int = Field(2, ge=0, le=64, description="blank warm sessions kept per recent configuration")
    spare_configs: int = Field(4, ge=1, le=64, description="recent configurations to keep spares for")
    queue_size: int = Field(32, ge=0, description="requests waiting for a session before 429")
    queue_timeout_s: float = Field(30.0, gt=0)
    idle_timeout_s: float = Field(600.0, gt=0, description="a warm session unused this long is recycled")
    turn_timeout_s: float = Field(600.0, gt=0)
    tool_result_timeout_s: float = Field(600.0, gt=0, description="how long a turn waits for tool results")

    # What the engine may do beyond answering. Off by default: a gateway model has no tools of its own.
    builtin_tools: list[str] = Field(default_factory=list, description="allowlist of Claude Code tools")
    extra_dirs: list[Path] = Field(default_factory=list)
    mcp_config: Path | None = Field(None, description='a JSON file in the {"mcpServers": {...}} shape')
    claude_code_prompt: bool = Field(False, description="prepend Claude Code's own agent system prompt")
    default_model: str = "claude-sonnet-4-5"
    max_budget_usd: float | None = Field(
        None, gt=0, description="per-request spend cap unless a policy sets one"
    )

    # Response cache: opt-in.
    cache_enabled: bool = False
    cache_ttl_s: float = Field(3600.0, gt=0)
    cache_max_entries: int = Field(1000, ge=1)

    # Memory (ADR 24): who uses it is set per team and key (`nexus teams set-memory`); these say how
    # relevant an earlier turn must be, and how much of it goes before a prompt.
    memory_weight_text: float = Field(0.4, ge=0, description="weight of text relevance")
    memory_weight_cwd: float = Field(0.3, ge=0, description="weight of a working-directory match")
    memory_weight_files: float = Field(0.2, ge=0, description="weight of file overlap (Jaccard)")
    memory_weight_recency: float = Field(0.1, ge=0, description="weight of recency, exp(-hours/24)")
    memory_min_relevance_score: float = Field(0.3, ge=0, le=1)
    memory_max_context_items: int = Field(
        5, ge=0, le=50, description="0 recalls nothing (turns are still indexed)"
    )
    memory_item_chars: int = Field(1500, ge=200, le=20000, description="text of one recalled turn, at most")

    # Images given by URL.
    image_fetch_timeout_s: float = Field(10.0, gt=0)
    image_max_bytes: int = Field(5 * 1024 * 1024, gt=0)
    # Only for tests that serve images from loopback: lets the SSRF guard pass private addresses.
    image_allow_private: bool = False

    @model_validator(mode="after")
    def _some_weight(self) -> GatewaySettings:
        weights = (
            self.memory_weight_text,
            self.memory_weight_cwd,
            self.memory_weight_files,
            self.memory_weight_recency,
        )
        if sum(weights) <= 0:
            raise ValueError("memory_weight_*: at least one weight must be above 0")
        return self

    @field_validator("proxy_url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return v.rstrip("/")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        path = os.environ.get(CONFIG_ENV)
        return init_settings, env_settings, _TomlFile(settings_cls, Path(path) if path else None)


def load(**overrides: Any) -> GatewaySettings:
    """The settings, or SettingsError naming what is wrong."""
    # The front's and the router's variables share the prefix; a worker may see them too.
    cloud = {env.GATEWAY_ROUTER_FUNCTION, env.GATEWAY_ROUTER_URL, env.GATEWAY_WORKERS}
    known = {ENV_PREFIX + name.upper() for name in GatewaySettings.model_fields} | {CONFIG_ENV} | cloud
    unknown = sorted(k for k in os.environ if k.startswith(ENV_PREFIX) and k not in known)
    if unknown:
        raise SettingsError(f"unknown setting(s) {', '.join(unknown)}")
    try:
        return GatewaySettings(**overrides)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "settings"
        raise SettingsError(f"{where}: {first['msg']}") from None
