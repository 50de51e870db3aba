"""Settings, read once from the environment and validated at start-up (a bad value fails fast)."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, Field, field_validator

from nexus import env

DEFAULT_UPSTREAM = "https://api.anthropic.com"
# Anthropic's documented request size limit for the Messages API.
MAX_BODY_BYTES = 32 * 1024 * 1024


class Settings(BaseModel):
    upstream_url: str = DEFAULT_UPSTREAM
    data_dir: Path = Path(env.DEFAULT_DATA_DIR)
    require_keys: bool = True
    max_body_bytes: int = Field(MAX_BODY_BYTES, gt=0)
    spool_fsync: bool = False
    # Records the spool cannot take (disk full) wait in memory up to this much; past it the proxy
    # refuses new requests with 503 rather than serve them unrecorded.
    record_hold_bytes: int = Field(128 * 1024 * 1024, gt=0)
    connect_timeout_s: float = Field(10.0, gt=0)
    read_timeout_s: float = Field(600.0, gt=0)
    # A client must finish its request head, and keep its body coming, within these.
    header_timeout_s: float = Field(10.0, gt=0)
    body_timeout_s: float = Field(15.0, gt=0)
    # How often the proxy checks for changed keys/teams (a revocation applies within this interval).
    # A stat locally; a Secrets Manager call in AWS, where the stack sets a longer interval.
    access_refresh_s: float = Field(1.0, gt=0)
    # Behind a Lambda function URL: drop the headers AWS adds (nexus.headers.PLATFORM_HEADERS).
    strip_platform_headers: bool = False

    @field_validator("upstream_url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return v.rstrip("/")

    @property
    def spool_dir(self) -> Path:
        return self.data_dir / "spool"

    @property
    def secrets_path(self) -> Path:
        return self.data_dir / "secrets.json"

    @classmethod
    def from_env(cls, **overrides: object) -> Settings:
        environ = os.environ
        values: dict[str, object] = {}
        mapping = {
            env.UPSTREAM_URL: "upstream_url",
            env.DATA_DIR: "data_dir",
            env.REQUIRE_KEYS: "require_keys",
            env.MAX_BODY_BYTES: "max_body_bytes",
            env.SPOOL_FSYNC: "spool_fsync",
            env.RECORD_HOLD_BYTES: "record_hold_bytes",
            env.ACCESS_REFRESH_S: "access_refresh_s",
            env.HEADER_TIMEOUT_S: "header_timeout_s",
            env.BODY_TIMEOUT_S: "body_timeout_s",
            env.STRIP_PLATFORM_HEADERS: "strip_platform_headers",
        }
        for var, field in mapping.items():
            if environ.get(var):
                values[field] = environ[var]
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls.model_validate(values)
