"""Bad input gets a clear error in the protocol's own shape, and nothing reaches the upstream."""

from __future__ import annotations

import pytest

from tests.integration.http import CLAUDE_HEADERS, post, request
from tests.support.stack import running_stack

pytestmark = pytest.mark.shared_stack


def _anthropic_error(r, status: int, etype: str, says: str) -> None:
    assert r.status == status
    doc = r.json()
    assert doc["type"] == "error" and doc["error"]["type"] == etype
    assert says in doc["error"]["message"]


def test_not_json(stack, upstream):
    r = post(stack.proxy_url, "/v1/messages?beta=true", b'{"model": "x", "messages": [', CLAUDE_HEADERS)
    _anthropic_error(r, 400, "invalid_request_error", "not valid JSON")
    assert upstream.seen == []


def test_wrong_content_type(stack, upstream):
    r = post(stack.proxy_url, "/v1/messages", b"model=x", {**CLAUDE_HEADERS, "content-type": "text/plain"})
    _anthropic_error(r, 400, "invalid_request_error", "content-type must be application/json")
    assert upstream.seen == []


def test_unknown_path_and_wrong_method(stack, upstream):
    _anthropic_error(post(stack.proxy_url, "/v1/complete", b"{}"), 404, "not_found_error", "/v1/complete")
    _anthropic_error(
        request(stack.proxy_url, "GET", "/v1/messages"), 405, "invalid_request_error", "use POST"
    )
    assert upstream.seen == []


def test_rejections_are_recorded(stack, upstream):
    post(
        stack.proxy_url,
        "/v1/messages",
        b"not json at all",
        {**CLAUDE_HEADERS, "x-claude-code-session-id": "bad-1"},
    )
    (row,) = stack.wait_count(1, session_id="bad-1")
    assert row["status"] == 400 and "not valid JSON" in row["error"]


@pytest.fixture(scope="module")
def small_limit_stack(pg_server, fake_upstream, tmp_path_factory):
    env = {"NEXUS_MAX_BODY_BYTES": str(256 * 1024)}
    with running_stack(pg_server, fake_upstream, tmp_path_factory.mktemp("small"), env=env) as s:
        yield s


def test_huge_body(small_limit_stack, upstream):
    body = b'{"model":"x","messages":[{"role":"user","content":"' + b"a" * (300 * 1024) + b'"}]}'
    r = post(small_limit_stack.proxy_url, "/v1/messages", body)
    _anthropic_error(r, 413, "request_too_large", "exceeds")
    assert upstream.seen == []
    # a body just under the limit still goes through
    ok = b'{"model":"x","max_tokens":5,"messages":[{"role":"user","content":"' + b"a" * (200 * 1024) + b'"}]}'
    assert post(small_limit_stack.proxy_url, "/v1/messages", ok).status == 200


def test_dashboard_api_bad_input(stack):
    assert stack.api("/api/requests/00000000-0000-0000-0000-000000000000")[0] == 404
    status, body = stack.api("/api/requests/not-a-uuid")
    assert status == 404 and "not-a-uuid" in body["error"]["message"]
    status, body = stack.api("/api/requests?limit=0")
    assert status == 400 and "limit" in body["error"]["message"]
    status, body = stack.api("/api/requests?since=yesterday")
    assert status == 400 and "since" in body["error"]["message"]


def test_dashboard_api_requires_the_key(stack):
    status, body = stack.api("/api/requests", key="wrong")
    assert status == 401 and "dashboard key" in body["error"]["message"]
    r = request(stack.dashboard_url, "GET", "/api/requests")
    assert r.status == 401
