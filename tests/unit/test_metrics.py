"""Which metrics a batch of stored requests produces: what the alarms and the dashboard read."""

from __future__ import annotations

from datetime import UTC, datetime

from nexus import metrics as m


def row(i: int, status: int | None, upstream_answered: bool = True, **kw) -> dict:
    return {
        "id": f"req-{i}",
        "status": status,
        "response_headers": '[["content-type","application/json"]]' if upstream_answered else "[]",
        "received_at": datetime.fromtimestamp(1000 + i, UTC),
        "ttfb_ms": 100.0 + i,
        "duration_ms": 900.0,
        **kw,
    }


def by_dims(sets: list[m.MetricSet]) -> dict[tuple[str, ...], list[m.MetricSet]]:
    out: dict[tuple[str, ...], list[m.MetricSet]] = {}
    for s in sets:
        out.setdefault(tuple(sorted(s.dimensions)), []).append(s)
    return out


def test_proxy_failures_upstream_errors_and_client_mistakes_are_told_apart() -> None:
    rows = [
        row(1, 200),
        row(2, 502, upstream_answered=False, error="upstream unreachable"),  # the proxy's own 5xx
        row(3, 401, upstream_answered=False),  # a bad Nexus key: the client's mistake
        row(4, 529),  # Anthropic overloaded
        row(5, 429),
        row(6, 400),  # an invalid request, answered by Anthropic
    ]
    sets = by_dims(m.metric_sets(rows))
    [service] = sets[()]
    assert service.values[m.REQUESTS] == ("Count", [6.0])
    assert service.values[m.PROXY_ERRORS] == ("Count", [1.0])
    assert service.values[m.UPSTREAM_5XX] == ("Count", [1.0])
    assert service.values[m.UPSTREAM_429] == ("Count", [1.0])
    assert service.values[m.TTFB][1] == [101.0, 102.0, 103.0, 104.0, 105.0, 106.0]  # every value kept
    statuses = {s.dimensions["Status"]: s for s in sets[("Status",)]}
    assert set(statuses) == {"529", "429", "400"}  # upstream answers only; 401 and 502 were ours
    assert statuses["529"].metadata["request_ids"] == ["req-4"]


def test_tokens_and_cost_are_summed_per_model_and_team_with_ids_in_metadata() -> None:
    usage = {"input_tokens": 10, "output_tokens": 5, "cache_read_input_tokens": 100, "cost_usd": 0.25}
    rows = [
        row(1, 200, model="claude-opus-5-5", team="a", **usage),
        row(2, 200, model="claude-opus-5-5", team="a", **usage),
        row(3, 200, model="claude-opus-5-5", team=None, **usage),
        row(4, 500),  # no usage: no model metrics
    ]
    groups = {
        (s.dimensions["Model"], s.dimensions["Team"]): s
        for s in by_dims(m.metric_sets(rows))[("Model", "Team")]
    }
    assert set(groups) == {("claude-opus-5-5", "a"), ("claude-opus-5-5", "none")}
    a = groups[("claude-opus-5-5", "a")]
    assert a.values[m.OUTPUT_TOKENS] == ("Count", [10.0])
    assert a.values[m.CACHE_READ_TOKENS] == ("Count", [200.0])
    assert a.values[m.COST] == ("None", [0.5])
    assert a.metadata == {"request_ids": ["req-1", "req-2"]}
    assert all("request_ids" not in s.dimensions for s in groups.values())


def test_ingest_delay_and_poison() -> None:
    [service] = m.metric_sets([row(1, 200)], poison=2, now=1002.5)
    assert service.values[m.INGEST_DELAY] == ("Milliseconds", [1500.0])
    assert service.values[m.INGEST_POISON] == ("Count", [2.0])
    assert m.metric_sets([], poison=0) == []
