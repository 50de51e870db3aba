"""Every request that reaches the proxy becomes one record: usage, cost, timing, the exact request
body and the rebuilt response, including failures (cut streams, client disconnects, upstream errors)."""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import time
from urllib.parse import urlsplit

import psycopg

from tests.integration.http import CLAUDE_HEADERS, post
from tests.support.fake_upstream import Reply, Usage, error_reply, message_events, tool_use_block

SESSION = "0d9d9a54-1b7e-4f0e-8f62-5a0c2e9b7a11"


def _headers(session: str = SESSION, **extra: str) -> dict[str, str]:
    return {**CLAUDE_HEADERS, "x-claude-code-session-id": session, **extra}


def _body(text: str, history: list | None = None, model: str = "claude-opus-5-5") -> bytes:
    messages = [*(history or []), {"role": "user", "content": text}]
    tools = [
        {"name": "Bash", "description": "Run a shell command. " * 40, "input_schema": {"type": "object"}}
    ]
    return json.dumps(
        {
            "model": model,
            "max_tokens": 1024,
            "stream": True,
            "system": [
                {"type": "text", "text": "x-anthropic-billing-header: cc_version=2.1.330.abc;"},
                {"type": "text", "text": "You are Claude Code. " * 30},
            ],
            "tools": tools,
            "messages": messages,
        }
    ).encode()


def _session_rows(stack, session: str, n: int) -> list[dict]:
    return stack.wait_count(n, session_id=session)


def test_stream_record_has_usage_cost_timing_and_rebuilt_response(stack, upstream):
    session = "11111111-0000-4000-8000-000000000001"
    blocks = [
        {"type": "thinking", "thinking": "Let me think."},
        {"type": "text", "text": "Running it."},
        tool_use_block("Bash", {"command": "ls -la", "description": "List"}),
    ]
    upstream.enqueue(
        Reply(
            events=message_events(
                blocks,
                "claude-opus-5-5",
                "tool_use",
                Usage(
                    input_tokens=10,
                    output_tokens=77,
                    cache_creation_input_tokens=2000,
                    cache_read_input_tokens=30000,
                    cache_creation={"ephemeral_5m_input_tokens": 500, "ephemeral_1h_input_tokens": 1500},
                ),
            )
        )
    )
    body = _body("list the files")
    r = post(stack.proxy_url, "/v1/messages?beta=true", body, _headers(session))
    assert r.status == 200
    (row,) = _session_rows(stack, session, 1)
    assert row["kind"] == "main" and row["status"] == 200 and row["error"] is None
    assert (row["input_tokens"], row["output_tokens"]) == (10, 77)
    assert row["cache_creation_input_tokens"] == 2000 and row["cache_read_input_tokens"] == 30000
    assert (row["cache_creation_5m_tokens"], row["cache_creation_1h_tokens"]) == (500, 1500)
    # Opus 5.5: $4 in, $5 5m write, $8 1h write, $0.20 read, $20 out (per million)
    assert abs(row["cost_usd"] - (10 * 4 + 500 * 5 + 1500 * 8 + 30000 * 0.2 + 77 * 20) / 1e6) < 1e-8
    assert row["ttfb_ms"] > 0 and row["duration_ms"] >= row["ttfb_ms"]
    status, detail = stack.api(f"/api/requests/{row['id']}")
    assert status == 200
    content = detail["response"]["content"]
    assert [b["type"] for b in content] == ["thinking", "text", "tool_use"]
    assert content[0]["thinking"] == "Let me think." and content[0]["signature"] == "sig"
    assert content[2]["input"] == {"command": "ls -la", "description": "List"}
    assert detail["response"]["stop_reason"] == "tool_use"
    assert detail["request_body"] == json.loads(body)
    assert {"request-id", "anthropic-ratelimit-unified-status"} <= {k for k, _ in detail["response_headers"]}
    assert detail["ratelimit"]["anthropic-ratelimit-unified-5h-utilization"] == "0.12"


