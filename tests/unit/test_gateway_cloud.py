"""The gateway's cloud pieces that run without the cloud: route keys and rendezvous ranking, worker
discovery, the front's Lambda framing, and the workers' metrics (CloudWatch emulated by moto)."""

from __future__ import annotations

import asyncio
import base64
import json
from collections import Counter
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from moto import mock_aws
from nexus import metrics as m
from nexus_gateway.cloud import routing
from nexus_gateway.cloud.discovery import Workers
from nexus_gateway.cloud.front import Unreachable, from_event_stream
from nexus_gateway.cloud.lambda_stream import DELIMITER, BadStream, PreludeReader, url_event
from nexus_gateway.cloud.metrics import Publisher
from nexus_gateway.engine.stats import Stats
from nexus_gateway.responses import response_id

AUTH = {"authorization": "Bearer nxk_one"}


def _chat(messages: list[dict], **extra: object) -> bytes:
    return json.dumps({"model": "sonnet", "messages": messages, **extra}).encode()


def test_every_turn_of_a_resent_history_has_the_conversations_route():
    opening = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    later = [*opening, {"role": "assistant", "content": "Hello"}, {"role": "user", "content": "More"}]
    parts = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "Hi"}]},
        *later[2:],
    ]
    key = routing.route_key("POST", "/v1/chat/completions", AUTH, _chat(opening))
    assert routing.route_key("POST", "/v1/chat/completions", AUTH, _chat(later, stream=True)) == key
    assert routing.route_key("POST", "/v1/chat/completions", AUTH, _chat(parts)) == key  # parts, not a string
    # Another caller, or another opening, is another conversation.
    assert (
        routing.route_key("POST", "/v1/chat/completions", {"authorization": "Bearer nxk_two"}, _chat(opening))
        != key
    )
    other = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Bye"}]
    assert routing.route_key("POST", "/v1/chat/completions", AUTH, _chat(other)) != key


def test_named_conversations_and_responses_route_by_what_they_name():
    by_path = routing.route_key("GET", "/v1/conversations/conv_abc/items", AUTH, b"")
    by_body = routing.route_key(
        "POST", "/v1/responses", AUTH, json.dumps({"conversation": "conv_abc"}).encode()
    )
    by_chat = routing.route_key("POST", "/v1/chat/completions", AUTH, _chat([], conversation_id="conv_abc"))
    assert by_path == by_body == by_chat
    first = routing.route_key("POST", "/v1/responses", AUTH, json.dumps({"input": "Remember teal."}).encode())
    rid = response_id(first)  # the worker writes the route it was given into the response's id
    assert rid.startswith("resp_") and len(rid) == len(response_id())
    follow = {"input": "Which colour?", "previous_response_id": rid}
    assert routing.route_key("POST", "/v1/responses", AUTH, json.dumps(follow).encode()) == first
    assert routing.route_key("GET", f"/v1/responses/{rid}", AUTH, b"") == first


def test_a_request_the_router_cannot_read_still_gets_a_route():
    for body in (b"", b"{not json", b"[1, 2]", json.dumps({"messages": "x", "input": 3}).encode()):
        key = routing.route_key("POST", "/v1/chat/completions", AUTH, body)
        assert routing.valid_key(key) == key


def test_only_a_well_formed_route_header_is_taken():
    assert routing.valid_key("0123456789abcdef") == "0123456789abcdef"
    for bad in (None, "", "0123456789ABCDEF", "0123456789abcde", "0123456789abcdef0", "../../etc/passwd"):
        assert routing.valid_key(bad) is None


def test_rendezvous_spreads_keys_and_moves_only_a_leaving_workers_share():
    workers = [f"10.0.0.{i}:8081" for i in range(1, 5)]
    keys = [
        routing.route_key("POST", "/v1/chat/completions", AUTH, _chat([{"role": "user", "content": str(i)}]))
        for i in range(2000)
    ]
    first = {k: routing.rank(k, workers)[0] for k in keys}
    share = Counter(first.values())
    assert all(400 < n < 600 for n in share.values()), share  # about a quarter each
    gone = workers[0]
    after = {k: routing.rank(k, workers[1:])[0] for k in keys}
    moved = [k for k in keys if after[k] != first[k]]
    assert moved and all(first[k] == gone for k in moved)  # only the keys the gone worker held
    # ...and each of those goes to its own second choice (the fallback order is the same everywhere).
    assert all(after[k] == routing.rank(k, workers)[1] for k in moved)


def test_workers_from_a_list_or_from_dns():
    fixed = Workers("10.0.0.1:8081, 10.0.0.2", 9000)
    assert asyncio.run(fixed.addresses()) == ["10.0.0.1:8081", "10.0.0.2:9000"]
    dns = Workers("localhost", 8081)
    assert asyncio.run(dns.addresses()) == ["127.0.0.1:8081"]
    assert asyncio.run(Workers("no-such-host.invalid", 8081).addresses()) == []  # none registered yet
    with pytest.raises(ValueError):
        Workers(" , ", 8081)


