"""Records the queue refuses are not lost (AWS path, moto's server): when a send to SQS still fails
after the client's retries, the record goes whole to S3 under records/unsent/, and ingest's scheduled
replay stores it; when S3 refuses too, the record is in the proxy's log line, and `nexus records
replay-log` puts it back for the replay. Each path ends with the record in PostgreSQL."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import boto3
import psycopg
import pytest
from nexus.aws_calls import S3Client, SqsClient
from nexus.db.records import raw_records
from nexus.sqs_queue import UNSENT_PREFIX, SqsSink, records_in_log

from tests.integration.test_cloud_queue import CTX, handler  # noqa: F401 - fixture
from tests.integration.test_ingest import _record
from tests.support.aws import BUCKET, REGION, EmulatedAws, emulated_aws

REPLAY = {"nexus": "replay-unsent"}  # what the stack's schedule sends


@pytest.fixture(scope="module")
def aws() -> Iterator[EmulatedAws]:
    with emulated_aws() as emulated:
        yield emulated


@pytest.fixture
def ingest(aws, handler, monkeypatch):  # noqa: F811 - the imported fixture
    """The ingest Lambda's handler (in this process, on a fresh database) on moto's S3. moto's state
    is one per process: what other modules left under records/unsent/ is cleared first."""
    for key in _unsent(aws):
        aws.s3.delete_object(Bucket=BUCKET, Key=key)
    for k in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"):
        monkeypatch.setenv(k, aws.env.get(k, REGION))
    monkeypatch.setenv("NEXUS_RECORD_BUCKET", BUCKET)
    return handler


def _unsent(aws: EmulatedAws) -> list[str]:
    return [o["Key"] for o in aws.s3.list_objects_v2(Bucket=BUCKET, Prefix=UNSENT_PREFIX).get("Contents", [])]


def _stored(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        return {r[0] for r in conn.execute("SELECT id::text FROM requests")}


def test_a_record_sqs_refuses_is_kept_in_s3_and_replayed_into_the_database(aws, ingest, database_url) -> None:
    gone = aws.queue_url + "-deleted"  # the queue is gone (or the role lost sqs:SendMessage)
    sink = SqsSink(SqsClient(aws.env), gone, S3Client(aws.env), BUCKET)
    first, second = _record(11, "s-unsent"), _record(12, "s-unsent")
    sink.put(first)
    sink.put(second)
    assert (sink.sends.sent, sink.sends.spilled_to_s3, sink.sends.logged) == (0, 2, 0)
    assert _unsent(aws) == [UNSENT_PREFIX + first.id, UNSENT_PREFIX + second.id]
    assert aws.drain() == []

    done = ingest.handle(REPLAY, CTX)
    assert done["replayed"] == 2 and done["stored"] == 2 and done["damaged"] == []
    assert _stored(database_url) == {first.id, second.id}
    assert _unsent(aws) == []  # deleted once stored
    assert ingest.handle(REPLAY, CTX)["replayed"] == 0


def test_a_damaged_unsent_object_is_left_and_reported_and_the_rest_stored(aws, ingest, database_url) -> None:
    good = _record(13, "s-unsent")
    aws.s3.put_object(Bucket=BUCKET, Key=UNSENT_PREFIX + "not-a-record", Body=b"garbage")
    aws.s3.put_object(Bucket=BUCKET, Key=UNSENT_PREFIX + good.id, Body=good.encode())
    done = ingest.handle(REPLAY, CTX)
    assert done["replayed"] == 1 and done["damaged"] == [UNSENT_PREFIX + "not-a-record"]
    assert _stored(database_url) == {good.id}
    aws.s3.delete_object(Bucket=BUCKET, Key=UNSENT_PREFIX + "not-a-record")


def test_with_the_database_away_unsent_records_wait_for_the_next_run(aws, ingest, database_url, monkeypatch):
    record = _record(14, "s-unsent")
    aws.s3.put_object(Bucket=BUCKET, Key=UNSENT_PREFIX + record.id, Body=record.encode())
    monkeypatch.setenv("DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none?connect_timeout=1")
    ingest._state.clear()
    assert ingest.handle(REPLAY, CTX) == {"replayed": 0, "error": "database unavailable"}
    assert _unsent(aws) == [UNSENT_PREFIX + record.id]
    monkeypatch.setenv("DATABASE_URL", database_url)
    ingest._state.clear()
    assert ingest.handle(REPLAY, CTX)["replayed"] == 1
    assert _stored(database_url) == {record.id}


def test_when_s3_refuses_too_the_record_is_in_the_log_line_and_the_cli_puts_it_back(
    aws, ingest, database_url, caplog, tmp_path, capsys
) -> None:
    from nexus_cli.main import main

    sink = SqsSink(SqsClient(aws.env), aws.queue_url + "-deleted", S3Client(aws.env), BUCKET + "-deleted")
    big = _record(15, "s-unsent")
    big.request_body = big.request_body.replace(b'"m0"', b'"' + b"\\u0000 binary-ish " * 2000 + b'"')
    with caplog.at_level(logging.ERROR, logger="nexus.recording"):
        sink.put(big)
    assert sink.sends.logged == 1 and _unsent(aws) == []
    [line] = [r.getMessage() for r in caplog.records if "record not sent" in r.getMessage()]
    assert big.id in line and "NoSuchBucket" in line
    # the line as CloudWatch keeps it (JSON, from the proxy's Powertools formatter), in an export
    export = tmp_path / "proxy-log.txt"
    export.write_text(
        "2026-11-30T10:00:00.000Z\t" + json.dumps({"level": "ERROR", "message": line}) + "\nunrelated line\n"
    )
    assert [r.id for r in records_in_log(export.read_text().splitlines())] == [big.id]

    cfn = boto3.client("cloudformation", endpoint_url=aws.env["AWS_ENDPOINT_URL"], region_name=REGION)
    cfn.create_stack(
        StackName="Nexus-staging",
        TemplateBody=json.dumps(
            {
                "Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
                "Outputs": {"RecordBucket": {"Value": BUCKET}},
            }
        ),
    )
    assert main(["records", "replay-log", "--stage", "staging", str(export)]) == 0
    assert big.id in capsys.readouterr().out
    assert _unsent(aws) == [UNSENT_PREFIX + big.id]
    assert ingest.handle(REPLAY, CTX)["replayed"] == 1
    with psycopg.connect(database_url) as conn:
        [stored] = raw_records(conn, "id = %s", (big.id,))
    assert stored.request_body == big.request_body  # the exact bytes, through the log line and back

    # input without records, and a file that is not there: readable errors
    empty = tmp_path / "empty.txt"
    empty.write_text("nothing here\n")
    assert main(["records", "replay-log", "--stage", "staging", str(empty)]) == 2
    assert "no unsent records" in capsys.readouterr().err
    assert main(["records", "replay-log", "--stage", "staging", str(tmp_path / "missing")]) == 2
    assert "cannot read" in capsys.readouterr().err
