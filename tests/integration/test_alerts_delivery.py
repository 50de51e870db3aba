"""The notifier on a real PostgreSQL: de-duplication (also under concurrent notifiers), delivery to a
real HTTP server standing in for Slack, a failing webhook recorded in the log row, and the AWS shape
under moto: the ingest Lambda publishes to the alerts topic (a subscribed SQS queue receives it), and
the notifier Lambda posts the message it carries to Slack."""

from __future__ import annotations

import json
import threading
from dataclasses import replace

import boto3
import psycopg
import pytest
from moto import mock_aws
from nexus.alert_events import CREDENTIAL_FAILED, RATE_LIMIT, AlertEvent
from nexus.alerts.channels import SlackChannel
from nexus.alerts.config import AlertSettings, ConfigCache
from nexus.alerts.notifier import AlertNotifier, direct_notifier
from nexus.db.migrate import migrate
from nexus.secret_store import LocalSecretStore
from nexus.secrets_manager import SecretsManagerStore
from nexus_notifier.handler import handle_records

from tests.integration.test_cloud_queue import CTX, _event
from tests.integration.test_ingest import _record
from tests.support.webhook import WebhookReceiver

REGION = "eu-west-1"
EVENT = AlertEvent(
    kind=RATE_LIMIT,
    level="warning",
    team="web",
    subject="team:web",
    message="Team web has used 95% of the 5-hour rate limit.",
    dedup_key="rate_limit:web:acct:5h:1800000000",
    facts={"utilization": 0.95},
)


@pytest.fixture(scope="module")
def receiver():
    r = WebhookReceiver().start()
    yield r
    r.stop()


@pytest.fixture
def slack(receiver):
    receiver.reset()
    return receiver


@pytest.fixture
def db(database_url):
    migrate(database_url)
    return database_url


def _rows(url: str) -> list[dict]:
    with psycopg.connect(url) as conn, conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        return cur.execute("SELECT * FROM alerts ORDER BY id").fetchall()


def _notifier(tmp_path, db, slack, path="/hook/web") -> AlertNotifier:
    store = LocalSecretStore(tmp_path / "secrets.json")
    AlertSettings(store).set_slack_webhook("web", slack.url(path))
    return direct_notifier(store, db)


def test_one_post_per_crossing_and_the_repeat_is_counted(tmp_path, db, slack):
    notifier = _notifier(tmp_path, db, slack)
    assert notifier.notify(EVENT) is True
    assert notifier.notify(EVENT) is False  # the same crossing, same window
    (post,) = slack.wait(1)
    assert post["path"] == "/hook/web" and "95%" in post["json"]["text"]
    assert post["json"]["blocks"][0]["text"]["text"].startswith(":warning: *[Nexus] warning: rate limit")
    (row,) = _rows(db)
    assert (row["kind"], row["team"], row["repeats"], row["delivered"], row["errors"]) == (
        RATE_LIMIT,
        "web",
        1,
        ["slack"],
        {},
    )
    # Another key (another window) is another alert.
    assert notifier.notify(replace(EVENT, dedup_key="rate_limit:web:acct:5h:1800018000")) is True
    assert len(slack.wait(2)) == 2


