"""The cloud record queue: SQS FIFO (message group = session), S3 for records too large for a message.

Implements ``nexus.sink.RecordSink`` for the proxy and the decoding side for the ingest Lambda.
A message body is JSON: ``{"v": 1, "record": <base64>}`` or, above the inline limit,
``{"v": 1, "s3": {"bucket": ..., "key": ...}}``. The deduplication id is the record id, so a
retried send is not delivered twice (and ingest is idempotent by id anyway).
"""

from __future__ import annotations

import base64
from typing import Any

import orjson

from nexus.record import RawRecord, RecordDecodeError

# SQS allows 256 KiB per message; base64 grows data by 4/3, and the JSON wrapper needs a little room.
INLINE_LIMIT = 180 * 1024
NO_SESSION_GROUP = "no-session"
RECORD_PREFIX = "records/"  # S3 keys of large records (the stack grants access to this prefix only)


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

    def put(self, record: RawRecord) -> None:
        data = record.encode()
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