def test_raw_bodies_are_exact_and_stored_once(stack, upstream, pg_server):
    session = "11111111-0000-4000-8000-000000000002"
    first = _body("turn one")
    post(stack.proxy_url, "/v1/messages?beta=true", first, _headers(session))
    history = [
        {"role": "user", "content": "turn one"},
        {"role": "assistant", "content": [{"type": "text", "text": "answer " * 200}]},
    ]
    second = _body("turn two", history)
    post(stack.proxy_url, "/v1/messages?beta=true", second, _headers(session))
    rows = _session_rows(stack, session, 2)
    by_size = sorted(rows, key=lambda r: r["body_size"])
    for row, sent in zip(by_size, [first, second], strict=True):
        status, raw = _raw(stack, f"/api/requests/{row['id']}/raw/request")
        assert status == 200 and raw == sent
    # The second request shares system, tools and the first message with the first one: only the new
    # messages are stored again.
    with psycopg.connect(stack.database_url) as conn:
        total_blob_bytes = conn.execute("SELECT sum(length(data)) FROM blobs").fetchone()[0]
        layouts = [
            conn.execute("SELECT body_layout FROM requests WHERE id = %s", (r["id"],)).fetchone()[0]
            for r in by_size
        ]
    assert [x for x in layouts[0] if isinstance(x, dict) and "b" in x] == [
        x for x in layouts[1] if isinstance(x, dict) and "b" in x
    ]
    assert total_blob_bytes < len(first) + len(second), "shared pieces must not be stored twice"


def _raw(stack, path: str) -> tuple[int, bytes]:
    import urllib.request

    req = urllib.request.Request(
        stack.dashboard_url + path, headers={"Authorization": f"Bearer {stack.dashboard_key}"}
    )
    with urllib.request.urlopen(req) as r:
        return r.status, r.read()


def test_secrets_are_never_stored(stack, upstream):
    session = "11111111-0000-4000-8000-000000000003"
    secret = "sk-ant-api03-very-secret-do-not-store"
    post(
        stack.proxy_url,
        "/v1/messages?beta=true",
        _body("hi"),
        _headers(session, **{"x-api-key": secret, "authorization": "Bearer sk-ant-oat-secret-token"}),
    )
    (row,) = _session_rows(stack, session, 1)
    _, detail = stack.api(f"/api/requests/{row['id']}")
    headers = dict(detail["request_headers"])
    assert headers["x-api-key"].startswith("[redacted ") and headers["authorization"].startswith("[redacted ")
    with psycopg.connect(stack.database_url) as conn:
        dump = conn.execute("SELECT string_agg(r::text, '') FROM (SELECT * FROM requests) r").fetchone()[0]
        blobs = b"".join(bytes(b) for (b,) in conn.execute("SELECT data FROM blobs"))
    for needle in (secret, "sk-ant-oat-secret-token"):
        assert needle not in dump and needle.encode() not in blobs
    assert secret not in stack.log()


def test_upstream_error_is_recorded(stack, upstream):
    session = "11111111-0000-4000-8000-000000000004"
    upstream.enqueue(error_reply(529, "overloaded_error", "Overloaded", {"x-should-retry": "true"}))
    post(stack.proxy_url, "/v1/messages?beta=true", _body("busy?"), _headers(session))
    (row,) = _session_rows(stack, session, 1)
    assert row["status"] == 529 and row["error"] == "Overloaded"
    assert row["cost_usd"] is None and row["input_tokens"] is None


def test_stream_cut_midway_is_recorded_with_what_arrived(stack, upstream):
    session = "11111111-0000-4000-8000-000000000005"
    events = message_events([{"type": "text", "text": "the first part and then"}])
    upstream.enqueue(Reply(events=events, cut_after=5))
    # the client sees a broken stream (IncompleteRead), as it would without the proxy
    with contextlib.suppress(http.client.HTTPException):
        post(stack.proxy_url, "/v1/messages?beta=true", _body("cut me"), _headers(session))
    (row,) = _session_rows(stack, session, 1)
    assert row["status"] == 200 and row["error"].startswith("upstream_cut")
    _, detail = stack.api(f"/api/requests/{row['id']}")
    # events: message_start, ping, content_block_start, then two of the three text deltas
    assert detail["response"]["content"][0]["text"] == "the first part a"
    assert row["input_tokens"] == 100  # message_start arrived, so input usage is known


