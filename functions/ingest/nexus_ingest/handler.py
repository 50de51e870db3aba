"""Ingest Lambda entry: an SQS batch in, rows in Postgres, partial-batch failures out.

Poison messages are reported as failures, so SQS retries them and, past the redrive limit, moves
them to the dead-letter queue while the rest of the batch is stored. With the database away, the
whole batch is reported failed and comes back later: nothing is lost.

After a batch that stored something, budgets are evaluated (``nexus.db.budgets``): spend of the capped
teams and keys from the database, the proxy's state document in Secrets Manager when it changes, and
alert events for crossed thresholds (ADR 0017). Then alerts are checked (``nexus.alerts.sources``:
rate limits, error rates): a new alert, from either, is logged in PostgreSQL (de-duplicated there) and
published to the stage's alerts topic through the VPC's SNS endpoint; the notifier function outside
the VPC delivers it to Slack (ADR 0018). A failure there is logged and never fails the batch.

Observability: Powertools Logger (JSON, the Lambda request id as correlation id, record ids in the
log lines), Tracer, and the metrics of ``nexus.metrics`` as EMF, one document per dimension set.
"""

from __future__ import annotations

import os
import time
from typing import Any

import boto3
import psycopg
from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit
from nexus import env, metrics
from nexus.alert_events import LogOnly
from nexus.alerts import sources
from nexus.alerts.channels import TopicChannel
from nexus.alerts.config import ConfigCache
from nexus.alerts.notifier import AlertNotifier
from nexus.db.budgets import BudgetEvaluator
from nexus.db.connect import DatabaseSettings, connect
from nexus.db.records import KnownHashes
from nexus.record import RecordDecodeError
from nexus.sqs_queue import decode_message

from nexus_ingest import unsent
from nexus_ingest.pipeline import DatabaseUnavailable, ingest_batch

logger = Logger(service=metrics.SERVICE)
tracer = Tracer(service=metrics.SERVICE)
_state: dict[str, Any] = {}


def _s3() -> Any:
    if "s3" not in _state:
        _state["s3"] = boto3.client("s3")
    return _state["s3"]


def _connection() -> psycopg.Connection:
    conn = _state.get("conn")
    if conn is None or conn.closed:
        # Settings are read with the first connection: once per execution environment.
        settings = _state.setdefault("settings", DatabaseSettings())
        conn = _state["conn"] = connect(settings, application_name="nexus-ingest")
    return conn


# The alerts document changes rarely: its version is checked at most this often (a Secrets Manager call).
ALERTS_REFRESH_S = 30.0


def _notifier() -> AlertNotifier | None:
    """The relay notifier, once per execution environment; None without a topic or secrets prefix."""
    if "notifier" not in _state:
        prefix, topic = os.environ.get(env.SECRETS_PREFIX), os.environ.get(env.ALERTS_TOPIC_ARN)
        if prefix is None or not topic:
            _state["notifier"] = None
        else:
            from nexus.aws import client
            from nexus.secrets_manager import SecretsManagerStore

            settings = _state.setdefault("settings", DatabaseSettings())
            _state["notifier"] = AlertNotifier(
                ConfigCache(SecretsManagerStore(client("secretsmanager"), prefix), ALERTS_REFRESH_S),
                lambda: connect(settings, application_name="nexus-alerts", autocommit=True),
                topic=TopicChannel(client("sns"), topic, os.environ.get(env.STAGE)),
            )
    notifier: AlertNotifier | None = _state["notifier"]
    return notifier


# Budget caps and the state document change rarely: their versions are checked at most this often.
BUDGETS_REFRESH_S = 30.0


def _budgets() -> BudgetEvaluator | None:
    """The evaluator, once per execution environment; None where no secrets prefix is configured."""
    if "budgets" not in _state:
        prefix = os.environ.get(env.SECRETS_PREFIX)
        if prefix is None:
            _state["budgets"] = None
        else:
            from nexus.aws import client
            from nexus.secrets_manager import SecretsManagerStore

            store = SecretsManagerStore(client("secretsmanager"), prefix)
            notifier = _notifier() or LogOnly()
            _state["budgets"] = BudgetEvaluator(store, notifier, refresh_s=BUDGETS_REFRESH_S)
    evaluator: BudgetEvaluator | None = _state["budgets"]
    return evaluator


