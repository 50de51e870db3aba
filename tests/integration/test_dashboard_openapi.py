"""The dashboard API against its own OpenAPI document, by schemathesis: generated valid and invalid
requests (examples, coverage and fuzzing phases) to every operation, authenticated with the dashboard
key, and every default check: no 5xx, only documented status codes, content types and headers,
error bodies in the documented shape, 401 without the key, 405 with Allow for other methods.

The app runs in process (schemathesis's ASGI transport) on a real, migrated PostgreSQL database with a
few requests recorded through the real ingest path."""

from __future__ import annotations

import os

import pytest
import schemathesis
from nexus.db.migrate import migrate
from nexus.record import RawRecord
from nexus.secret_store import LocalSecretStore
from nexus.spool import SpoolWriter
from nexus_cli.spool_consumer import SpoolConsumer
from nexus_dashboard.app import create_app

from tests.support import openapi_run, pg
from tests.support.fake_upstream import message_events

KEY = "nxd_schemathesis_" + "k" * 24
# Fuzzed cases per operation in `make test` (the coverage phase's edge cases come on top); a longer
# run by hand: NEXUS_DASHBOARD_OPENAPI_EXAMPLES=100.
EXAMPLES = int(os.environ.get("NEXUS_DASHBOARD_OPENAPI_EXAMPLES", "12"))


def _recorded(i: int) -> RawRecord:
    body = b'{"model":"claude-opus-5-5","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}'
    return RawRecord(
        id=f"00000000-0000-7000-8000-{i:012d}",
        received_at=1_700_000_000 + i,
        method="POST",
        path="/v1/messages",
        query="",
        request_headers=[["x-claude-code-session-id", "s-openapi"], ["content-type", "application/json"]],
        status=200,
        response_headers=[["content-type", "text/event-stream"]],
        ttfb_ms=1.0,
        duration_ms=2.0,
        request_body=body,
        response_body=b"".join(message_events([{"type": "text", "text": f"answer {i}"}])),
    )


@pytest.fixture(scope="module")
def dashboard_schema(pg_server, tmp_path_factory):
    url = pg.create_database(pg_server.get_uri())
    migrate(url)
    spool = tmp_path_factory.mktemp("spool")
    writer = SpoolWriter(spool)
    for i in range(3):
        writer.put(_recorded(i))
    writer.close()
    consumer = SpoolConsumer(spool, url)
    while consumer.drain_once():
        pass
    store = LocalSecretStore(tmp_path_factory.mktemp("secrets") / "secrets.json")
    app = create_app(url, KEY, store)
    config = openapi_run.config({"Authorization": f"Bearer {KEY}"}, max_examples=EXAMPLES)
    schema = schemathesis.openapi.from_asgi(
        "/api/openapi.json", app, config=config, headers={"Authorization": f"Bearer {KEY}"}
    )

    schema.statuses = openapi_run.count_statuses(schema)  # type: ignore[attr-defined]
    return schema


def test_the_api_keeps_to_its_openapi_document(dashboard_schema) -> None:
    """Every phase the CLI runs (examples, coverage, fuzzing, stateful) with every default check."""
    scenarios, findings = openapi_run.run(dashboard_schema)
    statuses = dashboard_schema.statuses
    assert scenarios >= 15  # every operation was exercised
    # and mostly got through: not locked out by the sign-in throttle, not all refused as bad input
    assert statuses[200] > 100 and statuses[429] < sum(statuses.values()) / 10, statuses
    assert not findings, "\n".join(findings)


def test_the_document_lists_the_statuses_the_app_really_uses(dashboard_schema) -> None:
    doc = dashboard_schema.raw_schema
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            codes = set(op["responses"])
            assert "422" not in codes, (method, path)  # validation errors are 400 here
            assert {"401", "429", "503"} <= codes, (method, path)
            takes_input = op.get("requestBody") or any(p["in"] == "query" for p in op.get("parameters", []))
            assert ("400" in codes) == bool(takes_input), (method, path)
            assert ("404" in codes) == ("{" in path), (method, path)
            assert "403" in codes, (method, path)  # a role that may not call it; CSRF for browser sessions
    assert doc["components"]["securitySchemes"]["dashboardKey"]["scheme"] == "bearer"
