"""The cloud record path, with AWS emulated by moto: proxy-side SqsSink -> SQS FIFO (+ S3 for large
records) -> a real SQS event -> the ingest Lambda handler -> the real Postgres."""

from __future__ import annotations

import json

import boto3
import psycopg
import pytest
from moto import mock_aws
from nexus.db.migrate import migrate
from nexus.sqs_queue import SqsSink

from tests.integration.test_ingest import _record

REGION = "eu-west-1"


@pytest.fixture
def aws(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(var, "testing")
    with mock_aws():
        sqs, s3 = boto3.client("sqs", region_name=REGION), boto3.client("s3", region_name=REGION)
        dlq = sqs.create_queue(QueueName="records-dlq.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        queue = sqs.create_queue(
            QueueName="records.fifo",
            Attributes={
                "FifoQueue": "true",
                "VisibilityTimeout": "0",
                "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "2"}),
            },
        )["QueueUrl"]
        s3.create_bucket(Bucket="records", CreateBucketConfiguration={"LocationConstraint": REGION})
        yield sqs, s3, queue, dlq


@pytest.fixture
def handler(database_url, monkeypatch):
    migrate(database_url)
    monkeypatch.setenv("DATABASE_URL", database_url)
    from nexus_ingest import handler as h

    h._state.clear()
    yield h
    if h._state.get("conn") is not None:
        h._state["conn"].close()
    h._state.clear()


def _event(sqs, queue: str) -> tuple[dict, list[dict]]:
    got = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, AttributeNames=["All"]).get(
        "Messages", []
    )
    records = [
        {
            "messageId": m["MessageId"],
            "receiptHandle": m["ReceiptHandle"],
            "body": m["Body"],
            "attributes": m.get("Attributes", {}),
            "eventSource": "aws:sqs",
        }
        for m in got
    ]
    return {"Records": records}, got


def _ack(sqs, queue: str, got: list[dict], failed: set[str]) -> None:
    for m in got:
        if m["MessageId"] not in failed:
            sqs.delete_message(QueueUrl=queue, ReceiptHandle=m["ReceiptHandle"])


