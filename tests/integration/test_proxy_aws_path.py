"""The proxy on its AWS path, as Lambda runs it (``functions/proxy/run.sh``, the stack's variables),
against AWS emulated by moto's server: the key is checked against Secrets Manager, each record goes
to SQS, and a record too large for a message goes to S3 (its client is built on first use)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from nexus.record import RawRecord
from nexus.sqs_queue import INLINE_LIMIT, SPILLED_MESSAGE, UNSENT_PREFIX, decode_message

from tests.integration.http import CLAUDE_HEADERS, post, request
from tests.support import faults
from tests.support.aws import BUCKET, EmulatedAws, emulated_aws
from tests.support.fake_upstream import FakeAnthropic, text_reply
from tests.support.stack import free_port

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def aws() -> Iterator[EmulatedAws]:
    with emulated_aws() as emulated:
        yield emulated


@pytest.fixture
def proxy(aws: EmulatedAws, upstream: FakeAnthropic, tmp_path: Path) -> Iterator[str]:
    port = free_port()
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("NEXUS_", "AWS_"))}
    environ.update(
        aws.env,
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        LAMBDA_TASK_ROOT=str(ROOT / "functions" / "proxy"),
        AWS_LWA_PORT=str(port),
        NEXUS_UPSTREAM_URL=upstream.url,
        NEXUS_DATA_DIR=str(tmp_path),
    )
    proc = subprocess.Popen(
        ["/bin/sh", str(ROOT / "functions" / "proxy" / "run.sh")],
        cwd=environ["LAMBDA_TASK_ROOT"],
        env=environ,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if request(base, "GET", "/health").status == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline and proc.poll() is None, "the proxy did not become ready"
            time.sleep(0.05)
        aws.drain()
        yield base
    finally:
        proc.terminate()
        proc.wait(10)


def _body(text: str) -> dict[str, object]:
    return {
        "model": "claude-sonnet-4-5",
        "max_tokens": 5,
        "stream": True,
        "messages": [{"role": "user", "content": text}],
    }


def test_a_keyed_request_is_answered_and_its_record_sent_to_sqs(aws, proxy, upstream) -> None:
    upstream.enqueue(text_reply("from the AWS path"))
    resp = post(proxy, "/v1/messages", _body("hello"), {**CLAUDE_HEADERS, "x-nexus-key": aws.key})
    assert resp.status == 200 and resp.body.endswith(b'data: {"type":"message_stop"}\n\n')
    [message] = aws.drain()
    record = decode_message(message["Body"], aws.s3)
    assert record.status == 200 and record.team == "bench" and record.response_body == resp.body


def test_a_wrong_key_is_refused_without_calling_the_upstream(aws, proxy, upstream) -> None:
    resp = post(proxy, "/v1/messages", _body("hello"), {**CLAUDE_HEADERS, "x-nexus-key": "nxk_nope_nope"})
    assert resp.status == 401 and not upstream.messages_requests()
    [message] = aws.drain()
    assert decode_message(message["Body"], aws.s3).status == 401


def test_a_record_too_large_for_a_message_goes_to_s3(aws, proxy, upstream) -> None:
    upstream.enqueue(text_reply("large"))
    resp = post(proxy, "/v1/messages", _body("x" * INLINE_LIMIT), {**CLAUDE_HEADERS, "x-nexus-key": aws.key})
    assert resp.status == 200
    [message] = aws.drain()
    assert '"s3"' in message["Body"]
    record = decode_message(message["Body"], aws.s3)
    assert record.status == 200 and len(record.request_body) > INLINE_LIMIT


def test_create_app_uses_the_cloud_adapters_when_configured(aws, monkeypatch, tmp_path) -> None:
    from nexus.secrets_manager import SecretsManagerStore
    from nexus.sqs_queue import SqsSink
    from nexus_proxy.app import create_app

    from tests.integration.test_ingest import _record

    for name, value in aws.env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("NEXUS_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("AWS_LAMBDA_FUNCTION_NAME")  # JSON logging would take over this process's root logger
    app = create_app()
    assert isinstance(app.forwarder.sink, SqsSink)
    assert isinstance(app.forwarder.auth.store, SecretsManagerStore)
    app.forwarder.sink.put(_record(7, "s-proxy"))
    [message] = aws.drain()
    assert decode_message(message["Body"], aws.s3).header("x-claude-code-session-id") == "s-proxy"
    assert not (tmp_path / "spool").exists()  # nothing written locally


def test_on_lambda_the_proxy_logs_json_lines(aws, upstream, tmp_path) -> None:
    # A queue that does not exist: the hand-off fails after the answer; the record goes to S3 for
    # ingest's replay instead, and a JSON line says so.
    with faults.aws_proxy(aws, upstream, tmp_path, NEXUS_QUEUE_URL=aws.queue_url + "-gone") as (base, log):
        upstream.enqueue(text_reply("answered, not recorded"))
        resp = post(base, "/v1/messages", _body("hello"), {**CLAUDE_HEADERS, "x-nexus-key": aws.key})
        assert resp.status == 200
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    [line] = [entry for entry in lines if SPILLED_MESSAGE in entry["message"]]
    assert line["level"] == "WARNING" and line["service"] == "nexus-proxy" and line["record_id"]
    assert "QueueDoesNotExist" in line["message"] or "NonExistentQueue" in line["message"]
    kept = aws.s3.get_object(Bucket=BUCKET, Key=UNSENT_PREFIX + line["record_id"])["Body"].read()
    assert RawRecord.decode(kept).response_body  # the whole record, answer included
    aws.s3.delete_object(Bucket=BUCKET, Key=UNSENT_PREFIX + line["record_id"])
