"""The cloud record path, with AWS emulated by moto: proxy-side SqsSink -> SQS FIFO (+ S3 for large
records) -> a real SQS event -> the ingest Lambda handler -> the real Postgres."""

from __future__ import annotations

import json
import time

import boto3
import psycopg
import pytest
from moto import mock_aws
from nexus.access import AccessStore
from nexus.db.migrate import migrate
from nexus.secrets_manager import SecretsManagerStore
from nexus.sqs_queue import SqsSink

from tests.integration.test_ingest import _record
from tests.support.aws import LambdaContext, function_url_event

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


CTX = LambdaContext()  # an ingest function in eu-west-1


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
    result = handler.handle(event, CTX)
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
        failed = {f["itemIdentifier"] for f in handler.handle(event, CTX)["batchItemFailures"]}
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
    result = handler.handle(event, CTX)
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
    monkeypatch.setenv("NEXUS_SECRETS_PREFIX", "nexus-staging/")
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv("NEXUS_DB_SECRET_ARN", _db_secret(database_url))
    from nexus_dashboard import handler as dash

    monkeypatch.setattr(dash, "_current", {})  # a fresh execution environment

    def event(key: str, method: str = "GET", path: str = "/api/requests", body: str | None = None) -> dict:
        return function_url_event(key, method, path, body, "limit=5" if method == "GET" else "")

    ok = dash.handle(event("nxd_cloud_key"), CTX)
    assert ok["statusCode"] == 200 and json.loads(ok["body"]) == {"requests": []}
    served_by = dash._current["handler"]
    denied = dash.handle(event("wrong"), CTX)
    assert denied["statusCode"] == 401
    assert dash._current["handler"] is served_by  # one app and pool per execution environment
    # The keys page writes the stage's keys document, where `nexus keys --stage` and proxies read it.
    made = dash.handle(event("nxd_cloud_key", "POST", "/api/keys", '{"team": "web", "user": "ann"}'), CTX)
    assert made["statusCode"] == 201, made["body"]
    key_id = json.loads(made["body"])["record"]["id"]
    stage_keys = AccessStore(SecretsManagerStore(sm, "nexus-staging/")).keys()
    assert stage_keys[key_id].user == "ann" and stage_keys[key_id].revoked_at is None
    dash._current["app"].state.pool.close()


def _db_secret(database_url: str) -> str:
    """An RDS-style secret (what the CDK stack's generated secret holds) for the test database."""
    parts = psycopg.conninfo.conninfo_to_dict(database_url)
    doc = {
        "engine": "postgres",
        "host": parts.get("host", "localhost"),
        "port": int(parts.get("port", 5432)),
        "username": parts.get("user", "postgres"),
        "password": parts.get("password") or "unused-with-trust-auth",
        "dbname": parts["dbname"],
    }
    sm = boto3.client("secretsmanager", region_name=REGION)
    return sm.create_secret(Name="staging/nexus/database", SecretString=json.dumps(doc))["ARN"]


def test_ingest_reads_its_database_credentials_from_secrets_manager(aws, handler, database_url, monkeypatch):
    sqs, s3, queue, _ = aws
    monkeypatch.delenv("DATABASE_URL")
    monkeypatch.setenv("NEXUS_DB_SECRET_ARN", _db_secret(database_url))
    rec = _record(5, "s-secret")
    SqsSink(sqs, queue, s3, "records").put(rec)
    event, _ = _event(sqs, queue)
    assert handler.handle(event, CTX) == {"batchItemFailures": []}
    assert _ids(database_url) == {rec.id}
    with psycopg.connect(database_url) as conn:
        apps = {r[0] for r in conn.execute("SELECT application_name FROM pg_stat_activity")}
    assert "nexus-ingest" in apps  # the handler's own connection, made from the secret


def _emf(out: str) -> list[dict]:
    docs = []
    for line in out.splitlines():
        if line.startswith("{") and '"_aws"' in line:
            docs.append(json.loads(line))
    return docs


