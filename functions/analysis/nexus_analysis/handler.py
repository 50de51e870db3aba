"""Lambda entries of the analysis state machine: thin dispatchers onto ``steps``.

``data`` (in the VPC: the database) runs load, read_chunk, store and record_failure; ``model``
(outside the VPC: the proxy's URL is on the internet) runs call and validate; ``sweep`` (the
schedule) queues idle conversations and starts an execution for each. The state machine sends
``{"step": name, "state": <the state>}``; a step's result is the function's result, and a step's
exception is the task's error (its class name is what Retry and Catch match).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from typing import Any

import psycopg
from nexus import env
from nexus.analysis.launch import StepFunctionsLauncher
from nexus.db.connect import DatabaseSettings, connect

from nexus_analysis import steps

logging.getLogger().setLevel(logging.INFO)
_cached: dict[str, Any] = {}

DATA_STEPS = {
    "load": steps.load,
    "read_chunk": steps.read_chunk,
    "store": steps.store_result,
    "record_failure": steps.record_failure,
}
MODEL_STEPS = {"call": steps.call, "validate": steps.validate}


@contextlib.contextmanager
def _connection() -> Iterator[psycopg.Connection]:
    """One connection per execution environment, replaced when it is broken."""
    conn: psycopg.Connection | None = _cached.get("conn")
    if conn is None or conn.closed or conn.broken:
        conn = _cached["conn"] = connect(
            DatabaseSettings(), application_name="nexus-analysis", autocommit=True
        )
    yield conn


def _context() -> steps.Context:
    if "ctx" not in _cached:
        from nexus.aws import client
        from nexus.secrets_manager import SecretsManagerStore

        _cached["ctx"] = steps.Context(
            connection=_connection,
            secrets=SecretsManagerStore(client("secretsmanager"), os.environ.get(env.SECRETS_PREFIX, "")),
            proxy_url=os.environ.get(env.ANALYSIS_PROXY_URL),
            bedrock_region=os.environ.get(env.ANALYSIS_BEDROCK_REGION),
        )
    ctx: steps.Context = _cached["ctx"]
    return ctx


def _dispatch(table: dict[str, Any], event: dict[str, Any]) -> dict[str, Any]:
    step = event.get("step")
    if step not in table:
        raise ValueError(f"unknown step {step!r} (this function runs {', '.join(table)})")
    result: dict[str, Any] = table[step](_context(), event.get("state") or {})
    return result


def data(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    return _dispatch(DATA_STEPS, event)


def model(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    return _dispatch(MODEL_STEPS, event)


def sweep(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    result = steps.sweep(_context(), event or {})
    launcher = StepFunctionsLauncher(os.environ[env.ANALYSIS_STATE_MACHINE])
    for q in result["queued"]:
        launcher.start(q["analysis_id"], q["conversation_id"])
    return result
