"""Which CloudWatch metrics a batch of stored requests produces (pure; emitted as EMF by ingest).

Metrics come from ingest, not the proxy: ingest sees every record with its tokens and cost, and the
hot path stays free of the work. Dimensions are low-cardinality only (status, model, team); request,
session and conversation ids go in the metadata of the log line, never in dimensions.

The names are shared with ``infra/observability.py``, which builds the alarms and dashboard on them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

NAMESPACE = "Nexus"
SERVICE = "nexus-ingest"  # the ``service`` dimension Powertools adds to every metric set

# Service-level metrics (dimension: service)
REQUESTS = "Requests"
PROXY_ERRORS = "ProxyErrors"  # answers the proxy produced itself with a 5xx (upstream unreachable)
UPSTREAM_5XX = "Upstream5xx"
UPSTREAM_429 = "Upstream429"
TTFB = "TimeToFirstByte"
DURATION = "Duration"
INGEST_DELAY = "IngestDelay"  # received at the proxy -> stored
INGEST_POISON = "IngestPoison"
# From the proxy's log lines (metric filters): records whose queue message could not be sent, kept in
# S3 for ingest's replay; and records neither SQS nor S3 took, only in their log line.
RECORDS_SPILLED = "RecordsSpilled"
RECORDS_UNSENT = "RecordsUnsent"
# By upstream status (dimensions: service, Status)
UPSTREAM_ERRORS = "UpstreamErrors"
# By model and team (dimensions: service, Model, Team)
MODEL_REQUESTS = "ModelRequests"
INPUT_TOKENS = "InputTokens"
OUTPUT_TOKENS = "OutputTokens"
CACHE_READ_TOKENS = "CacheReadTokens"
CACHE_WRITE_TOKENS = "CacheWriteTokens"
COST = "CostUSD"

MAX_IDS = 100  # request ids carried in one metric set's metadata

# The gateway's workers (ECS tasks) publish these themselves, as EMF (dimension: service). The busy
# and warm counts are one datapoint per task per interval, so their Average is the per-task load
# that the service scales on.
GATEWAY_SERVICE = "nexus-gateway"
GATEWAY_BUSY_SESSIONS = "GatewayBusySessions"  # Claude Code sessions in a turn
GATEWAY_WARM_SESSIONS = "GatewayWarmSessions"  # sessions alive, busy or idle
GATEWAY_REJECTED = "GatewayRejected"  # turns refused with 429 (queue full or waited too long)
GATEWAY_FIRST_DELTA = "GatewayFirstDelta"  # ms from request to the first streamed token
GATEWAY_ERRORS = "GatewayErrors"  # answers the gateway produced itself with a 5xx
GATEWAY_WORKER_STARTS = "GatewayWorkerStarts"  # a worker task started (restarts show as extra starts)
GATEWAY_UNREACHABLE = "GatewayUnreachable"  # the front could not reach the router (answered 502)
GATEWAY_PUBLISH_S = 60  # how often a worker publishes its busy/warm counts


@dataclass
class MetricSet:
    """One EMF document: a dimension set, its values (name -> (unit, [values])) and metadata."""

    dimensions: dict[str, str]
    values: dict[str, tuple[str, list[float]]] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)

    def add(self, name: str, unit: str, value: float) -> None:
        values = self.values.setdefault(name, (unit, []))[1]
        if unit == "Milliseconds" or not values:
            values.append(float(value))  # latencies keep every value, for percentiles
        else:
            values[0] += float(value)  # counts and cost are only ever summed: send one total


def _answered_by_proxy(row: dict[str, Any]) -> bool:
    # Upstream answers carry the upstream's headers; the proxy's own error answers carry none.
    return row.get("response_headers") in (None, "[]")


def metric_sets(rows: list[dict[str, Any]], poison: int = 0, now: float | None = None) -> list[MetricSet]:
    """Metric sets for the rows of newly stored requests (``Prepared.row``) and the poison count."""
    service = MetricSet({})
    by_status: dict[int, MetricSet] = {}
    by_model: dict[tuple[str, str], MetricSet] = {}
    ids: list[str] = []
    for row in rows:
        ids.append(row["id"])
        service.add(REQUESTS, "Count", 1)
        status = row.get("status")
        if status is not None and status >= 500 and _answered_by_proxy(row):
            service.add(PROXY_ERRORS, "Count", 1)
        elif status is not None and status >= 400:
            if status >= 500:
                service.add(UPSTREAM_5XX, "Count", 1)
            elif status == 429 and not _answered_by_proxy(row):
                service.add(UPSTREAM_429, "Count", 1)
            if not _answered_by_proxy(row):  # the proxy's own 4xx (a bad Nexus key) are not upstream's
                s = by_status.setdefault(status, MetricSet({"Status": str(status)}))
                s.add(UPSTREAM_ERRORS, "Count", 1)
                s.metadata.setdefault("request_ids", []).append(row["id"])
        if row.get("ttfb_ms") is not None:
            service.add(TTFB, "Milliseconds", row["ttfb_ms"])
        if row.get("duration_ms") is not None:
            service.add(DURATION, "Milliseconds", row["duration_ms"])
        if now is not None and row.get("received_at") is not None:
            service.add(INGEST_DELAY, "Milliseconds", max(0.0, (now - row["received_at"].timestamp()) * 1000))
        if row.get("model") and row.get("input_tokens") is not None:
            team = row.get("team") or "none"
            m = by_model.setdefault((row["model"], team), MetricSet({"Model": row["model"], "Team": team}))
            m.add(MODEL_REQUESTS, "Count", 1)
            m.add(INPUT_TOKENS, "Count", row["input_tokens"] or 0)
            m.add(OUTPUT_TOKENS, "Count", row.get("output_tokens") or 0)
            m.add(CACHE_READ_TOKENS, "Count", row.get("cache_read_input_tokens") or 0)
            m.add(CACHE_WRITE_TOKENS, "Count", row.get("cache_creation_input_tokens") or 0)
            if row.get("cost_usd") is not None:
                m.add(COST, "None", float(row["cost_usd"]))
            m.metadata.setdefault("request_ids", []).append(row["id"])
    if poison:
        service.add(INGEST_POISON, "Count", poison)
    service.metadata["request_ids"] = ids
    out = [service] if service.values else []
    out += [*by_status.values(), *by_model.values()]
    for s in out:
        s.metadata["request_ids"] = s.metadata["request_ids"][:MAX_IDS]
    return out
