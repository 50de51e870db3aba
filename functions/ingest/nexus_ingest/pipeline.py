"""Ingest a batch of raw records, isolating poison records from good ones.

Shared by the local spool consumer and the SQS Lambda handler: both hand over a batch and get back
which items failed permanently (dead-letter them) versus which must be retried (database away).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import psycopg
from nexus.db.records import KnownHashes, write_batch
from nexus.derive import Prepared, prepare
from nexus.record import RawRecord

log = logging.getLogger("nexus.ingest")


class DatabaseUnavailable(Exception):
    """Transient: keep the records and retry later."""


@dataclass(slots=True)
class BatchResult:
    poison: dict[int, str] = field(default_factory=dict)  # batch index -> reason
    stored: list[dict[str, Any]] = field(default_factory=list)  # rows new to the database

    @property
    def written(self) -> int:
        return len(self.stored)

    def add(self, batch: list[Prepared], new: set[str]) -> None:
        self.stored += [p.row for p in batch if p.row["id"] in new]


def ingest_batch(conn: psycopg.Connection, records: list[RawRecord], known: KnownHashes) -> BatchResult:
    result = BatchResult()
    prepared: list[tuple[int, Prepared]] = []
    for i, rec in enumerate(records):
        try:
            prepared.append((i, prepare(rec)))
        except Exception as exc:  # a record we cannot understand must not block the others
            log.exception("record %s could not be prepared", rec.id)
            result.poison[i] = f"prepare failed: {exc.__class__.__name__}: {exc}"
    try:
        batch = [p for _, p in prepared]
        result.add(batch, write_batch(conn, batch, known))
        return result
    except psycopg.OperationalError as exc:
        raise DatabaseUnavailable(str(exc)) from exc
    except Exception:  # a record the database rejects, or a bug in linking: find which one
        log.warning("batch of %d failed; retrying records one by one", len(prepared), exc_info=True)
    for i, p in prepared:  # isolate the bad record(s); each write is its own transaction
        try:
            result.add([p], write_batch(conn, [p], known))
        except psycopg.OperationalError as exc:
            raise DatabaseUnavailable(str(exc)) from exc
        except Exception as exc:
            log.exception("record %s could not be stored", p.row.get("id"))
            result.poison[i] = f"could not store record: {exc.__class__.__name__}: {exc}"
    return result