def evaluate_budgets() -> None:
    evaluator = _budgets()
    if evaluator is None:
        return
    try:
        evaluator.run(_connection())
    except psycopg.OperationalError as exc:
        _state.pop("conn", None)
        logger.warning("budgets not evaluated: database unavailable", extra={"error": str(exc)})
    except Exception:
        logger.exception("budgets not evaluated")


def emit_metrics(rows: list[dict[str, Any]], poison: int) -> None:
    """One EMF document per dimension set (Powertools prints it; CloudWatch turns it into metrics)."""
    for metric_set in metrics.metric_sets(rows, poison, now=time.time()):
        out = EphemeralMetrics(namespace=metrics.NAMESPACE, service=metrics.SERVICE)
        for name, value in metric_set.dimensions.items():
            out.add_dimension(name, value)
        for name, (unit, values) in metric_set.values.items():
            for v in values:
                out.add_metric(name, MetricUnit(unit), v)
        for key, value in metric_set.metadata.items():
            out.add_metadata(key, value)
        out.flush_metrics()


def after_stored(stored: list[dict[str, Any]]) -> None:
    """What follows newly stored rows: budgets, then alerts (failures are logged, never raised)."""
    if stored:
        evaluate_budgets()
        notifier = _notifier()
        if notifier is not None:
            sources.after_batch(notifier, stored)


def replay_unsent() -> dict[str, Any]:
    """The schedule's call: records the proxy could not queue, from S3 into the database."""
    bucket = os.environ[env.RECORD_BUCKET]
    try:
        run = unsent.replay(_s3(), bucket, _connection(), _state.setdefault("known", KnownHashes()))
    except (DatabaseUnavailable, psycopg.OperationalError) as exc:
        logger.warning(
            "database unavailable; unsent records wait for the next run", extra={"error": str(exc)}
        )
        _state.pop("conn", None)
        return {"replayed": 0, "error": "database unavailable"}
    after_stored(run.batch.stored)
    emit_metrics(run.batch.stored, poison=len(run.damaged))
    if run.replayed or run.damaged:
        logger.info(
            "unsent records replayed",
            extra={"replayed": run.replayed, "stored": run.batch.written, "damaged": run.damaged},
        )
    return {"replayed": run.replayed, "stored": run.batch.written, "damaged": run.damaged, "more": run.more}


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler(capture_response=False)
def handle(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    if unsent.is_replay(event):
        return replay_unsent()
    messages = event.get("Records") or []
    failures: list[str] = []
    records, ids = [], []
    for m in messages:
        try:
            records.append(decode_message(m["body"], _s3()))
            ids.append(m["messageId"])
        except RecordDecodeError as exc:
            logger.error("poison message", extra={"message_id": m.get("messageId"), "reason": str(exc)})
            failures.append(m["messageId"])
    stored: list[dict[str, Any]] = []
    if records:
        try:
            result = ingest_batch(_connection(), records, _state.setdefault("known", KnownHashes()))
        except (DatabaseUnavailable, psycopg.OperationalError) as exc:
            logger.warning(
                "database unavailable; the batch goes back to the queue",
                extra={"records": len(records), "error": str(exc)},
            )
            _state.pop("conn", None)
            return {"batchItemFailures": [{"itemIdentifier": i} for i in failures + ids]}
        for i, reason in result.poison.items():
            logger.error("record not stored", extra={"record_id": records[i].id, "reason": reason})
            failures.append(ids[i])
        stored = result.stored
        after_stored(stored)
        logger.info(
            "batch stored",
            extra={
                "stored": result.written,
                "redelivered": len(records) - result.written - len(result.poison),
            },
        )
    emit_metrics(stored, poison=len(failures))  # every failure left is a poison record
    return {"batchItemFailures": [{"itemIdentifier": i} for i in failures]}
