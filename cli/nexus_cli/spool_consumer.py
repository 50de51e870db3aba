"""Local ingest: drain the spool into Postgres, surviving database outages.

Records leave the spool only after the transaction that wrote them committed. While the database is
away the consumer retries with backoff; the spool keeps growing on disk meanwhile and nothing is lost.

With a budget evaluator, budgets are evaluated after every batch that stored something, and every
``evaluate_every_s`` while idle (a new month, a changed cap), as the ingest Lambda does after its
batches (ADR 0017). With a notifier, the batch is also checked for alerts (rate limits, error rates:
``nexus.alerts.sources``, ADR 0018); a failure there never holds ingest up.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from pathlib import Path

import psycopg
from nexus.alerts import sources
from nexus.alerts.notifier import AlertNotifier
from nexus.db.budgets import BudgetEvaluator
from nexus.db.records import KnownHashes
from nexus.spool import SpoolReader
from nexus_ingest.pipeline import DatabaseUnavailable, ingest_batch

log = logging.getLogger("nexus.ingest")


class SpoolConsumer:
    def __init__(
        self,
        spool_dir: Path,
        conninfo: str,
        batch_size: int = 100,
        idle_s: float = 0.05,
        budgets: BudgetEvaluator | None = None,
        evaluate_every_s: float = 30.0,
        notifier: AlertNotifier | None = None,
    ) -> None:
        self.reader = SpoolReader(spool_dir)
        self.notifier = notifier
        self.budgets = budgets
        self.evaluate_every_s = evaluate_every_s
        self._evaluated = -float("inf")
        self.conninfo = conninfo
        self.batch_size = batch_size
        self.idle_s = idle_s
        self.known = KnownHashes()
        self.conn: psycopg.Connection | None = None
        self.written = 0
        self.dead = 0

    def _connection(self) -> psycopg.Connection:
        if self.conn is None or self.conn.closed:
            self.conn = psycopg.connect(self.conninfo, connect_timeout=5)
        return self.conn

    def _drop_connection(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(psycopg.Error):
                self.conn.close()
        self.conn = None

    def drain_once(self) -> int:
        """Process one batch. Returns how many spool items were consumed (0: spool empty).
        Raises DatabaseUnavailable (after dropping the connection) when Postgres is away; then
        nothing is acknowledged and the same records come back on the next call."""
        items = self.reader.take(self.batch_size)
        if not items:
            return 0
        good = [it for it in items if it.record is not None]
        try:
            records = [it.record for it in good if it.record is not None]
            result = ingest_batch(self._connection(), records, self.known)
        except (DatabaseUnavailable, psycopg.OperationalError) as exc:
            self._drop_connection()
            raise DatabaseUnavailable(str(exc)) from exc
        for item in items:
            if item.record is None:
                self.reader.dead_letter(item, item.error or "undecodable")
                self.dead += 1
        for i, reason in result.poison.items():
            self.reader.dead_letter(good[i], reason)
            self.dead += 1
        self.reader.ack(items)
        self.written += result.written
        if result.written:
            self.evaluate()
        if self.notifier is not None and result.stored:
            sources.after_batch(self.notifier, result.stored)
        return len(items)

    def evaluate(self) -> None:
        """Evaluate budgets now. A failure is logged, never raised: ingest goes on, and the next
        batch or tick evaluates again."""
        if self.budgets is None:
            return
        self._evaluated = time.monotonic()
        try:
            self.budgets.run(self._connection())
        except psycopg.OperationalError as exc:
            self._drop_connection()
            log.warning("budgets not evaluated (database unavailable: %s)", exc)
        except Exception:
            log.exception("budgets not evaluated")

    def run(self, stop: threading.Event) -> None:
        try:
            self._loop(stop)
        finally:
            self._drop_connection()
            if self.notifier is not None:
                self.notifier.close()

    def _loop(self, stop: threading.Event) -> None:
        backoff = 0.5
        outage_logged = False
        while True:
            try:
                consumed = self.drain_once()
                if outage_logged:
                    log.warning("database is back; ingesting %d queued records", self.reader.pending())
                    outage_logged = False
                backoff = 0.5
                if consumed:
                    continue
                if stop.is_set():
                    return  # stop only once the spool is drained or the database is away
                if time.monotonic() - self._evaluated >= self.evaluate_every_s:
                    self.evaluate()
                stop.wait(self.idle_s)
            except DatabaseUnavailable as exc:
                if not outage_logged:
                    log.warning("database unavailable (%s); records stay queued in the spool", exc)
                    outage_logged = True
                if stop.is_set():
                    return
                stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)
            except Exception:  # never let one surprise end ingestion: records stay in the spool
                log.exception("ingest round failed; retrying")
                if stop.is_set():
                    return
                stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)