def test_client_disconnect_cancels_upstream_and_is_recorded(stack, upstream):
    session = "11111111-0000-4000-8000-000000000006"
    events = message_events([{"type": "text", "text": "a slow answer " * 10}], split=10)
    upstream.enqueue(Reply(events=events, delay_s=0.3))
    u = urlsplit(stack.proxy_url)
    body = _body("slow please")
    head = "".join(f"{k}: {v}\r\n" for k, v in _headers(session).items())
    with socket.create_connection((u.hostname, u.port)) as s:
        s.sendall(
            f"POST /v1/messages?beta=true HTTP/1.1\r\ncontent-length: {len(body)}\r\n{head}\r\n".encode()
            + body
        )
        got = b""
        while b"message_start" not in got:
            chunk = s.recv(65536)
            assert chunk, "connection closed before the first event"
            got += chunk
    # the client is gone; the proxy must stop reading from the upstream well before the stream's end
    (row,) = _session_rows(stack, session, 1)
    assert row["error"] == "client_disconnected"
    assert row["duration_ms"] < 0.3 * len(events) * 1000 / 2
    time.sleep(0.8)
    assert upstream.client_gone >= 1, "the upstream request must be cancelled"


def test_unknown_model_has_null_cost_and_a_flag(stack, upstream):
    session = "11111111-0000-4000-8000-000000000007"
    upstream.enqueue(Reply(events=message_events([{"type": "text", "text": "hi"}], "claude-future-9")))
    post(stack.proxy_url, "/v1/messages?beta=true", _body("hi", model="claude-future-9"), _headers(session))
    (row,) = _session_rows(stack, session, 1)
    assert row["cost_usd"] is None and row["cost_flag"] == "unknown_model" and row["input_tokens"] == 100


def test_compressed_response_passes_through_compressed_and_is_recorded_decoded(stack, upstream):
    import gzip

    session = "11111111-0000-4000-8000-000000000008"
    doc = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-opus-5-5",
        "content": [{"type": "text", "text": "compressed hello"}],
        "stop_reason": "end_turn",
        "usage": {"input_tokens": 7, "output_tokens": 3},
    }
    packed = gzip.compress(json.dumps(doc).encode())
    upstream.enqueue(
        Reply(headers={"content-type": "application/json", "content-encoding": "gzip"}, body=packed)
    )
    body = b'{"model":"claude-opus-5-5","max_tokens":5,"messages":[{"role":"user","content":"zip"}]}'
    r = post(stack.proxy_url, "/v1/messages", body, _headers(session, **{"accept-encoding": "gzip"}))
    assert r.header("content-encoding") == "gzip" and r.body == packed  # untouched on the wire
    (row,) = _session_rows(stack, session, 1)
    assert (row["input_tokens"], row["output_tokens"]) == (7, 3)
    _, detail = stack.api(f"/api/requests/{row['id']}")
    assert detail["response"]["content"][0]["text"] == "compressed hello"
    assert upstream.messages_requests()[-1].header("accept-encoding") == "gzip"


def test_raw_response_is_exact_for_cut_streams_and_rebuilt_for_complete_ones(stack, upstream):
    import urllib.request

    session = "11111111-0000-4000-8000-000000000009"
    events = message_events([{"type": "text", "text": "complete answer"}])
    cut = message_events([{"type": "text", "text": "cut answer here"}])
    upstream.enqueue(Reply(events=events), Reply(events=cut, cut_after=4))
    post(stack.proxy_url, "/v1/messages?beta=true", _body("one"), _headers(session))
    with contextlib.suppress(http.client.HTTPException):
        post(stack.proxy_url, "/v1/messages?beta=true", _body("two"), _headers(session))
    complete, broken = sorted(_session_rows(stack, session, 2), key=lambda r: r["error"] is not None)

    def raw(row: dict) -> tuple[bytes, dict]:
        req = urllib.request.Request(
            f"{stack.dashboard_url}/api/requests/{row['id']}/raw/response",
            headers={"Authorization": f"Bearer {stack.dashboard_key}"},
        )
        with urllib.request.urlopen(req) as r:
            return r.read(), dict(r.headers)

    body, headers = raw(broken)
    assert body == b"".join(cut[:4]) and headers["content-type"].startswith("text/event-stream")
    body, headers = raw(complete)
    assert headers["x-nexus-rebuilt"] == "from-stream"
    assert json.loads(body)["content"] == [{"type": "text", "text": "complete answer"}]
