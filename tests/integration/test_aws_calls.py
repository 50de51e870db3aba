"""nexus.aws_calls against moto's server: the proxy's reads of Secrets Manager and its sends to SQS
and S3 behave as they did with botocore clients (same reply shapes, missing secrets are None)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from nexus.access import KEYS_SECRET, AccessStore, parse_key_id
from nexus.aws_calls import AwsError, S3Client, SecretsManagerClient, SqsClient
from nexus.secrets_manager import SecretsManagerStore
from nexus.sqs_queue import SqsSink, decode_message

from tests.integration.test_ingest import _record
from tests.support.aws import BUCKET, SECRETS_PREFIX, EmulatedAws, emulated_aws


@pytest.fixture(scope="module")
def aws() -> Iterator[EmulatedAws]:
    with emulated_aws() as emulated:
        yield emulated


def test_secrets_are_read_and_a_missing_one_is_none(aws) -> None:
    store = SecretsManagerStore(SecretsManagerClient(aws.env), SECRETS_PREFIX)
    keys = json.loads(store.get(KEYS_SECRET) or "{}")
    assert parse_key_id(aws.key) in keys
    assert store.version(KEYS_SECRET) is not None
    assert store.get("nexus/no-such-secret") is None and store.version("nexus/no-such-secret") is None
    assert AccessStore(store).teams() == {"bench": {"mode": "passthrough"}}


def test_a_proxys_early_refresh_request_is_written_and_read_back(aws) -> None:
    from nexus.oauth import REQUESTS_SECRET, request_refresh

    store = SecretsManagerStore(SecretsManagerClient(aws.env), SECRETS_PREFIX)
    before = store.version(REQUESTS_SECRET)
    request_refresh(store, "max")  # created the first time
    request_refresh(store, "pro")  # then a new version of it
    assert set(json.loads(store.get(REQUESTS_SECRET) or "{}")) == {"max", "pro"}
    assert store.version(REQUESTS_SECRET) not in (None, before)


def test_records_go_to_sqs_and_large_ones_to_s3(aws) -> None:
    small, large = _record(1, "s-small"), _record(2, "s-large")
    large.request_body = b"x" * 4096
    limit = len(small.encode()) + 100  # the small one inline, the large one by S3
    sink = SqsSink(SqsClient(aws.env), aws.queue_url, S3Client(aws.env), BUCKET, inline_limit=limit)
    sink.put(small)
    sink.put(large)
    messages = aws.drain()
    assert sum('"s3"' in m["Body"] for m in messages) == 1  # the large one, by pointer
    got = {r.id: r for r in (decode_message(m["Body"], aws.s3) for m in messages)}
    assert set(got) == {small.id, large.id}
    assert got[large.id].request_body == large.request_body


def test_an_aws_error_says_its_code(aws) -> None:
    with pytest.raises(AwsError) as err:
        SqsClient(aws.env).send_message(
            QueueUrl=aws.queue_url + "-missing", MessageBody="x", MessageGroupId="g"
        )
    assert err.value.status == 400 and err.value.code
