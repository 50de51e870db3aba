"""Typed per-stage settings. Constructs receive a StageConfig; none of them reads the environment."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

# Lambda Web Adapter layer, published by AWS in account 753240598075 in every commercial region.
WEB_ADAPTER_ACCOUNT = "753240598075"


@dataclass(frozen=True)
class Alarms:
    """Alarm thresholds; each alarm publishes to the stage's SNS topic."""

    proxy_5xx_percent: float = 1.0  # answers the proxy itself failed (not upstream errors passed on)
    upstream_5xx_percent: float = 5.0
    upstream_429_percent: float = 10.0
    queue_age_s: int = 300  # oldest record waiting for ingest
    db_cpu_percent: float = 80.0
    db_free_storage_gib: float = 2.0
    period_minutes: int = 5
    evaluation_periods: int = 3


@dataclass(frozen=True)
class StageConfig:
    name: str
    account: str | None = None  # None: the account and region of the deploying credentials
    region: str | None = None

    # Lambda platform. The layer of dependencies is built for exactly this (ADR 0009).
    architecture: str = "arm64"
    python_version: str = "3.14"
    web_adapter_layer_version: int = 28

    proxy_memory_mb: int = 512  # I/O-bound: billed for wall time while streaming (docs/cost.md)
    proxy_timeout_s: int = 900  # the streaming limit of a function URL
    proxy_reserved_concurrency: int | None = 50
    upstream_url: str = "https://api.anthropic.com"
    access_refresh_s: int = 30  # key revocations apply within this; each check is a Secrets Manager call

    ingest_memory_mb: int = 1024
    ingest_timeout_s: int = 60
    ingest_batch_size: int = 10  # the FIFO maximum
    ingest_max_concurrency: int = 4  # bounds database connections from ingest
    queue_retention_days: int = 14
    max_receive_count: int = 5  # deliveries before a record goes to the dead-letter queue
    large_record_retention_days: int = 30  # S3 copies of records too large for a message

    dashboard_memory_mb: int = 1024
    allowed_origins: tuple[str, ...] = ()  # CORS for the dashboard URL; empty: same origin only

    db_instance_class: str = "t4g.micro"
    db_allocated_storage_gib: int = 20
    db_max_allocated_storage_gib: int = 100
    db_multi_az: bool = False
    db_backup_retention_days: int = 7
    db_secret_rotation_days: int = 30
    deletion_protection: bool = False
    max_azs: int = 2

    log_retention_days: int = 30
    alarm_email: str | None = None
    alarms: Alarms = field(default_factory=Alarms)


STAGES: dict[str, StageConfig] = {
    "staging": StageConfig(name="staging", proxy_reserved_concurrency=20),
    "prod": StageConfig(
        name="prod",
        proxy_reserved_concurrency=200,
        ingest_max_concurrency=10,
        db_instance_class="t4g.small",
        db_multi_az=True,
        db_backup_retention_days=30,
        deletion_protection=True,
        log_retention_days=365,
    ),
}


def load_stage(name: str, **overrides: Any) -> StageConfig:
    """The named stage; ``overrides`` (from cdk context: account, region, alarm_email) win."""
    try:
        stage = STAGES[name]
    except KeyError:
        raise SystemExit(f"unknown stage {name!r}; choose one of {', '.join(STAGES)}") from None
    return replace(stage, **{k: v for k, v in overrides.items() if v is not None})