def _ids(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        return {r[0] for r in conn.execute("SELECT id::text FROM requests")}


def test_records_travel_through_sqs_and_s3_into_postgres(aws, handler, database_url):
    sqs, s3, queue, _ = aws
    sink = SqsSink(sqs, queue, s3, "records", inline_limit=4096)
    small, large = _record(1, "s-cloud"), _record(2, "s-cloud")
    large.response_body += b": padding\n\n" * 2000  # over the inline limit: goes by S3
    sink.put(small)
    sink.put(large)
    sink.put(small)  # a retried send: deduplicated by record id
    assert [o["Key"] for o in s3.list_objects_v2(Bucket="records")["Contents"]] == [f"records/{large.id}"]
    event, got = _event(sqs, queue)
    assert len(got) == 2
    result = handler.handle(event)
    assert result == {"batchItemFailures": []}
    _ack(sqs, queue, got, set())
    assert _ids(database_url) == {small.id, large.id}


def test_a_poison_message_goes_to_the_dlq_and_the_rest_is_stored(aws, handler, database_url):
    sqs, s3, queue, dlq = aws
    sink = SqsSink(sqs, queue, s3, "records")
    good = _record(3, "s-poison")
    sqs.send_message(
        QueueUrl=queue,
        MessageBody='{"v": 1, "record": "not base64!"}',
        MessageGroupId="g",
        MessageDeduplicationId="poison-1",
    )
    sink.put(good)
    for _ in range(3):  # Lambda's retries: the poison one is reported failed each time
        event, got = _event(sqs, queue)
        if not got:
            break
        failed = {f["itemIdentifier"] for f in handler.handle(event)["batchItemFailures"]}
        assert all(
            json.loads(m["Body"]).get("record") == "not base64!" for m in got if m["MessageId"] in failed
        )
        _ack(sqs, queue, got, failed)
    assert _ids(database_url) == {good.id}
    dead = sqs.receive_message(QueueUrl=dlq, MaxNumberOfMessages=10).get("Messages", [])
    assert [json.loads(m["Body"])["record"] for m in dead] == ["not base64!"]


def test_database_away_returns_the_whole_batch(aws, handler, monkeypatch, database_url):
    sqs, s3, queue, _ = aws
    SqsSink(sqs, queue, s3, "records").put(_record(4, "s-away"))
    monkeypatch.setenv("DATABASE_URL", database_url.replace("/t_", "/missing_t_"))
    event, got = _event(sqs, queue)
    result = handler.handle(event)
    assert [f["itemIdentifier"] for f in result["batchItemFailures"]] == [m["MessageId"] for m in got]


def test_keys_and_teams_live_in_secrets_manager(aws):
    from nexus.access import AccessStore, Authenticator, AuthError
    from nexus.secrets_manager import SecretsManagerStore

    store = SecretsManagerStore(boto3.client("secretsmanager", region_name=REGION), prefix="nexus-staging/")
    assert store.get("nexus/keys") is None
    access = AccessStore(store)
    key, rec = access.create_key("platform", "ada")
    access.set_team("corp", "team-key")
    access.set_team_api_key("corp", "sk-ant-team")
    auth = Authenticator(store, require_keys=True, refresh_s=0)
    grant = auth.authorize({"x-nexus-key": key, "x-api-key": "sk-ant-own"})
    assert (grant.principal.team, grant.principal.user) == ("platform", "ada")
    assert key not in store.get("nexus/keys")  # only the hash is stored
    access.revoke_key(rec.id)
    with pytest.raises(AuthError, match="revoked"):
        auth.authorize({"x-nexus-key": key, "x-api-key": "sk-ant-own"})
    assert store.get("nexus/team/corp/anthropic-api-key") == "sk-ant-team"
    store.delete("nexus/team/corp/anthropic-api-key")
    assert store.get("nexus/team/corp/anthropic-api-key") is None


def test_dashboard_lambda_serves_a_function_url_event(aws, database_url, monkeypatch):
    migrate(database_url)
    sm = boto3.client("secretsmanager", region_name=REGION)
    sm.create_secret(Name="nexus-staging/dashboard-key", SecretString="nxd_cloud_key")
    monkeypatch.setenv("NEXUS_DASHBOARD_KEY_SECRET", "nexus-staging/dashboard-key")
    monkeypatch.setenv("DATABASE_URL", database_url)
    from nexus_dashboard import handler as dash

    def event(key: str) -> dict:  # a Lambda function URL (payload 2.0) request
        return {
            "version": "2.0",
            "routeKey": "$default",
            "rawPath": "/api/requests",
            "rawQueryString": "limit=5",
            "headers": {"authorization": f"Bearer {key}", "host": "abc.lambda-url.eu-west-1.on.aws"},
            "requestContext": {
                "http": {
                    "method": "GET",
                    "path": "/api/requests",
                    "protocol": "HTTP/1.1",
                    "sourceIp": "127.0.0.1",
                    "userAgent": "test",
                },
                "domainName": "abc.lambda-url.eu-west-1.on.aws",
                "stage": "$default",
            },
            "isBase64Encoded": False,
        }

    ok = dash.handle(event("nxd_cloud_key"), None)
    assert ok["statusCode"] == 200 and json.loads(ok["body"]) == {"requests": []}
    denied = dash.handle(event("wrong"), None)
    assert denied["statusCode"] == 401


def test_proxy_uses_the_cloud_adapters_when_configured(aws, monkeypatch, tmp_path):
    from nexus.secrets_manager import SecretsManagerStore
    from nexus_proxy.app import create_app

    sqs, _, queue, _ = aws
    monkeypatch.setenv("NEXUS_QUEUE_URL", queue)
    monkeypatch.setenv("NEXUS_RECORD_BUCKET", "records")
    monkeypatch.setenv("NEXUS_SECRETS_PREFIX", "nexus-staging/")
    monkeypatch.setenv("NEXUS_DATA_DIR", str(tmp_path))
    app = create_app()
    assert isinstance(app.forwarder.sink, SqsSink)
    assert isinstance(app.forwarder.auth.store, SecretsManagerStore)
    app.forwarder.sink.put(_record(7, "s-proxy"))
    (msg,) = sqs.receive_message(QueueUrl=queue, AttributeNames=["All"])["Messages"]
    assert msg["Attributes"]["MessageGroupId"] == "s-proxy"
    assert not (tmp_path / "spool").exists()  # nothing written locally
