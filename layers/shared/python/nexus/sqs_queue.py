"""The cloud record queue: SQS FIFO (message group = session), S3 for records too large for a message.

Implements ``nexus.sink.RecordSink`` for the proxy and the decoding side for the ingest Lambda.
A message body is JSON: ``{"v": 1, "record": <base64>}`` or, above the inline limit,
``{"v": 1, "s3": {"bucket": ..., "key": ...}}``. The deduplication id is the record id, so a
retried send is not delivered twice (and ingest is idempotent by id anyway).

When a send still fails after the client's retries (SQS throttling, an outage, a broken
permission), the record is not dropped: it goes whole to S3 under ``records/unsent/``, where ingest's
scheduled replay stores it; and if S3 refuses too, into the log line that says so, base64-encoded
(``unsent_record=...``), from which ``nexus records replay-log`` puts it back under ``records/unsent/``.
A CloudWatch log event holds 256 KB: a record larger than about 190 KB does not survive that last
resort (the stack alarms on every such line).
"""

from __future__ import annotations

import base64
import logging
from dataclasses import dataclass
from typing import Any

import orjson

from nexus.record import RawRecord, RecordDecodeError

log = logging.getLogger("nexus.recording")

# SQS allows 256 KiB per message; base64 grows data by 4/3, and the JSON wrapper needs a little room.
INLINE_LIMIT = 180 * 1024
NO_SESSION_GROUP = "no-session"
RECORD_PREFIX = "records/"  # S3 keys of large records (the stack grants access to this prefix only)
UNSENT_PREFIX = RECORD_PREFIX + "unsent/"  # records whose message could not be sent, for the replay
UNSENT_LOG_FIELD = "unsent_record"  # ``unsent_record=<base64>`` ends a line with a record nobody took
UNSENT_MESSAGE = "record not sent"  # the log line's message (the stack's metric filter counts it)
SPILLED_MESSAGE = "kept in S3 for the replay"  # ... and the line of a record kept under records/unsent/
REPLAY_EVENT = {"nexus": "replay-unsent"}  # what ingest's schedule sends it to store unsent records


@dataclass(slots=True)
class SendStats:
    sent: int = 0
    spilled_to_s3: int = 0  # sends that failed; the record went to records/unsent/
    logged: int = 0  # S3 failed too; the record is in the log line


class SqsSink:
    accepting = True

    def __init__(
        self, sqs: Any, queue_url: str, s3: Any, bucket: str, inline_limit: int = INLINE_LIMIT
    ) -> None:
        self.sqs = sqs
        self.queue_url = queue_url
        self.s3 = s3
        self.bucket = bucket
        self.inline_limit = inline_limit
        self.sends = SendStats()  # not `stats`: the proxy's /health reads a holding sink's stats there

    def put(self, record: RawRecord) -> None:
        data = record.encode()
        try:
            self._send(record, data)
            self.sends.sent += 1
        except Exception as exc:  # the clients retried already: keep the record another way
            self._spill(record, data, exc)

    def _spill(self, record: RawRecord, data: bytes, send_error: Exception) -> None:
        try:
            self.s3.put_object(Bucket=self.bucket, Key=UNSENT_PREFIX + record.id, Body=data)
            self.sends.spilled_to_s3 += 1
            log.warning(
                "record %s not queued (%s); %s",
                record.id,
                _reason(send_error),
                SPILLED_MESSAGE,
                extra={"record_id": record.id},
            )
        except Exception as exc:
            self.sends.logged += 1
            # In the message itself, so any log format keeps it (base64 needs no JSON escaping).
            log.error(
                "%s: %s (queue: %s; S3: %s) %s=%s",
                UNSENT_MESSAGE,
                record.id,
                _reason(send_error),
                _reason(exc),
                UNSENT_LOG_FIELD,
                base64.b64encode(data).decode(),
                extra={"record_id": record.id},
            )

    def _send(self, record: RawRecord, data: bytes) -> None:
        if len(data) <= self.inline_limit:
            body = orjson.dumps({"v": 1, "record": base64.b64encode(data).decode()})
        else:
            key = f"{RECORD_PREFIX}{record.id}"
            self.s3.put_object(Bucket=self.bucket, Key=key, Body=data)
            body = orjson.dumps({"v": 1, "s3": {"bucket": self.bucket, "key": key}})
        self.sqs.send_message(
            QueueUrl=self.queue_url,
            MessageBody=body.decode(),
            MessageGroupId=(record.header("x-claude-code-session-id") or NO_SESSION_GROUP)[:128],
            MessageDeduplicationId=record.id,
        )

    def close(self) -> None:
        """Nothing buffered: every put is sent at once."""


def _reason(exc: Exception) -> str:
    return f"{exc.__class__.__name__}: {exc}"[:300]


def records_in_log(lines: Any) -> list[RawRecord]:
    """The records carried by ``record not sent`` log lines (any format: CloudWatch exports, Logs
    Insights results, JSON lines), in order, each once. Raises RecordDecodeError for a damaged one."""
    import re

    pattern = re.compile(UNSENT_LOG_FIELD + r"=([A-Za-z0-9+/]+=*)")
    found: dict[str, RawRecord] = {}
    for line in lines:
        for encoded in pattern.findall(line):
            try:
                record = RawRecord.decode(base64.b64decode(encoded, validate=True))
            except ValueError as exc:
                if isinstance(exc, RecordDecodeError):
                    raise
                raise RecordDecodeError(f"a damaged record in the log: {exc}") from exc
            found.setdefault(record.id, record)
    return list(found.values())


def decode_message(body: str, s3: Any) -> RawRecord:
    """The record carried by one SQS message body. Raises RecordDecodeError for poison messages."""
    try:
        doc = orjson.loads(body)
        if doc.get("v") != 1:
            raise RecordDecodeError(f"unknown message version {doc.get('v')!r}")
        if "record" in doc:
            return RawRecord.decode(base64.b64decode(doc["record"], validate=True))
        pointer = doc["s3"]
        obj = s3.get_object(Bucket=pointer["bucket"], Key=pointer["key"])
        return RawRecord.decode(obj["Body"].read())
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
        if isinstance(exc, RecordDecodeError):
            raise
        raise RecordDecodeError(f"bad queue message: {exc.__class__.__name__}: {exc}") from exc
