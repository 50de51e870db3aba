"""Where the proxy hands finished records: a durable queue behind one method.

Local: the spool (nexus.spool.SpoolWriter). Cloud: SQS FIFO (infra issue). Both implement
``RecordSink``; the proxy never knows which one it has.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Protocol

from nexus.record import RawRecord

log = logging.getLogger("nexus.recording")


class RecordSink(Protocol):
    @property
    def accepting(self) -> bool:
        """False while the sink can take no more records: the proxy then refuses new requests."""
        ...

    def put(self, record: RawRecord) -> None: ...

    def close(self) -> None:
        """Flush and release; called once at shutdown."""
        ...


class HoldingSink:
    """A durable sink that sometimes cannot take writes (a full disk, an I/O error): records it
    refuses wait in memory, oldest first, and a background thread writes them as soon as it takes
    writes again, so none is lost once space returns (docs/adr/0012-recording-when-the-disk-is-full.md).

    Past ``max_held_bytes`` held, ``accepting`` turns False: the proxy then refuses new requests
    (503) rather than serve requests it cannot record. Held records die with the process: a crash
    during a disk-full episode loses them (they were never on disk)."""

    def __init__(self, inner: RecordSink, max_held_bytes: int, retry_s: float = 0.5) -> None:
        self.inner = inner
        self.max_held_bytes = max_held_bytes
        self.retry_s = retry_s
        self._lock = threading.Lock()
        self._held: deque[RawRecord] = deque()
        self._held_bytes = 0
        self._wake = threading.Event()
        self._closed = False
        self._thread: threading.Thread | None = None
        self.stats = RecordingStats()
        self._since: float | None = None  # when the current episode began

    @property
    def accepting(self) -> bool:
        return self._held_bytes < self.max_held_bytes

    def put(self, record: RawRecord) -> None:
        with self._lock:
            if not self._held:
                try:
                    self.inner.put(record)
                    return
                except OSError as exc:
                    self._begin_episode(exc)
            # Never write past held records: the retry thread keeps them in order.
            was_accepting = self.accepting
            self._held.append(record)
            self._held_bytes += _size(record)
            self.stats.held = len(self._held)
            self.stats.held_bytes = self._held_bytes
            if was_accepting and not self.accepting:
                log.error(
                    "%d records (%d MB) wait to be written and writing still fails: new requests are "
                    "refused with 503 until records can be written again",
                    len(self._held),
                    self._held_bytes // (1024 * 1024),
                )

    def _begin_episode(self, exc: OSError) -> None:
        self.stats.write_errors += 1
        self.stats.last_error = f"{exc.__class__.__name__}: {exc}"
        if self._since is None:
            self._since = time.monotonic()
            log.error(
                "cannot write records (%s): holding them in memory (up to %d MB) and retrying",
                self.stats.last_error,
                self.max_held_bytes // (1024 * 1024),
            )
        if self._thread is None:
            self._thread = threading.Thread(target=self._retry_loop, name="record-retry", daemon=True)
            self._thread.start()
        self._wake.set()

    def _flush(self) -> bool:
        """Write held records in order; False when the sink still refuses."""
        with self._lock:
            while self._held:
                record = self._held[0]
                try:
                    self.inner.put(record)
                except OSError as exc:
                    self.stats.write_errors += 1
                    self.stats.last_error = f"{exc.__class__.__name__}: {exc}"
                    return False
                self._held.popleft()
                self._held_bytes -= _size(record)
                self.stats.written_late += 1
            if self._since is not None:
                log.warning(
                    "recording resumed after %.1fs: held records written (%d so far)",
                    time.monotonic() - self._since,
                    self.stats.written_late,
                )
                self._since = None
            self.stats.held = 0
            self.stats.held_bytes = 0
            return True

    def _retry_loop(self) -> None:
        while not self._closed:
            self._wake.wait(self.retry_s)
            self._wake.clear()
            if self._held:
                self._flush()

    def close(self) -> None:
        if self._held and not self._flush():
            log.error(
                "stopping with %d records that could not be written (%s); they are lost: %s",
                len(self._held),
                self.stats.last_error,
                ", ".join(r.id for r in self._held),
            )
        self._closed = True
        self._wake.set()
        self.inner.close()


@dataclass(slots=True)
class RecordingStats:
    """What ``/health`` reports about recording."""

    held: int = 0  # records waiting in memory for the sink
    held_bytes: int = 0
    written_late: int = 0  # records written after being held
    write_errors: int = 0
    last_error: str | None = None


def _size(record: RawRecord) -> int:
    return len(record.request_body) + len(record.response_body) + 1024
