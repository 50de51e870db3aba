"""The pipeline's steps: the same functions run as the state machine's Lambda tasks
(``handler.py``) and, in order, in ``nexus dev``'s runner (``runner.py``).

Each step takes the state (a JSON object) and returns its result. Data steps (``load``,
``read_chunk``, ``store``, ``record_failure``, ``sweep``) use the database; the model steps (``call``,
``validate``) do not (in AWS they run outside the VPC, where the proxy's URL is reachable). Chunk
text travels from the database to the call within one Map iteration, never through the whole
execution's state.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg
from nexus.alert_events import AlertEvent, Notifier
from nexus.analysis import condense, model, prompt, store
from nexus.analysis import settings as analysis_settings
from nexus.analysis.pipeline import VALIDATION_RETRIES
from nexus.analysis.schema import Facts, ModelAnalysis, StoredAnalysis, StoredTip
from nexus.analysis.validate import InvalidAnalysis, check
from nexus.secret_store import SecretStore

log = logging.getLogger("nexus.analysis")
State = dict[str, Any]
ANALYSIS_DONE = "analysis_done"


class AnalysisInvalid(Exception):
    """The model's answer stayed invalid after the retry with the error (the state machine's
    ``InvalidAnalysis`` failure). ``cause`` is the failure's cause as the state machine writes it: the
    validation result as JSON, so the tokens the invalid answers cost are recorded with the reason."""

    def __init__(self, validation: State) -> None:
        super().__init__(validation["error"])
        self.cause = json.dumps(validation)


@dataclass
class Context:
    """What steps need from their runner: a database connection, the secret store (the analysis
    settings), the proxy's URL for model calls, where "analysis done" events go, and the Bedrock
    region when the stage sends model calls to Bedrock (it overrides the settings' provider: the
    stage's IAM grant decides what can work)."""

    connection: Callable[[], AbstractContextManager[psycopg.Connection]]
    secrets: SecretStore
    proxy_url: str | None = None
    notifier: Notifier | None = None
    bedrock_region: str | None = None

    def settings(self) -> analysis_settings.AnalysisSettings:
        conf = analysis_settings.load(self.secrets)
        if self.bedrock_region:
            conf = conf.model_copy(update={"provider": "bedrock", "bedrock_region": self.bedrock_region})
        return conf


# -- data steps ---------------------------------------------------------------------------------------


def load(ctx: Context, state: State) -> State:
    """Mark the run running, condense the conversation, and decide: ``skip`` when an analysis of the
    same input (prompt version, model, transcript) exists; otherwise the chunks to analyse."""
    analysis_id = state["analysis_id"]
    conf = ctx.settings()
    with ctx.connection() as conn:
        row = store.start(conn, analysis_id)
        if row is None:
            return {"analysis_id": analysis_id, "skip": True, "reason": "no such run, or it is over"}
        loaded = store.load_conversation(conn, row["conversation_id"])
        condensed = condense.condense(
            loaded.segments, conf.budget_tokens, requests=loaded.request_count, retries=loaded.retries
        )
        facts = prompt.facts_line(condensed.stats)
        digest = prompt.input_hash(conf.model, condensed.chunks, facts)
        base = {"analysis_id": analysis_id, "conversation_id": row["conversation_id"], "team": row["team"]}
        existing = store.done_for_input(conn, row["conversation_id"], prompt.PROMPT_VERSION, digest)
        if existing is not None or not condensed.chunks:
            store.drop(conn, analysis_id)
            return {**base, "skip": True, "reason": "unchanged since analysis " + str(existing)}
        store.save_chunks(
            conn,
            analysis_id,
            condensed.chunks,
            prompt_version=prompt.PROMPT_VERSION,
            input_hash=digest,
            model=conf.model,
            request_count=loaded.request_count,
            source_tokens=condensed.source_tokens,
            condensed_tokens=condensed.condensed_tokens,
        )
    count = len(condensed.chunks)
    return {
        **base,
        "skip": False,
        "model": conf.model,
        "prompt_version": prompt.PROMPT_VERSION,
        "input_hash": digest,
        "facts": facts,
        "chunk_count": count,
        "chunks": [
            {"kind": "chunk", "analysis_id": analysis_id, "index": i, "count": count, "facts": facts}
            for i in range(count)
        ],
        "source_tokens": condensed.source_tokens,
        "condensed_tokens": condensed.condensed_tokens,
        "request_count": loaded.request_count,
    }


def read_chunk(ctx: Context, item: State) -> State:
    """A Map item ready for the model: its transcript read from the database."""
    with ctx.connection() as conn:
        text = store.chunk(conn, item["analysis_id"], item["index"])
    return {**item, "material": text, "attempt": 0, "usage": []}


def combine_item(state: State) -> State:
    """The one item of the combine Map: the chunks' analyses (built by a Pass state in AWS)."""
    return {
        "kind": "combine",
        "analysis_id": state["analysis_id"],
        "facts": state["facts"],
        "material": state["partials"],
        "index": 0,
        "count": 1,
        "attempt": 0,
        "usage": [],
    }


def _total(usages: list[dict[str, Any]]) -> dict[str, Any]:
    costs = [u.get("cost_usd") for u in usages]
    return {
        "input_tokens": sum(int(u.get("input_tokens") or 0) for u in usages),
        "output_tokens": sum(int(u.get("output_tokens") or 0) for u in usages),
        "cost_usd": round(sum(c for c in costs if c is not None), 8)
        if any(c is not None for c in costs)
        else None,
        "calls": len(usages),
    }


def store_result(ctx: Context, state: State) -> State:
    """Write the analysis (the combined one, or the only chunk's) with its facts: status done."""
    results = state.get("combined") or state["partials"]
    final = results[0]
    usages = [u for p in state["partials"] for u in p["usage"]]
    if state.get("combined"):
        usages += state["combined"][0]["usage"]
    totals = _total(usages)
    with ctx.connection() as conn:
        ids = store.request_ids(conn, state["conversation_id"])
        base = ModelAnalysis.model_validate(final["analysis"])
        analysis = StoredAnalysis(
            **{**base.model_dump(), "tips": []},
            facts=Facts(
                model=next((u["model"] for u in usages if u.get("model")), state["model"]),
                prompt_version=state["prompt_version"],
                input_hash=state["input_hash"],
                input_tokens=totals["input_tokens"],
                output_tokens=totals["output_tokens"],
                cost_usd=totals["cost_usd"],
                calls=totals["calls"],
                chunks=state["chunk_count"],
                source_tokens=state["source_tokens"],
                condensed_tokens=state["condensed_tokens"],
                request_count=state["request_count"],
            ),
        )
        analysis = analysis.model_copy(
            update={"tips": [StoredTip(**t.model_dump(), request_id=ids.get(t.request)) for t in base.tips]}
        )
        store.finish(conn, state["analysis_id"], analysis)
    return {
        "analysis_id": state["analysis_id"],
        "conversation_id": state["conversation_id"],
        "team": state.get("team"),
        "outcome": analysis.outcome,
        "cost_usd": totals["cost_usd"],
        "calls": totals["calls"],
    }


def failure_reason(error: dict[str, Any]) -> tuple[str, dict[str, Any] | None]:
    """A step's failure as Step Functions reports it (``Error``, ``Cause``) as one line, and the
    model usage it carries. A Lambda's cause is its error JSON; an invalid answer's is the validation
    result (its error and the usage of the calls that produced it)."""
    name, cause = str(error.get("Error") or "Error"), error.get("Cause") or ""
    try:
        doc = json.loads(cause) if isinstance(cause, str) and cause.startswith("{") else None
    except ValueError:
        doc = None
    if not isinstance(doc, dict):
        return f"{name}: {cause}".strip(), None
    message = doc.get("errorMessage") or doc.get("error") or cause
    usage = doc.get("usage")
    spent = _total(usage) if isinstance(usage, list) and usage else None
    return f"{name}: {message}".strip(), spent


def record_failure(ctx: Context, state: State) -> State:
    """The run failed: its reason, and what its model calls cost when the failure says (an invalid
    answer's tokens were spent)."""
    reason, spent = failure_reason(state.get("error") or {})
    with ctx.connection() as conn:
        store.fail(conn, state["analysis_id"], reason, spent)
    log.warning("analysis %s failed: %s", state["analysis_id"], reason)
    return {"analysis_id": state["analysis_id"], "status": "failed", "reason": reason}


def sweep(ctx: Context, state: State) -> State:
    """The automatic trigger: queue runs for opted-in teams' idle conversations, within their caps."""
    conf = ctx.settings()
    now = datetime.fromisoformat(state["now"]) if state.get("now") else datetime.now(UTC)
    with ctx.connection() as conn:
        queued = [
            q
            for cid in store.idle_candidates(conn, conf.auto, now)
            if (q := store.enqueue(conn, cid, "auto")) is not None and q.created
        ]
    return {"queued": [{"analysis_id": q.id, "conversation_id": q.conversation_id} for q in queued]}


# -- model steps --------------------------------------------------------------------------------------


def _messages(item: State) -> tuple[str, list[dict[str, Any]]]:
    if item["kind"] == "combine":
        partials = [p["analysis"] for p in item["material"]]
        system, first = prompt.COMBINE, prompt.combine_message(partials, item["facts"])
    else:
        system = prompt.SYSTEM
        first = prompt.chunk_message(
            item["material"], item.get("index", 0), item.get("count", 1), item["facts"]
        )
    messages: list[dict[str, Any]] = [{"role": "user", "content": first}]
    if item.get("feedback"):
        messages += [
            {"role": "assistant", "content": item.get("previous") or "(empty)"},
            {"role": "user", "content": prompt.retry_message(item["feedback"])},
        ]
    return system, messages


def call(ctx: Context, item: State) -> State:
    """One model call; model errors propagate (the runner retries the retryable ones)."""
    system, messages = _messages(item)
    answer = model.call(ctx.settings(), ctx.proxy_url, system, messages)
    return {"text": answer.text, "usage": answer.usage()}


def _quotable(item: State) -> dict[int, str]:
    if item["kind"] == "combine":
        quotes: dict[int, str] = {}
        for p in item["material"]:
            for t in p["analysis"].get("tips", []):
                quotes[int(t["request"])] = quotes.get(int(t["request"]), "") + "\n" + str(t["quote"])
        return quotes
    return condense.prompts_in(item["material"])


def validate(_: Context | None, item: State) -> State:
    """The answer checked; usage so far carried along (an invalid answer's tokens were spent too)."""
    usage = [*item.get("usage", []), item["answer"]["usage"]]
    try:
        analysis = check(item["answer"]["text"], _quotable(item))
    except InvalidAnalysis as exc:
        return {"valid": False, "analysis": None, "error": str(exc), "usage": usage}
    return {"valid": True, "analysis": analysis.model_dump(mode="json"), "error": None, "usage": usage}


def again(item: State) -> State:
    """The item for the one retry after an invalid answer (a Pass state in AWS)."""
    return {
        **{k: v for k, v in item.items() if k not in ("answer", "validation")},
        "attempt": item["attempt"] + 1,
        "previous": item["answer"]["text"],
        "feedback": item["validation"]["error"],
        "usage": item["validation"]["usage"],
    }


def analyse_item(
    ctx: Context, item: State, call_step: Callable[[Context, State], State] | None = None
) -> State:
    """One Map item through read -> call -> validate (-> call again once), as the state machine's
    iterator runs it; the local runner's version (``call_step`` adds its retries)."""
    do_call = call_step or call
    if item["kind"] == "chunk":
        item = read_chunk(ctx, item)
    while True:
        item = {**item, "answer": do_call(ctx, item)}
        item = {**item, "validation": validate(ctx, item)}
        if item["validation"]["valid"]:
            return {"analysis": item["validation"]["analysis"], "usage": item["validation"]["usage"]}
        if item["attempt"] >= VALIDATION_RETRIES:
            raise AnalysisInvalid(item["validation"])
        item = again(item)


def notify(ctx: Context, result: State) -> None:
    if ctx.notifier is None:
        return
    ctx.notifier.notify(
        AlertEvent(
            kind=ANALYSIS_DONE,
            level="info",
            team=result.get("team"),
            subject=f"conversation:{result['conversation_id']}",
            message=f"conversation {result['conversation_id']} analysed: {result['outcome']}",
            dedup_key=f"analysis:{result['analysis_id']}",
            facts={k: result.get(k) for k in ("analysis_id", "outcome", "cost_usd", "calls")},
        )
    )
