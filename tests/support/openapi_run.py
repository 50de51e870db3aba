"""Running schemathesis's engine over a loaded schema, as its CLI does (every phase, every default
check), and reading its findings. The engine is driven directly: schemathesis's lazy pytest fixture
does not work with pytest 9."""

from __future__ import annotations

import tomllib
from collections import Counter
from pathlib import Path
from typing import Any

import schemathesis
import schemathesis.engine
from schemathesis.engine import Status, events

from tests.support.stack import REPO

SETTINGS = REPO / "schemathesis.toml"
SEED = 20260101  # the same cases every run: a finding reproduces


def config(headers: dict[str, str], max_examples: int, settings: Path = SETTINGS) -> schemathesis.Config:
    return schemathesis.Config.from_dict(
        {
            **tomllib.loads(settings.read_text()),  # what `st run` uses from the repository root
            "seed": SEED,
            "cache": {"enabled": False},  # and no state carried over from earlier runs
            "headers": headers,
            "generation": {"max-examples": max_examples},
        }
    )


def count_statuses(schema: Any) -> Counter[int]:
    """A counter of the statuses the API answered, filled as the run goes."""
    statuses: Counter[int] = Counter()

    @schema.hook
    def after_call(ctx: Any, case: Any, response: Any) -> None:
        statuses[response.status_code] += 1

    return statuses


def run(schema: Any) -> tuple[int, list[str]]:
    """(scenarios run, findings, each with the check, what failed and a curl to reproduce it)."""
    findings: list[str] = []
    scenarios = 0
    for event in schemathesis.engine.from_schema(schema).execute():
        scenarios += isinstance(event, events.ScenarioFinished)
        findings += _findings(event)
        if isinstance(event, events.EngineFinished):
            findings += [f"after the run: {f.title}: {f.message}" for f in event.failures]
    return scenarios, findings


def _findings(event: Any) -> list[str]:
    if isinstance(event, events.FatalError | events.NonFatalError):
        return [f"{type(event).__name__}: {getattr(event, 'info', None) or event}"]
    if not isinstance(event, events.ScenarioFinished) or event.status not in (Status.FAILURE, Status.ERROR):
        return []
    out = [f"{event.label}: {event.status}"]
    for checks in event.recorder.checks.values():
        for check in checks:
            if check.failure_info is not None:
                f = check.failure_info.failure
                out.append(f"  {check.name}: {f.title}: {f.message}\n    {check.failure_info.code_sample}")
    return out
