"""Turn a raw record into what Postgres stores: derived fields plus content-addressed pieces.

Pure: no I/O here. ``nexus.db.records`` writes the result; the ingest consumers (local spool, SQS)
only move records between the two.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from nexus import classify, pg_text, pricing, sse
from nexus.bodies import PieceCache, sha256, split_body
from nexus.encoding import decode_body
from nexus.headers import CLIENT_HEADER
from nexus.record import RawRecord
from nexus.tracking import keys as tracking_keys
from nexus.tracking.linkable import LINKED_KINDS, LinkInput
from nexus.tracking.normalize import NormCache

RATELIMIT_PREFIX = "anthropic-ratelimit-"


@dataclass(slots=True)
class Prepared:
    row: dict[str, Any]
    blobs: dict[bytes, bytes] = field(default_factory=dict)
    # (id, parent_id, message_hash, depth) for every position of the message list
    chain: list[tuple[bytes, bytes | None, bytes, int]] = field(default_factory=list)
    link: LinkInput | None = None  # set for requests that belong in a conversation


def _ratelimit(headers: list[list[str]]) -> dict[str, str] | None:
    out = {k: v for k, v in headers if k.startswith(RATELIMIT_PREFIX) or k == "retry-after"}
    return out or None


def _response(rec: RawRecord) -> tuple[dict[str, Any] | None, dict[str, Any], str | None, bool]:
    """(response JSON, usage, upstream error message, stream complete?)."""
    try:
        body = decode_body(rec.response_body, rec.header("content-encoding", "response"))
    except ValueError as exc:
        return None, {}, str(exc), False
    ctype = (rec.header("content-type", "response") or "").lower()
    if "text/event-stream" in ctype:
        result = sse.rebuild_message(body)
        err = result.error.get("message") if result.error else None
        if result.error and result.message is None:
            return {"type": "error", "error": result.error}, result.usage, err, result.complete
        return result.message, result.usage, err, result.complete
    if not body:
        return None, {}, None, True
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return {"_text": body.decode("utf-8", "replace")[:100_000]}, {}, None, True
    if not isinstance(doc, dict):
        return {"_value": doc}, {}, None, True
    err = None
    if doc.get("type") == "error" or (rec.status or 0) >= 400:
        e = doc.get("error")
        err = e.get("message") if isinstance(e, dict) else str(doc)[:500]
    return doc, doc.get("usage") or {}, err, True


# One per ingest process: conversations resend their history, tools and system prompt every turn.
PIECES = PieceCache()
NORMS = NormCache()


def _clean_stream(rec: RawRecord, response: Any, complete: bool, error: str | None) -> bool:
    ctype = (rec.header("content-type", "response") or "").lower()
    return "text/event-stream" in ctype and complete and error is None and isinstance(response, dict)


def _response_json(response: Any) -> tuple[str | None, bool]:
    """The response as jsonb text, and whether NULs had to be replaced (then its raw bytes are kept,
    since the stored JSON no longer rebuilds them exactly)."""
    if response is None:
        return None, False
    encoded = orjson.dumps(response)
    if pg_text.json_has_nul(encoded):
        return orjson.dumps(pg_text.clean(response)).decode(), True
    return encoded.decode(), False


def prepare(rec: RawRecord, pieces: PieceCache | None = PIECES) -> Prepared:
    out = Prepared(row={})
    split = split_body(rec.request_body, pieces) if rec.request_body else None
    body = split.parsed if split else None
    if split:
        out.blobs.update(split.blobs)
        prev: bytes | None = None
        for depth, (node, h) in enumerate(zip(split.chain, split.message_hashes, strict=True)):
            out.chain.append((node, prev, h, depth + 1))
            prev = node

    headers_blob = orjson.dumps(rec.request_headers)
    headers_hash = sha256(headers_blob)
    out.blobs[headers_hash] = headers_blob

    agent_id = rec.header("x-claude-code-agent-id")
    session_id = rec.header("x-claude-code-session-id")
    response, usage_doc, upstream_err, complete = (
        _response(rec) if rec.status is not None else (None, {}, None, False)
    )
    usage = pricing.Usage.from_api(usage_doc)
    model = (body or {}).get("model") if isinstance(body, dict) else None
    if not model and isinstance(response, dict):
        model = response.get("model")
    ok = rec.status is not None and 200 <= rec.status < 300
    has_usage = bool(usage_doc)
    cost = pricing.cost_usd(model, usage) if has_usage else None
    cost_flag = "unknown_model" if has_usage and cost is None else None

    error = rec.error or upstream_err
    stream = bool(body.get("stream")) if isinstance(body, dict) else None
    if ok and stream and not complete and error is None:
        error = "stream_incomplete"

    kind = classify.classify(rec.path, body, agent_id, rec.header(CLIENT_HEADER) == "gateway")
    keys = None
    if kind in LINKED_KINDS and isinstance(body, dict) and split is not None:
        keys = tracking_keys.compute(
            rec.team,
            rec.user,
            body,
            response if ok else None,
            kind,
            split.message_hashes,
            NORMS if pieces is not None else None,
        )
    elif session_id and rec.status is not None:
        # side calls, count_tokens, quota probes: attached to their session's conversation
        keys = tracking_keys.TrackingKeys(b"")
    context = usage.prompt_tokens if has_usage else None
    if keys is not None:
        keys.title = pg_text.text(keys.title)
        keys.prompt_text = pg_text.text(keys.prompt_text)
        keys.answer_text = pg_text.text(keys.answer_text)
    response_json, had_nul = _response_json(response)
    if isinstance(model, str):
        model = pg_text.text(model)

    out.row = {
        "id": rec.id,
        "received_at": datetime.fromtimestamp(rec.received_at, UTC),
        "team": rec.team,
        "user_id": rec.user,
        "key_id": rec.key_id,
        "auth_mode": rec.auth_mode,
        "account": rec.account,
        "session_id": session_id,
        "agent_id": agent_id,
        "method": rec.method,
        "path": rec.path,
        "query": pg_text.text(rec.query),
        "model": model if isinstance(model, str) else None,
        "kind": kind,
        "stream": stream,
        "status": rec.status,
        "error": pg_text.text(error) if error else error,
        "stop_reason": _stop_reason(response),
        "input_tokens": usage.input_tokens if has_usage else None,
        "output_tokens": usage.output_tokens if has_usage else None,
        "cache_creation_input_tokens": usage.cache_creation_input_tokens if has_usage else None,
        "cache_creation_5m_tokens": usage.cache_creation_5m if has_usage else None,
        "cache_creation_1h_tokens": usage.cache_creation_1h if has_usage else None,
        "cache_read_input_tokens": usage.cache_read_input_tokens if has_usage else None,
        "cost_usd": cost,
        "cost_flag": cost_flag,
        "price_version": pricing.PRICE_VERSION if cost is not None else None,
        "ttfb_ms": rec.ttfb_ms,
        "duration_ms": rec.duration_ms,
        "upstream": rec.upstream,
        "request_headers": headers_hash,
        "response_headers": orjson.dumps(rec.response_headers).decode(),
        "ratelimit": orjson.dumps(rl).decode() if (rl := _ratelimit(rec.response_headers)) else None,
        "body_layout": orjson.dumps(split.layout).decode() if split else None,
        "messages_chain": out.chain[-1][0] if out.chain else None,
        "message_count": len(out.chain),
        "body_size": len(rec.request_body),
        "response": response_json,
        # A complete stream is fully described by the message rebuilt from it: its event framing is
        # not kept (half the stored size of a response). Anything else keeps its exact bytes.
        "response_raw": None
        if _clean_stream(rec, response, complete, error) and not had_nul
        else rec.response_body or None,
        "context_tokens": context,
        **_key_columns(keys),
    }
    if keys is not None:
        r = out.row
        out.link = LinkInput(
            rec.id,
            r["received_at"],
            rec.team,
            rec.user,
            r["session_id"],
            agent_id,
            r["model"],
            usage.input_tokens,
            usage.output_tokens,
            usage.cache_creation_input_tokens,
            usage.cache_read_input_tokens,
            cost,
            context,
            keys,
            kind,
        )
    return out


def _stop_reason(response: Any) -> str | None:
    reason = response.get("stop_reason") if isinstance(response, dict) else None
    return pg_text.text(reason) if isinstance(reason, str) else None


KEY_COLUMNS = (
    "scope_key",
    "prefix_key",
    "tail_key",
    "messages_key",
    "start_key",
    "continuation_key",
    "summary_key",
)


def _key_columns(keys: tracking_keys.TrackingKeys | None) -> dict[str, bytes | None]:
    if keys is None:
        return dict.fromkeys(KEY_COLUMNS)
    return {"scope_key": keys.scope, **{c: getattr(keys, c) for c in KEY_COLUMNS[1:]}}
