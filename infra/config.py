"""Typed per-stage settings. Constructs receive a StageConfig; none of them reads the environment."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class StageConfig:
    name: str
    account: str | None = None  # None: the CLI's current account
    region: str | None = None
    proxy_reserved_concurrency: int = 50
    proxy_timeout_s: int = 900
    log_retention_days: int = 30
    deletion_protection: bool = False
    alarm_email: str | None = None
    allowed_origins: tuple[str, ...] = ()


STAGES: dict[str, StageConfig] = {
    "staging": StageConfig(name="staging"),
    "prod": StageConfig(
        name="prod", proxy_reserved_concurrency=200, log_retention_days=365, deletion_protection=True
    ),
}


def load_stage(name: str) -> StageConfig:
    try:
        return STAGES[name]
    except KeyError:
        raise SystemExit(f"unknown stage {name!r}; choose one of {', '.join(STAGES)}") from None