def test_the_front_sends_a_function_url_event_the_adapter_can_read():
    body = b'{"model": "sonnet"}\x00\xff'
    event = json.loads(
        url_event("POST", "/v1/chat/completions", "a=1", {"user-agent": "openai"}, body, "203.0.113.9")
    )
    assert event["version"] == "2.0" and event["rawPath"] == "/v1/chat/completions"
    assert event["rawQueryString"] == "a=1" and event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == body  # any bytes survive
    http = event["requestContext"]["http"]
    assert (http["method"], http["sourceIp"], http["userAgent"]) == ("POST", "203.0.113.9", "openai")


def test_the_routers_answer_is_read_past_its_prelude_in_any_chunking():
    prelude = json.dumps({"statusCode": 429, "headers": {"retry-after": "3"}, "cookies": ["a=b"]}).encode()
    stream = prelude + DELIMITER + b"data: one\n\ndata: two\n\n"
    for size in (1, 3, 8, 64, len(stream)):
        reader = PreludeReader()
        body = b"".join(reader.feed(stream[i : i + size]) for i in range(0, len(stream), size))
        assert reader.head == (429, [("retry-after", "3"), ("set-cookie", "a=b")])
        assert body == b"data: one\n\ndata: two\n\n"
    with pytest.raises(BadStream):
        PreludeReader().feed(b"{nope" + DELIMITER)
    with pytest.raises(BadStream):
        PreludeReader().feed(b"x" * 70_000)


def _payloads(*chunks: bytes, error: str | None = None) -> list[dict]:
    events: list[dict] = [{"PayloadChunk": {"Payload": c}} for c in chunks]
    return [*events, {"InvokeComplete": {"ErrorCode": error} if error else {}}]


def test_the_front_streams_the_routers_answer_and_reports_its_failures():
    async def read(events: list[dict]) -> tuple[tuple, list[bytes]]:
        head, chunks = await from_event_stream(iter(events))
        return head, [c async for c in chunks]

    prelude = json.dumps({"statusCode": 200, "headers": {"content-type": "text/event-stream"}}).encode()
    head, body = asyncio.run(read(_payloads(prelude[:5], prelude[5:] + DELIMITER + b"data: a", b"\n\n")))
    assert head == (200, [("content-type", "text/event-stream")]) and b"".join(body) == b"data: a\n\n"
    with pytest.raises(Unreachable, match="Unhandled"):
        asyncio.run(read(_payloads(error="Unhandled")))  # the router failed before answering
    with pytest.raises(ConnectionError, match="mid-answer"):  # after: the client's stream is aborted
        asyncio.run(read(_payloads(prelude + DELIMITER + b"data: a", error="Unhandled")))


class _Pool:
    def __init__(self) -> None:
        self.stats = Stats()
        self.counts = {"workers": 3, "starting": 1, "busy": 1, "suspended": 1}

    def census(self) -> dict[str, int]:
        return self.counts


@mock_aws
def test_a_worker_publishes_its_load_for_scaling_and_alarms():
    cloudwatch = boto3.client("cloudwatch", region_name="us-east-1")
    pool = _Pool()
    pool.stats.rejected = 5  # before the publisher started: not this interval's
    publisher = Publisher(pool, cloudwatch)  # type: ignore[arg-type]
    pool.stats.rejected += 2
    pool.stats.errors += 1
    for ms in (120.0, 480.0):
        pool.stats.first_delta(ms)
    publisher.publish(started=True)
    publisher.publish()  # an interval with nothing new

    def stat(name: str, statistic: str) -> list[float]:
        got = cloudwatch.get_metric_statistics(
            Namespace=m.NAMESPACE,
            MetricName=name,
            Dimensions=[{"Name": "service", "Value": m.GATEWAY_SERVICE}],
            StartTime=datetime.now(UTC) - timedelta(minutes=5),
            EndTime=datetime.now(UTC) + timedelta(minutes=5),
            Period=600,
            Statistics=[statistic],
        )
        return [p[statistic] for p in got["Datapoints"]]

    assert stat(m.GATEWAY_BUSY_SESSIONS, "Average") == [2.0]  # a suspended turn holds its session
    assert stat(m.GATEWAY_WARM_SESSIONS, "Maximum") == [2.0]
    assert stat(m.GATEWAY_REJECTED, "Sum") == [2.0]
    assert stat(m.GATEWAY_ERRORS, "Sum") == [1.0]
    assert stat(m.GATEWAY_WORKER_STARTS, "Sum") == [1.0]
    assert stat(m.GATEWAY_FIRST_DELTA, "Maximum") == [480.0]
    assert stat(m.GATEWAY_FIRST_DELTA, "SampleCount") == [2.0]
