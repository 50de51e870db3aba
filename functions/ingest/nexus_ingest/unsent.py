"""Records the proxy could not queue, stored after all. The proxy keeps such a record whole in S3
under ``records/unsent/`` (``nexus.sqs_queue``); a schedule invokes ingest with ``REPLAY_EVENT``,
which stores them as it stores queued ones (idempotent by record id) and deletes each object once its
record is in the database. A damaged object is left in place and reported; the bucket's lifecycle
rule expires it."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import psycopg
from nexus.db.records import KnownHashes
from nexus.record import RawRecord, RecordDecodeError
from nexus.sqs_queue import REPLAY_EVENT, UNSENT_PREFIX

from nexus_ingest.pipeline import BatchResult, ingest_batch

log = logging.getLogger("nexus.ingest")
MAX_PER_RUN = 200  # a run stays well inside the function's timeout; the next run takes the rest


@dataclass
class Replay:
    batch: BatchResult = field(default_factory=BatchResult)
    replayed: int = 0  # objects whose record is now in the database (and were deleted)
    damaged: list[str] = field(default_factory=list)  # keys left in place
    more: bool = False  # more objects than one run takes


def is_replay(event: dict[str, Any]) -> bool:
    return event.get("nexus") == REPLAY_EVENT["nexus"]


def replay(s3: Any, bucket: str, conn: psycopg.Connection, known: KnownHashes) -> Replay:
    """One run: up to ``MAX_PER_RUN`` unsent records into the database. A database outage raises
    (``DatabaseUnavailable``) with every object still in place for the next run."""
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=UNSENT_PREFIX, MaxKeys=MAX_PER_RUN)
    out = Replay(more=bool(listed.get("IsTruncated")))
    records: list[RawRecord] = []
    keys: list[str] = []
    for obj in listed.get("Contents", []):
        key = obj["Key"]
        try:
            records.append(RawRecord.decode(s3.get_object(Bucket=bucket, Key=key)["Body"].read()))
            keys.append(key)
        except RecordDecodeError as exc:
            log.error("unsent record %s is damaged: %s", key, exc)
            out.damaged.append(key)
    if not records:
        return out
    out.batch = ingest_batch(conn, records, known)
    for i, key in enumerate(keys):
        if i in out.batch.poison:
            log.error("unsent record %s not stored: %s", key, out.batch.poison[i])
            out.damaged.append(key)
            continue
        s3.delete_object(Bucket=bucket, Key=key)
        out.replayed += 1
    return out