def test_concurrent_notifiers_raise_one_alert(tmp_path, db, slack):
    notifiers = [_notifier(tmp_path, db, slack) for _ in range(6)]
    results: list[bool] = []
    start = threading.Barrier(len(notifiers))

    def go(n: AlertNotifier) -> None:
        n.connection()  # connected before the race
        start.wait()
        results.append(n.notify(EVENT))

    threads = [threading.Thread(target=go, args=(n,)) for n in notifiers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(results) == [False] * 5 + [True]
    (row,) = _rows(db)
    assert row["repeats"] == 5 and len(slack.received()) == 1


def test_a_failing_webhook_is_recorded_in_the_row_and_never_raises(tmp_path, db, slack):
    slack.status = 500
    notifier = _notifier(tmp_path, db, slack)
    assert notifier.notify(EVENT) is True  # raised and logged, though not delivered
    (row,) = _rows(db)
    assert row["delivered"] == [] and row["errors"] == {"slack": "HTTP 500: internal_error"}
    assert "/hook/web" not in json.dumps(row["errors"])
    assert len(slack.received()) == 1  # one attempt, no retries


def test_an_unreachable_webhook_is_recorded_without_its_url(tmp_path, db):
    store = LocalSecretStore(tmp_path / "secrets.json")
    AlertSettings(store).set_slack_webhook("web", "http://127.0.0.1:9/services/SECRET-PATH")
    assert direct_notifier(store, db).notify(EVENT) is True
    (row,) = _rows(db)
    assert row["delivered"] == [] and "slack" in row["errors"]
    assert "SECRET-PATH" not in row["errors"]["slack"]


def test_a_kind_the_team_turned_off_is_neither_logged_nor_sent(tmp_path, db, slack):
    notifier = _notifier(tmp_path, db, slack)
    AlertSettings(notifier.config.store).update("web", off=(CREDENTIAL_FAILED,))
    event = replace(EVENT, kind=CREDENTIAL_FAILED, dedup_key="cred:web")
    assert notifier.notify(event) is False
    assert _rows(db) == [] and slack.received() == []


def test_the_database_away_is_logged_not_raised(tmp_path, slack):
    store = LocalSecretStore(tmp_path / "secrets.json")
    notifier = direct_notifier(store, "postgresql://nobody@127.0.0.1:9/none?connect_timeout=1")
    assert notifier.notify(EVENT) is False
    assert slack.received() == []


# --- the AWS shape, under moto ---------------------------------------------------------------------


@pytest.fixture
def aws(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(var, "testing")
    with mock_aws():
        sns, sqs = boto3.client("sns", region_name=REGION), boto3.client("sqs", region_name=REGION)
        topic = sns.create_topic(Name="nexus-staging-alerts")["TopicArn"]
        inbox = sqs.create_queue(QueueName="alerts-inbox")["QueueUrl"]
        inbox_arn = sqs.get_queue_attributes(QueueUrl=inbox, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        # As an email subscription would: only team web's alerts.
        sns.subscribe(
            TopicArn=topic,
            Protocol="sqs",
            Endpoint=inbox_arn,
            Attributes={"FilterPolicy": json.dumps({"team": ["web"]})},
        )
        yield sns, sqs, topic, inbox


def _inbox(sqs, inbox: str) -> list[dict]:
    got = sqs.receive_message(QueueUrl=inbox, MaxNumberOfMessages=10).get("Messages", [])
    return [json.loads(m["Body"]) for m in got]


def test_ingest_lambda_publishes_to_the_topic_and_the_notifier_lambda_posts_to_slack(
    aws, db, slack, monkeypatch
):
    _, sqs, topic, inbox = aws
    secrets = SecretsManagerStore(boto3.client("secretsmanager", region_name=REGION), "staging/")
    AlertSettings(secrets).set_slack_webhook("web", slack.url("/hook/aws"))
    records_queue = sqs.create_queue(QueueName="records.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
    monkeypatch.setenv("DATABASE_URL", db)
    monkeypatch.setenv("NEXUS_SECRETS_PREFIX", "staging/")
    monkeypatch.setenv("NEXUS_ALERTS_TOPIC_ARN", topic)
    monkeypatch.setenv("NEXUS_STAGE", "staging")
    from nexus.sqs_queue import SqsSink
    from nexus_ingest import handler

    handler._state.clear()
    try:
        over = _record(41, "s-alerts")
        over = replace(
            over,
            team="web",
            account="acct-aws",
            response_headers=[
                *over.response_headers,
                ["anthropic-ratelimit-unified-status", "allowed_warning"],
                ["anthropic-ratelimit-unified-5h-utilization", "0.96"],
                ["anthropic-ratelimit-unified-5h-reset", "1800000000"],
            ],
        )
        again = replace(over, id=over.id[:-3] + "999")
        other = replace(over, id=over.id[:-3] + "998", team="mobile")  # not in the inbox's filter
        SqsSink(sqs, records_queue, None, "unused").put(over)
        SqsSink(sqs, records_queue, None, "unused").put(again)
        SqsSink(sqs, records_queue, None, "unused").put(other)
        event, _ = _event(sqs, records_queue)
        assert handler.handle(event, CTX) == {"batchItemFailures": []}
    finally:
        if handler._state.get("conn") is not None:
            handler._state["conn"].close()
        if handler._state.get("notifier") is not None:
            handler._state["notifier"].close()
        handler._state.clear()

    rows = _rows(db)
    assert [(r["team"], r["delivered"], r["repeats"]) for r in rows] == [
        ("web", ["sns"], 0),  # two readings of one crossing in a batch: one event
        ("mobile", ["sns"], 0),
    ]
    (envelope,) = _inbox(sqs, inbox)  # team web's only, once
    assert envelope["MessageAttributes"]["team"]["Value"] == "web"
    assert envelope["MessageAttributes"]["audience"]["Value"] == "team"
    assert envelope["Subject"] == "[Nexus staging] warning: rate limit (team web)"
    carried = json.loads(envelope["Message"])  # machine subscribers get the event as JSON
    assert carried["alert_id"] == rows[0]["id"] and carried["facts"]["utilization"] == 0.96

    # The notifier function gets the same message from its own subscription.
    config = ConfigCache(secrets, refresh_s=0)
    errors = handle_records([{"Sns": {"Message": envelope["Message"]}}], config, SlackChannel())
    assert errors == []
    (post,) = slack.wait(1, "/hook/aws")
    assert "[Nexus staging] warning: rate limit (team web)" in post["json"]["text"]
    assert slack.received("/hook/aws") == [post]

    slack.status = 500
    errors = handle_records([{"Sns": {"Message": envelope["Message"]}}], config, SlackChannel())
    assert errors == ["slack: HTTP 500: internal_error"]


def test_email_subscriptions_follow_the_teams_lists_under_moto(aws):
    from nexus_cli import alert_topic

    sns, _, topic, _ = aws
    # The stack's own operators subscription (no team filter) is not the CLI's to change.
    sns.subscribe(
        TopicArn=topic,
        Protocol="email",
        Endpoint="ops@example.com",
        Attributes={"FilterPolicy": json.dumps({"audience": ["operators"]})},
    )

    def sync(teams: dict[str, tuple[str, ...]]) -> dict[str, str]:
        return alert_topic.sync_email(sns, topic, alert_topic.email_targets(teams))

    done = sync({"web": ("a@example.com", "b@example.com"), "mobile": ("a@example.com",)})
    assert set(done) == {"a@example.com", "b@example.com"} and all("subscribed" in v for v in done.values())
    assert sync({"web": ("b@example.com",), "mobile": ("a@example.com",)}) == {
        "a@example.com": "now gets the alerts of mobile"
    }
    assert sync({"web": (), "mobile": ("a@example.com",)}) == {"b@example.com": "unsubscribed"}
    assert {a: teams for a, (_, teams) in alert_topic.email_subscriptions(sns, topic).items()} == {
        "a@example.com": ["mobile"]
    }
    endpoints = [s["Endpoint"] for s in sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]]
    assert "ops@example.com" in endpoints


def test_the_oauth_refreshers_notifier_publishes_once_to_the_topic(aws, monkeypatch):
    from nexus_credentials import handler
    from nexus_credentials.settings import RefresherSettings

    _, sqs, topic, inbox = aws
    monkeypatch.setenv("NEXUS_SECRETS_PREFIX", "staging/")
    monkeypatch.setenv("NEXUS_ALERTS_TOPIC_ARN", topic)
    monkeypatch.setenv("NEXUS_STAGE", "staging")
    secrets = SecretsManagerStore(boto3.client("secretsmanager", region_name=REGION), "staging/")
    notifier = handler.notifier(RefresherSettings(), secrets)
    event = replace(EVENT, kind=CREDENTIAL_FAILED, level="critical", dedup_key="oauth:web:invalid_grant")
    assert notifier.notify(event) is True
    assert notifier.notify(event) is False  # the same failure inside its window
    (envelope,) = _inbox(sqs, inbox)
    assert envelope["Subject"] == "[Nexus staging] critical: credential failed (team web)"
    assert envelope["MessageAttributes"]["kind"]["Value"] == CREDENTIAL_FAILED
    AlertSettings(secrets).update("web", off=(CREDENTIAL_FAILED,))
    fresh = handler.notifier(RefresherSettings(), secrets)
    assert fresh.notify(replace(event, dedup_key="oauth:web:other")) is False
    assert _inbox(sqs, inbox) == []
    monkeypatch.delenv("NEXUS_ALERTS_TOPIC_ARN")
    assert type(handler.notifier(RefresherSettings(), secrets)).__name__ == "LogOnly"
