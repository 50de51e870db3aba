"""On Lambda the invocation ends when the response does, and the sandbox may freeze right then; so
the proxy hands the complete record to its queue before it sends the end of the response."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from nexus.config import Settings
from nexus.record import RawRecord
from nexus.secret_store import LocalSecretStore
from nexus_proxy.app import build

from tests.support.fake_upstream import error_reply, text_reply


class WatchingSink:
    """Records, at hand-off time, what the client had been sent so far."""

    accepting = True

    def __init__(self, sent: list[dict[str, Any]]) -> None:
        self.sent = sent
        self.handed: list[tuple[RawRecord, bool, int]] = []

    def put(self, record: RawRecord) -> None:
        ended = any(m["type"] == "http.response.body" and not m.get("more_body") for m in self.sent)
        self.handed.append((record, ended, len(self.sent)))

    def close(self) -> None:
        pass


def _call(
    upstream_url: str,
    tmp_path,
    body: bytes,
    headers: list[tuple[bytes, bytes]],
    keys: bool,
    lambda_: bool = False,
):
    sent: list[dict[str, Any]] = []
    sink = WatchingSink(sent)
    settings = Settings(
        upstream_url=upstream_url, data_dir=tmp_path, require_keys=keys, strip_platform_headers=lambda_
    )
    app = build(settings, sink=sink, store=LocalSecretStore(tmp_path / "secrets.json"))

    async def run() -> None:
        await app.forwarder.start()
        chunks = [{"type": "http.request", "body": body, "more_body": False}]

        async def receive() -> dict[str, Any]:
            if chunks:
                return chunks.pop(0)
            await asyncio.sleep(3600)  # the client stays connected
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        scope = {
            "type": "http",
            "method": "POST",
            "path": "/v1/messages",
            "query_string": b"",
            "headers": [(b"content-type", b"application/json"), *headers],
        }
        try:
            await app(scope, receive, send)
        finally:
            await app.forwarder.close()

    asyncio.run(run())
    return sent, sink.handed


BODY = json.dumps({"model": "claude-sonnet-4-5", "max_tokens": 5, "stream": True, "messages": []}).encode()


@pytest.mark.parametrize(
    "reply",
    [text_reply("streamed answer"), error_reply(529, "overloaded_error", "Overloaded")],
    ids=["stream", "upstream-error"],
)
def test_record_is_handed_off_complete_before_the_response_ends(upstream, tmp_path, reply) -> None:
    upstream.enqueue(reply)
    sent, handed = _call(upstream.url, tmp_path, BODY, [(b"x-api-key", b"sk-ant-test")], keys=False)
    assert len(handed) == 1
    record, ended, position = handed[0]
    assert not ended and position == len(sent) - 1, "hand-off must come right before the final message"
    assert sent[-1] == {"type": "http.response.body", "body": b"", "more_body": False}
    streamed = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    assert record.response_body == streamed, "the record holds every byte the client received"
    assert record.status == reply.status and record.duration_ms is not None


def test_a_rejected_request_is_recorded_before_its_error_is_sent(upstream, tmp_path) -> None:
    sent, handed = _call(upstream.url, tmp_path, BODY, [], keys=True)
    record, ended, _ = handed[0]
    assert record.status == 401 and not ended
    assert sent[0]["status"] == 401
    assert upstream.messages_requests() == []


AWS_ADDED = [
    (b"x-amzn-request-context", b'{"accountId":"123456789012","domainName":"x.lambda-url.eu-west-1.on.aws"}'),
    (
        b"x-amzn-lambda-context",
        b'{"invoked_function_arn":"arn:aws:lambda:eu-west-1:123456789012:function:p"}',
    ),
    (b"x-amzn-trace-id", b"Root=1-5759e988-bd862e3fe1be46a994272793"),
    (b"x-forwarded-for", b"203.0.113.7"),
    (b"x-forwarded-proto", b"https"),
]


def test_behind_a_function_url_aws_headers_go_neither_upstream_nor_into_the_record(
    upstream, tmp_path
) -> None:
    upstream.enqueue(text_reply("hi"))
    client = [(b"x-api-key", b"sk-ant-test"), (b"anthropic-version", b"2023-06-01")]
    _, handed = _call(upstream.url, tmp_path, BODY, client + AWS_ADDED, keys=False, lambda_=True)
    seen = {k.lower() for k, _ in upstream.messages_requests()[0].headers}
    assert "anthropic-version" in seen and "x-api-key" in seen
    assert not seen & {k.decode() for k, _ in AWS_ADDED}, "the account's details must not reach Anthropic"
    recorded = {k for k, _ in handed[0][0].request_headers}
    assert not recorded & {k.decode() for k, _ in AWS_ADDED}


def test_locally_every_client_header_passes(upstream, tmp_path) -> None:
    upstream.enqueue(text_reply("hi"))
    _call(upstream.url, tmp_path, BODY, [(b"x-forwarded-for", b"203.0.113.7")], keys=False)
    assert upstream.messages_requests()[0].header("x-forwarded-for") == "203.0.113.7"
