"""Ingest Lambda entry: an SQS batch in, rows in Postgres, partial-batch failures out.

Poison messages are reported as failures, so SQS retries them and, past the redrive limit, moves
them to the dead-letter queue while the rest of the batch is stored. With the database away, the
whole batch is reported failed and comes back later: nothing is lost.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import boto3
import psycopg
from nexus.db.records import KnownHashes
from nexus.record import RecordDecodeError
from nexus.sqs_queue import decode_message

from nexus_ingest.pipeline import DatabaseUnavailable, ingest_batch

log = logging.getLogger("nexus.ingest")
_state: dict[str, Any] = {}


def _s3() -> Any:
    if "s3" not in _state:
        _state["s3"] = boto3.client("s3")
    return _state["s3"]


def _connection() -> psycopg.Connection:
    conn = _state.get("conn")
    if conn is None or conn.closed:
        conn = _state["conn"] = psycopg.connect(os.environ["DATABASE_URL"], connect_timeout=5)
    return conn


def handle(event: dict[str, Any], _context: Any = None) -> dict[str, Any]:
    messages = event.get("Records") or []
    failures: list[str] = []
    records, ids = [], []
    for m in messages:
        try:
            records.append(decode_message(m["body"], _s3()))
            ids.append(m["messageId"])
        except RecordDecodeError as exc:
            log.error("poison message %s: %s", m.get("messageId"), exc)
            failures.append(m["messageId"])
    if records:
        try:
            result = ingest_batch(_connection(), records, _state.setdefault("known", KnownHashes()))
            failures += [ids[i] for i in result.poison]
        except (DatabaseUnavailable, psycopg.OperationalError):
            log.warning("database unavailable; the batch of %d goes back to the queue", len(records))
            _state.pop("conn", None)
            failures += ids
    return {"batchItemFailures": [{"itemIdentifier": i} for i in failures]}
