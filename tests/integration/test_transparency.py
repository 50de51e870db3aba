"""The proxy is invisible: what the client sends reaches the upstream unchanged, and what the
upstream answers reaches the client unchanged, byte for byte, errors included."""

from __future__ import annotations

import pytest

from tests.integration.http import CLAUDE_HEADERS, post
from tests.support.fake_upstream import Reply, error_reply, message_events, sse

pytestmark = pytest.mark.shared_stack

HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "host",
    "content-length",
    "date",
    "server",
}


def _body(**extra) -> bytes:
    # Odd spacing and key order on purpose: the bytes must arrive as sent, not re-serialised.
    return (
        b'{"model":"claude-sonnet-4-5",  "max_tokens": 64,"stream":true,\n '
        b'"metadata":{"user_id":"{\\"a\\":1}"},'
        b'"messages":[{"role":"user","content":[{"type":"text","text":"h\xc3\xa9llo","cache_control":'
        b'{"type":"ephemeral"}}]}]}'
    )


def test_request_reaches_upstream_unchanged(stack, upstream):
    body = _body()
    r = post(stack.proxy_url, "/v1/messages?beta=true&x=%2Fa+b", body)
    assert r.status == 200
    seen = upstream.messages_requests()[-1]
    assert seen.body == body
    assert seen.query == "beta=true&x=%2Fa+b"
    sent = {k.lower(): v for k, v in CLAUDE_HEADERS.items()}
    got = {k.lower(): v for k, v in seen.headers}
    for name, value in sent.items():
        assert got.get(name) == value, name
    extra = set(got) - set(sent) - HOP_BY_HOP - {"accept-encoding"}
    assert not extra, f"proxy added headers {extra}"


def test_sse_bytes_reach_client_unchanged(stack, upstream):
    events = message_events([{"type": "thinking", "thinking": "hmm"}, {"type": "text", "text": "hi there"}])
    # A comment line and an event split over two data lines: a re-framing proxy would change these.
    events.insert(2, b": keep-alive comment\n\n")
    events.insert(3, b'event: ping\ndata: {"type":\n' + b'data: "ping"}\n\n')
    upstream.enqueue(Reply(events=events), Reply(events=events))
    direct = post(upstream.url, "/v1/messages?beta=true", _body())
    proxied = post(stack.proxy_url, "/v1/messages?beta=true", _body())
    assert direct.body == b"".join(events)
    assert proxied.body == direct.body


def test_upstream_response_headers_reach_client(stack, upstream):
    upstream.enqueue(
        Reply(
            events=message_events([{"type": "text", "text": "x"}]),
            headers={"x-custom-upstream": "kept", "anthropic-organization-id": "org_1"},
        )
    )
    r = post(stack.proxy_url, "/v1/messages?beta=true", _body())
    assert r.header(
        "request-id",
    ).startswith("req_fake_")
    assert r.header("anthropic-ratelimit-unified-status") == "allowed"
    assert r.header("anthropic-ratelimit-unified-5h-utilization") == "0.12"
    assert r.header("x-custom-upstream") == "kept"
    assert r.header("anthropic-organization-id") == "org_1"
    assert r.header("content-type").startswith("text/event-stream")


def test_upstream_errors_come_back_unchanged_and_are_not_retried(stack, upstream):
    for status, etype, headers in [
        (429, "rate_limit_error", {"retry-after": "17", "anthropic-ratelimit-unified-status": "rejected"}),
        (500, "api_error", {}),
        (529, "overloaded_error", {"x-should-retry": "true"}),
    ]:
        upstream.reset()
        reply = error_reply(status, etype, f"{etype} from upstream", headers)
        upstream.enqueue(reply)
        r = post(stack.proxy_url, "/v1/messages?beta=true", _body())
        assert r.status == status
        assert r.body == reply.body
        for k, v in headers.items():
            assert r.header(k) == v
        assert len(upstream.messages_requests()) == 1, "the proxy must not retry on its own"


def test_non_streaming_and_count_tokens_pass_through(stack, upstream):
    body = b'{"model":"claude-sonnet-4-5","max_tokens":16,"messages":[{"role":"user","content":"hi"}]}'
    r = post(stack.proxy_url, "/v1/messages", body)
    assert r.status == 200 and r.json()["type"] == "message"
    assert r.header("content-length") == str(len(r.body))
    r = post(stack.proxy_url, "/v1/messages/count_tokens?beta=true", body)
    assert r.status == 200 and r.json()["input_tokens"] > 0
    assert upstream.seen[-1].path == "/v1/messages/count_tokens"
    assert upstream.seen[-1].body == body


def test_mid_stream_upstream_cut_reaches_client_as_a_cut(stack, upstream):
    events = message_events([{"type": "text", "text": "partial answer that gets cut"}])
    upstream.enqueue(Reply(events=events, cut_after=4))
    try:
        r = post(stack.proxy_url, "/v1/messages?beta=true", _body())
        got = r.body
    except Exception as exc:  # http.client raises IncompleteRead on a cut chunked body
        got = getattr(exc, "partial", b"")
    assert got == b"".join(events[:4])
    assert b"message_stop" not in got


def test_upstream_unreachable_gives_anthropic_error(pg_server, tmp_path):
    from tests.support import pg
    from tests.support.stack import Stack, free_port

    s = Stack(
        tmp_path / "n", f"http://127.0.0.1:{free_port()}", pg.create_database(pg_server.get_uri())
    ).start()
    try:
        r = post(s.proxy_url, "/v1/messages?beta=true", _body())
        assert r.status == 502
        err = r.json()
        assert err["type"] == "error" and err["error"]["type"] == "api_error"
        assert "upstream unreachable" in err["error"]["message"]
        rows = s.wait_count(1)
        assert rows[0]["status"] == 502 and "upstream unreachable" in rows[0]["error"]
    finally:
        s.stop()


def test_sse_helper_frames_events():
    assert sse("ping", {"type": "ping"}) == b'event: ping\ndata: {"type":"ping"}\n\n'