def test_ingest_emits_metrics_by_model_and_team_with_ids_in_metadata(aws, handler, database_url, capsys):
    sqs, s3, queue, _ = aws
    sink = SqsSink(sqs, queue, s3, "records")
    ok, overloaded = _record(6, "s-metrics"), _record(7, "s-metrics")
    ok.team = overloaded.team = "platform"
    overloaded.status = 529
    overloaded.response_headers = [["content-type", "application/json"]]
    overloaded.response_body = b'{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}'
    sink.put(ok)
    sink.put(overloaded)
    event, _ = _event(sqs, queue)
    capsys.readouterr()
    assert handler.handle(event, CTX) == {"batchItemFailures": []}
    docs = _emf(capsys.readouterr().out)
    by_dims = {tuple(sorted(k for k in d["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0])): d for d in docs}

    service = by_dims[("service",)]
    assert (
        service["service"] == "nexus-ingest"
        and service["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "Nexus"
    )
    assert service["Requests"] == [2.0] and service["Upstream5xx"] == [1.0]  # counts summed per batch
    assert len(service["TimeToFirstByte"]) == 2  # latencies kept whole, for percentiles
    assert set(service["request_ids"]) == {ok.id, overloaded.id}  # metadata, not a dimension

    model = by_dims[("Model", "Team", "service")]
    assert (model["Model"], model["Team"]) == ("claude-opus-5-5", "platform")
    assert model["OutputTokens"][0] > 0 and model["CostUSD"][0] > 0 and model["request_ids"] == [ok.id]

    status = by_dims[("Status", "service")]
    assert status["Status"] == "529" and status["UpstreamErrors"] == [1.0]
    for d in docs:  # no id ever becomes a dimension (that would be one metric per request)
        for dims in d["_aws"]["CloudWatchMetrics"][0]["Dimensions"]:
            assert not {"request_ids", "session_id", "conversation_id"} & set(dims)

    # A redelivered batch stores nothing new and so counts nothing again.
    assert handler.handle(event, CTX) == {"batchItemFailures": []}
    assert not _emf(capsys.readouterr().out)


def test_migrations_custom_resource_applies_the_schema(aws, database_url, monkeypatch):
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv("NEXUS_DB_SECRET_ARN", _db_secret(database_url))
    from nexus_migrate.handler import handle

    created = handle({"RequestType": "Create", "ResourceProperties": {"MigrationsHash": "x"}}, CTX)
    assert created["PhysicalResourceId"] == "nexus-schema"
    assert "0001_requests" in created["Data"]["Applied"]
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT count(*) FROM schema_migrations").fetchone()[0] >= 2
    again = handle({"RequestType": "Update", "PhysicalResourceId": "nexus-schema"}, CTX)
    assert again["Data"]["Applied"] == "none"  # idempotent: a re-run applies nothing
    deleted = handle({"RequestType": "Delete", "PhysicalResourceId": "nexus-schema"}, CTX)
    assert deleted == {"PhysicalResourceId": "nexus-schema"}
    with psycopg.connect(database_url) as conn:  # deleting the resource never touches the data
        assert conn.execute("SELECT count(*) FROM schema_migrations").fetchone()[0] >= 2


def test_operators_manage_a_deployed_stage_with_the_cli(aws, capsys, tmp_path):
    """`nexus keys/teams --stage`: the same commands as locally, against the stage's secrets."""
    from nexus.access import Authenticator, AuthError
    from nexus.secrets_manager import SecretsManagerStore
    from nexus_cli.main import main

    sm = boto3.client("secretsmanager", region_name=REGION)
    for name in ("keys", "teams"):  # what the CDK stack creates, empty
        sm.create_secret(Name=f"staging/nexus/{name}", SecretString="{}")
    local = ["--data-dir", str(tmp_path)]
    assert main(["keys", "create", "--stage", "staging", "--team", "platform", "--user", "ada", *local]) == 0
    key = capsys.readouterr().out.strip()
    assert key.startswith("nxk_")
    assert not (tmp_path / "secrets.json").exists(), "nothing written locally for a deployed stage"

    auth = Authenticator(SecretsManagerStore(sm, "staging/"), require_keys=True, refresh_s=0)
    grant = auth.authorize({"x-nexus-key": key, "x-api-key": "sk-ant-own"})
    assert (grant.principal.team, grant.principal.user) == ("platform", "ada")
    with pytest.raises(AuthError):  # another stage's proxy does not know the key
        Authenticator(SecretsManagerStore(sm, "prod/"), require_keys=True).authorize({"x-nexus-key": key})

    assert main(["keys", "list", "--stage", "staging", "--json", *local]) == 0
    [listed] = json.loads(capsys.readouterr().out)
    assert main(["keys", "revoke", listed["id"], "--stage", "staging", *local]) == 0
    with pytest.raises(AuthError, match="revoked"):
        auth.authorize({"x-nexus-key": key, "x-api-key": "sk-ant-own"})


def test_budgets_on_aws_ingest_writes_the_state_the_proxy_reads(aws, handler, monkeypatch, capsys, tmp_path):
    """A cap set with `nexus budgets --stage`; the ingest Lambda stores a batch that crosses it and
    writes the state document to Secrets Manager; a proxy reading that stage refuses the team."""
    from nexus.budgets import BUDGET_STATE_SECRET
    from nexus_cli.main import main
    from nexus_proxy.budget_gate import BudgetGate

    sqs, s3, queue, _ = aws
    sm = boto3.client("secretsmanager", region_name=REGION)
    for name in ("keys", "teams", "budgets", "budget-state"):  # what the CDK stack creates, empty
        sm.create_secret(Name=f"staging/nexus/{name}", SecretString="{}")
    local = ["--data-dir", str(tmp_path)]
    assert main(["keys", "create", "--stage", "staging", "--team", "web", "--user", "ada", *local]) == 0
    assert (
        main(["budgets", "set", "--stage", "staging", "--team", "web", "--monthly-usd", "0.001", *local]) == 0
    )
    capsys.readouterr()

    monkeypatch.setenv("NEXUS_SECRETS_PREFIX", "staging/")
    sink = SqsSink(sqs, queue, s3, "records")
    for i in range(3):
        rec = _record(i, "s-budget")
        rec.received_at = time.time()
        rec.team = "web"
        sink.put(rec)
    event, _ = _event(sqs, queue)
    assert handler.handle(event, CTX) == {"batchItemFailures": []}
    capsys.readouterr()  # the handler's log lines

    store = SecretsManagerStore(sm, "staging/")
    (over,) = json.loads(store.get(BUDGET_STATE_SECRET) or "{}")["over"]
    assert (over["subject"], over["period"], over["cap_usd"]) == ("team:web", "monthly", 0.001)
    refusal = BudgetGate(store, refresh_s=0).refusal("/v1/messages", "web", None)
    assert refusal is not None and "team 'web' has spent $0.00" in refusal.message()
    assert "of its monthly budget of $0.001;" in refusal.message()

    assert main(["budgets", "list", "--stage", "staging", "--json", *local]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["refused"] is True and row["spend_usd"] is None, "no database from a laptop: caps only"
    assert (
        main(["budgets", "set", "--stage", "staging", "--team", "web", "--monthly-usd", "100", *local]) == 0
    )
    assert BudgetGate(store, refresh_s=0).refusal("/v1/messages", "web", None) is None
