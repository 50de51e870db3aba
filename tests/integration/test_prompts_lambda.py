"""The MCP endpoint behind Mangum, as the dashboard Lambda serves it (buffered, no lifespan): the
stateless JSON-response transport answers initialize and prompts/get in one response each."""

from __future__ import annotations

import base64
import json

import psycopg
from mangum import Mangum
from nexus.access import AccessStore
from nexus.db import prompts as library
from nexus.db.migrate import migrate
from nexus.prompts.source import Snapshot
from nexus.prompts.template import parse
from nexus.secret_store import LocalSecretStore
from nexus_dashboard.app import create_app
from nexus_dashboard.db import Pool


def _event(body: dict, headers: dict[str, str]) -> dict:
    """A Lambda function URL event (payload format 2.0)."""
    return {
        "version": "2.0",
        "rawPath": "/mcp",
        "rawQueryString": "",
        "headers": {"host": "abc.lambda-url.eu-west-1.on.aws", "x-forwarded-proto": "https", **headers},
        "requestContext": {
            "http": {"method": "POST", "path": "/mcp", "sourceIp": "203.0.113.9", "protocol": "HTTP/1.1"},
            "requestId": "r1",
        },
        "body": base64.b64encode(json.dumps(body).encode()).decode(),
        "isBase64Encoded": True,
    }


def test_mcp_works_behind_mangum_with_keys_required(database_url, tmp_path):
    migrate(database_url)
    with psycopg.connect(database_url, autocommit=True) as conn:
        t = parse("---\narguments: [who]\n---\nGreet {{who}}.\n", "greet.md")
        library.apply(conn, Snapshot("repo", None, "", "a" * 40, (t,)))
    store = LocalSecretStore.in_data_dir(tmp_path)
    key, _ = AccessStore(store).create_key("web", "ada")
    app = create_app(database_url, "nxd_dashboard", store)  # require_keys defaults to True, as in AWS
    app.state.pool = Pool(database_url, max_size=1)
    handler = Mangum(app, lifespan="off")
    headers = {
        "content-type": "application/json",
        "accept": "application/json, text/event-stream",
        "authorization": f"Bearer {key}",
        "mcp-protocol-version": "2025-06-18",
    }
    try:
        init = handler(
            _event(
                {
                    "jsonrpc": "2.0",
                    "id": 1,
                    "method": "initialize",
                    "params": {
                        "protocolVersion": "2025-06-18",
                        "capabilities": {},
                        "clientInfo": {"name": "t", "version": "1"},
                    },
                },
                {k: v for k, v in headers.items() if k != "mcp-protocol-version"},
            ),
            None,
        )
        assert init["statusCode"] == 200, init
        assert "mcp-session-id" not in {k.lower() for k in init["headers"]}  # stateless: no session held
        assert json.loads(init["body"])["result"]["capabilities"]["prompts"] is not None

        got = handler(
            _event(
                {
                    "jsonrpc": "2.0",
                    "id": 2,
                    "method": "prompts/get",
                    "params": {"name": "greet", "arguments": {"who": "Ada"}},
                },
                headers,
            ),
            None,
        )
        assert got["statusCode"] == 200, got
        assert json.loads(got["body"])["result"]["messages"][0]["content"]["text"] == "Greet Ada."

        refused = handler(
            _event({"jsonrpc": "2.0", "id": 3, "method": "prompts/list"}, {**headers, "authorization": ""}),
            None,
        )
        assert refused["statusCode"] == 401
    finally:
        app.state.pool.close()
