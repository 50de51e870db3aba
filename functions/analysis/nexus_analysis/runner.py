"""The pipeline in-process, for ``nexus dev`` and ``nexus analyze``: the same steps as the state
machine, in its order (load -> chunks, each read -> call -> validate -> once more on an invalid
answer -> combine when there are several -> store -> notify), the same retry policy for model
errors (``nexus.analysis.pipeline``) and the same catch-all: any failure is recorded as the run's
reason.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from nexus.analysis import model, pipeline, store
from nexus.analysis import settings as analysis_settings

from nexus_analysis import steps
from nexus_analysis.steps import Context, State

log = logging.getLogger("nexus.analysis")
RETRYABLE = tuple(getattr(model, name) for name in pipeline.RETRYABLE)


def with_retries(sleep: Callable[[float], None] = time.sleep) -> Callable[[Context, State], State]:
    """``steps.call`` under the state machine's Retry: retryable model errors wait
    ``RETRY_INTERVAL_S`` * ``RETRY_BACKOFF``^k and try again, at most ``RETRY_MAX_ATTEMPTS`` times."""

    def call(ctx: Context, item: State) -> State:
        delay: float = pipeline.RETRY_INTERVAL_S
        for attempt in range(pipeline.RETRY_MAX_ATTEMPTS + 1):
            try:
                return steps.call(ctx, item)
            except RETRYABLE as exc:
                if attempt == pipeline.RETRY_MAX_ATTEMPTS:
                    raise
                log.info("analysis model call: %s; retrying in %.0f s", type(exc).__name__, delay)
                sleep(delay)
                delay *= pipeline.RETRY_BACKOFF
        raise AssertionError("unreachable")

    return call


def run(ctx: Context, analysis_id: str, sleep: Callable[[float], None] = time.sleep) -> State:
    """Run one queued (or claimed) analysis to its end; the final state: the stored result, the skip,
    or the failure (recorded, not raised)."""
    call = with_retries(sleep)
    try:
        state = steps.load(ctx, {"analysis_id": analysis_id})
        if state["skip"]:
            return state
        with ThreadPoolExecutor(pipeline.MAP_CONCURRENCY, thread_name_prefix="analysis-chunk") as pool:
            partials = list(pool.map(lambda item: steps.analyse_item(ctx, item, call), state["chunks"]))
        state = {**state, "partials": partials}
        if state["chunk_count"] > 1:
            state["combined"] = [steps.analyse_item(ctx, steps.combine_item(state), call)]
        result = steps.store_result(ctx, state)
        steps.notify(ctx, result)
        return result
    except Exception as exc:
        error = {"Error": type(exc).__name__, "Cause": str(exc)}
        if isinstance(exc, steps.AnalysisInvalid):
            error = {"Error": pipeline.INVALID, "Cause": exc.cause}
        return steps.record_failure(ctx, {"analysis_id": analysis_id, "error": error})


def run_queued(ctx: Context, limit: int = 4) -> list[State]:
    """Claim queued runs and run them (a sweep of the queue)."""
    with ctx.connection() as conn:
        claimed = store.claim_queued(conn, limit)
    return [run(ctx, analysis_id) for analysis_id, _ in claimed]


def serve(ctx: Context, stop: threading.Event, poll_s: float = 1.0, sweep_s: float = 60.0) -> None:
    """``nexus dev``'s analysis runner: runs what the dashboard or the CLI queued, and every
    ``sweep_s`` queues idle conversations of opted-in teams (their daily caps apply)."""
    next_sweep = 0.0
    try:
        with ctx.connection() as conn:
            if n := store.requeue_running(conn):
                log.info("requeued %d analyses a previous run left unfinished", n)
    except Exception:
        log.exception("could not requeue unfinished analyses")
    while not stop.is_set():
        try:
            if time.monotonic() >= next_sweep:
                next_sweep = time.monotonic() + sweep_s
                if analysis_settings.load(ctx.secrets).auto:
                    queued = steps.sweep(ctx, {})["queued"]
                    if queued:
                        log.info("queued %d idle conversations for analysis", len(queued))
            while not stop.is_set() and run_queued(ctx, 1):
                pass
        except Exception:  # the database may be restarting: try again at the next poll
            log.exception("analysis runner pass failed")
        stop.wait(poll_s)


def local_context(database_url: str, secrets: Any, proxy_url: str, notifier: Any = None) -> Context:
    import contextlib

    import psycopg

    @contextlib.contextmanager
    def connection() -> Any:
        with psycopg.connect(database_url, autocommit=True) as conn:
            yield conn

    return Context(connection=connection, secrets=secrets, proxy_url=proxy_url, notifier=notifier)
