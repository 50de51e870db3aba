"""Where the proxy hands finished records: a durable queue behind one method.

Local: the spool (nexus.spool.SpoolWriter). Cloud: SQS FIFO (infra issue). Both implement
``RecordSink``; the proxy never knows which one it has.
"""

from __future__ import annotations

from typing import Protocol

from nexus.record import RawRecord


class RecordSink(Protocol):
    def put(self, record: RawRecord) -> None: ...

    def close(self) -> None:
        """Flush and release; called once at shutdown."""
        ...
