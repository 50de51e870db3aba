"""The proxy's settings: one typed model, read once from the environment and validated at start-up (a
bad value fails fast, naming the variable).

A plain dataclass with its own small loader rather than pydantic-settings: the proxy's start is its
cold start on Lambda, and pydantic-settings costs about as much as the rest of the start together
(docs/adr/0021-proxy-settings-without-pydantic.md has the figures).
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from nexus import env

DEFAULT_UPSTREAM = "https://api.anthropic.com"
# Anthropic's documented request size limit for the Messages API.
MAX_BODY_BYTES = 32 * 1024 * 1024


class SettingsError(ValueError):
    """A setting has a value the proxy cannot run with; the message names it and says why."""


@dataclass(slots=True)
class Settings:
    upstream_url: str = DEFAULT_UPSTREAM
    data_dir: Path = Path(env.DEFAULT_DATA_DIR)
    require_keys: bool = True
    max_body_bytes: int = MAX_BODY_BYTES
    spool_fsync: bool = False
    # Records the spool cannot take (disk full) wait in memory up to this much; past it the proxy
    # refuses new requests with 503 rather than serve them unrecorded.
    record_hold_bytes: int = 128 * 1024 * 1024
    connect_timeout_s: float = 10.0
    read_timeout_s: float = 600.0
    # A client must finish its request head, and keep its body coming, within these.
    header_timeout_s: float = 10.0
    body_timeout_s: float = 15.0
    # How often the proxy checks for changed keys/teams (a revocation applies within this interval).
    # A stat locally; a Secrets Manager call in AWS, where the stack sets a longer interval.
    access_refresh_s: float = 1.0
    # Behind a Lambda function URL: drop the headers AWS adds (nexus.headers.PLATFORM_HEADERS).
    strip_platform_headers: bool = False
    # In AWS: records go to this SQS queue (large ones to the bucket), keys and teams come from
    # Secrets Manager under this prefix, and log lines are JSON (set by Lambda itself).
    queue_url: str | None = None
    record_bucket: str | None = None
    secrets_prefix: str | None = None
    lambda_function: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.upstream_url, str) or not self.upstream_url.startswith(
            ("http://", "https://")
        ):
            raise SettingsError(
                f"upstream_url: must start with http:// or https://, got {self.upstream_url!r}"
            )
        self.upstream_url = self.upstream_url.rstrip("/")
        if self.queue_url and not self.record_bucket:
            raise SettingsError("record_bucket: must be set with queue_url (large records go there)")
        self.data_dir = Path(self.data_dir)
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.type == "bool" and not isinstance(value, bool):
                raise SettingsError(f"{f.name}: must be true or false, got {value!r}")
            if f.type in ("int", "float"):
                # Every number here is a size or a duration: zero or less would stop the proxy working.
                wrong = isinstance(value, bool) or not isinstance(value, int | float)
                wrong = wrong or (f.type == "int" and not isinstance(value, int))
                if wrong or not value > 0 or (isinstance(value, float) and math.isnan(value)):
                    raise SettingsError(f"{f.name}: must be a number greater than 0, got {value!r}")

    @property
    def spool_dir(self) -> Path:
        return self.data_dir / "spool"

    @property
    def secrets_path(self) -> Path:
        return self.data_dir / "secrets.json"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        """Settings from ``environ`` (the process's environment by default): an unset or empty
        variable keeps the default; ``overrides`` that are not None win over both."""
        environ = os.environ if environ is None else environ
        types = {f.name: str(f.type) for f in dataclasses.fields(cls)}
        values: dict[str, object] = {}
        for var, field in ENV_FIELDS.items():
            raw = environ.get(var)
            if raw:
                try:
                    values[field] = PARSERS[types[field]](raw)
                except ValueError as exc:
                    raise SettingsError(f"{var}: {exc}") from None
        values.update({k: v for k, v in overrides.items() if v is not None})
        try:
            return cls(**values)  # type: ignore[arg-type]
        except SettingsError as exc:
            # Name the variable the bad value came from, not only the field.
            field, _, why = str(exc).partition(": ")
            source = next((v for v, f in ENV_FIELDS.items() if f == field and f not in overrides), field)
            raise SettingsError(f"{source}: {why}") from None


def _bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on", "t", "y"):
        return True
    if value in ("0", "false", "no", "off", "f", "n"):
        return False
    raise ValueError(f"must be true or false, got {raw!r}")


def _int(raw: str) -> int:
    try:
        return int(raw.strip())
    except ValueError:
        raise ValueError(f"must be a whole number, got {raw!r}") from None


def _float(raw: str) -> float:
    try:
        return float(raw.strip())
    except ValueError:
        raise ValueError(f"must be a number, got {raw!r}") from None


# How a variable's text becomes a field's value, by the field's declared type.
PARSERS: dict[str, Callable[[str], object]] = {
    "str": str.strip,
    "str | None": str.strip,
    "Path": Path,
    "bool": _bool,
    "int": _int,
    "float": _float,
}

# Which variable sets which field; the CDK stack sets them from the same constants (nexus.env).
ENV_FIELDS = {
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
    env.QUEUE_URL: "queue_url",
    env.RECORD_BUCKET: "record_bucket",
    env.SECRETS_PREFIX: "secrets_prefix",
    env.LAMBDA_FUNCTION_NAME: "lambda_function",
}
