"""Local durable queue: one file per record in a spool directory.

Writers (the proxy) write ``tmp/<name>`` and rename it into ``ready/``: a rename is atomic, so a
reader never sees half a record and a crash leaves at most a stray temp file. Readers (ingest) take
files in name order (names start with the arrival time) and delete them only after the database
committed them. Records survive process crashes (the page cache outlives the process); set
``fsync=True`` to survive power loss as well, at ~1 ms per record.
See docs/adr/0003-local-spool.md.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from nexus.record import RawRecord, RecordDecodeError


class SpoolWriter:
    def __init__(self, root: Path, fsync: bool = False) -> None:
        self.ready = root / "ready"
        self.tmp = root / "tmp"
        self.ready.mkdir(parents=True, exist_ok=True)
        self.tmp.mkdir(parents=True, exist_ok=True)
        self.fsync = fsync
        self._ready = str(self.ready)
        self._tmp = str(self.tmp)

    def put(self, record: RawRecord) -> None:
        data = record.encode()
        name = f"{int(record.received_at * 1_000_000):016d}-{record.id}.rec"
        tmp_path = f"{self._tmp}/{name}"
        fd = os.open(tmp_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            if self.fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp_path, f"{self._ready}/{name}")


@dataclass(slots=True)
class SpoolItem:
    path: Path
    record: RawRecord | None
    error: str | None = None


class SpoolReader:
    def __init__(self, root: Path) -> None:
        self.ready = root / "ready"
        self.dead = root / "dead"
        self.tmp = root / "tmp"
        for d in (self.ready, self.dead, self.tmp):
            d.mkdir(parents=True, exist_ok=True)

    def pending(self) -> int:
        return sum(1 for _ in os.scandir(self.ready))

    def take(self, limit: int) -> list[SpoolItem]:
        names = sorted(e.name for e in os.scandir(self.ready) if e.name.endswith(".rec"))[:limit]
        return [self._read(self.ready / n) for n in names]

    def _read(self, path: Path) -> SpoolItem:
        try:
            return SpoolItem(path, RawRecord.decode(path.read_bytes()))
        except (RecordDecodeError, OSError) as exc:
            return SpoolItem(path, None, str(exc))

    def ack(self, items: list[SpoolItem]) -> None:
        for item in items:
            item.path.unlink(missing_ok=True)

    def dead_letter(self, item: SpoolItem, reason: str) -> None:
        target = self.dead / item.path.name
        item.path.rename(target)
        target.with_suffix(".reason").write_text(reason)

    def sweep_tmp(self, older_than_s: float = 3600) -> int:
        """Remove temp files a crashed writer left behind (never a finished record)."""
        cutoff = time.time() - older_than_s
        removed = 0
        for entry in os.scandir(self.tmp):
            if entry.stat().st_mtime < cutoff:
                os.unlink(entry.path)
                removed += 1
        return removed
