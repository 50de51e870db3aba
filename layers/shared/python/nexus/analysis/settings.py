"""The analysis settings: one document in the secret store (``nexus/analysis``), written by
``nexus analysis setup`` / ``nexus analysis auto`` and read by every runner.

- ``team`` and ``key``: the analysis identity, a Nexus key (user ``analysis``) of a team in
  team-key mode: its calls go through the proxy on the team's credential, recorded and costed there.
- ``model``, ``provider`` (``anthropic`` through the proxy, or ``bedrock``), ``bedrock_region``.
- ``budget_tokens``: condensed transcript per model call (longer conversations are chunked).
- ``auto``: per-team opt-in to automatic analysis of conversations idle for ``idle_minutes``, at most
  ``daily_cap`` a day (UTC) per team.
"""

from __future__ import annotations

import json
from typing import Literal

from pydantic import BaseModel, Field

from nexus.analysis.condense import DEFAULT_BUDGET
from nexus.secret_store import SecretStore

ANALYSIS_SECRET = "nexus/analysis"
DEFAULT_MODEL = "claude-sonnet-5"
ANALYSIS_USER = "analysis"


class AutoPolicy(BaseModel):
    idle_minutes: int = Field(30, ge=1, le=7 * 24 * 60)
    daily_cap: int = Field(20, ge=0, le=10_000)


class AnalysisSettings(BaseModel):
    team: str | None = None
    key: str | None = None
    model: str = DEFAULT_MODEL
    provider: Literal["anthropic", "bedrock"] = "anthropic"
    bedrock_region: str | None = None
    budget_tokens: int = Field(DEFAULT_BUDGET, ge=1000, le=150_000)
    auto: dict[str, AutoPolicy] = Field(default_factory=dict)


def load(store: SecretStore) -> AnalysisSettings:
    raw = store.get(ANALYSIS_SECRET)
    return AnalysisSettings.model_validate(json.loads(raw)) if raw else AnalysisSettings()


def save(store: SecretStore, settings: AnalysisSettings) -> None:
    store.put(ANALYSIS_SECRET, settings.model_dump_json(exclude_none=True))
