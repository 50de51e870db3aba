"""What the proxy says when the HTTP exchange itself goes wrong: malformed requests, clients that
stall, bodies announced too large, an upstream that hangs up. Always Anthropic's error JSON, never
plain text, and no connection held open by a client that stopped sending. Secrets in places other
than the usual headers (Proxy-Authorization, key-like query parameters) are not stored."""

from __future__ import annotations

import json
import socket
import time
from urllib.parse import urlsplit

import pytest

from tests.integration.http import CLAUDE_HEADERS, post
from tests.support.fake_upstream import Reply
from tests.support.stack import running_stack

TIMEOUT_S = 1.0
BODY = (
    b'{"model":"claude-sonnet-4-5-20250929","max_tokens":5,"stream":true,'
    b'"messages":[{"role":"user","content":"hi"}]}'
)


@pytest.fixture(scope="module")
def stack(pg_server, fake_upstream, tmp_path_factory):
    env = {"NEXUS_HEADER_TIMEOUT_S": str(TIMEOUT_S), "NEXUS_BODY_TIMEOUT_S": str(TIMEOUT_S)}
    with running_stack(pg_server, fake_upstream, tmp_path_factory.mktemp("proto"), env=env) as s:
        yield s


def _connect(stack) -> socket.socket:
    u = urlsplit(stack.proxy_url)
    s = socket.create_connection((u.hostname, u.port), timeout=10)
    return s


def _read_all(s: socket.socket) -> bytes:
    """Everything until the server closes the connection (it must close it)."""
    chunks = []
    while True:
        data = s.recv(65536)
        if not data:
            return b"".join(chunks)
        chunks.append(data)


def _parse(raw: bytes) -> tuple[int, dict[str, str], dict]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return status, headers, json.loads(body)


def _anthropic(raw: bytes, status: int, etype: str, says: str) -> dict[str, str]:
    got, headers, doc = _parse(raw)
    assert got == status, raw
    assert headers["content-type"] == "application/json"
    assert doc["type"] == "error" and doc["error"]["type"] == etype
    assert says in doc["error"]["message"], doc
    return headers


def test_malformed_request_gets_anthropic_json(stack, upstream):
    with _connect(stack) as s:
        s.sendall(b"POST /v1/messages HTTP/1.1\r\nHost: x\r\nBad Header Name: y\r\n\r\n")
        _anthropic(_read_all(s), 400, "invalid_request_error", "malformed HTTP request")
    with _connect(stack) as s:
        s.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 TLS hello to a plain-HTTP port\r\n\r\n")
        _anthropic(_read_all(s), 400, "invalid_request_error", "malformed HTTP request")
    assert upstream.seen == []


def test_a_client_that_stalls_in_its_headers_is_cut_off(stack, upstream):
    with _connect(stack) as s:
        started = time.monotonic()
        s.sendall(b"POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Ty")
        raw = _read_all(s)
        waited = time.monotonic() - started
    _anthropic(raw, 408, "invalid_request_error", "request headers not received")
    assert TIMEOUT_S * 0.8 <= waited < TIMEOUT_S + 3
    with _connect(stack) as s:  # connected and silent
        started = time.monotonic()
        raw = _read_all(s)
        assert time.monotonic() - started < TIMEOUT_S + 3
    assert upstream.seen == []


def test_a_client_that_stalls_in_its_body_is_cut_off_and_recorded(stack, upstream):
    session = "5a11ed00-0000-4000-8000-000000000001"
    head = "".join(
        f"{k}: {v}\r\n" for k, v in {**CLAUDE_HEADERS, "x-claude-code-session-id": session}.items()
    )
    with _connect(stack) as s:
        started = time.monotonic()
        s.sendall(f"POST /v1/messages HTTP/1.1\r\nHost: x\r\n{head}Content-Length: 1000\r\n\r\n".encode())
        s.sendall(b'{"model": "x", "mess')
        raw = _read_all(s)
        waited = time.monotonic() - started
    headers = _anthropic(raw, 408, "invalid_request_error", "request body")
    assert headers["connection"] == "close"
    assert TIMEOUT_S * 0.8 <= waited < TIMEOUT_S + 3
    (row,) = stack.wait_count(1, session_id=session)
    assert row["status"] == 408 and "request body" in row["error"]
    assert upstream.seen == []


def test_a_body_announced_too_large_is_refused_before_it_is_sent(stack, upstream):
    with _connect(stack) as s:
        s.sendall(
            b"POST /v1/messages HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n"
            b"content-length: 1000000000\r\n\r\n"
        )
        headers = _anthropic(_read_all(s), 413, "request_too_large", "exceeds")
    assert headers["connection"] == "close"
    assert upstream.seen == []


def test_an_upstream_that_hangs_up_is_named_as_such(stack, upstream):
    upstream.enqueue(Reply(hang_up=True))
    r = post(stack.proxy_url, "/v1/messages", BODY)
    assert r.status == 502
    message = r.json()["error"]["message"]
    assert "closed the connection without answering" in message and "unreachable" not in message


def test_proxy_authorization_and_key_like_query_parameters_are_not_stored(stack, upstream):
    session = "5ec7e700-0000-4000-8000-000000000001"
    headers = {**CLAUDE_HEADERS, "x-claude-code-session-id": session, "proxy-authorization": "Basic c2VjcmV0"}
    query = "beta=true&api_key=sk-ant-query-secret&token=tok-secret-2&model=x"
    r = post(stack.proxy_url, f"/v1/messages?{query}", BODY, headers)
    assert r.status == 200
    assert upstream.seen[-1].query == query  # transparent upstream
    (row,) = stack.wait_count(1, session_id=session)
    status, full = stack.api(f"/api/requests/{row['id']}")
    assert status == 200
    stored = json.dumps(full)
    for secret in ("sk-ant-query-secret", "tok-secret-2", "c2VjcmV0"):
        assert secret not in stored
    assert (
        "beta=true" in full["query"] and "model=x" in full["query"] and "api_key=[redacted" in full["query"]
    )


def test_a_websocket_upgrade_request_is_answered_as_plain_http(stack, upstream):
    # The proxy has no websockets: the request is served like any other, never left hanging.
    with _connect(stack) as s:
        s.settimeout(5)
        s.sendall(
            b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
            b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        )
        head = s.recv(65536)
    assert head.startswith(b"HTTP/1.1 200 "), head
