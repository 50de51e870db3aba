"""What a worker task tells CloudWatch, once a minute: its busy and warm sessions (the service scales
on the busy average), the turns it refused (429), its failures, and its first-delta latencies.

Sent with PutMetricData: a container's stdout is not read for embedded metrics the way Lambda's is.
One call per interval per task (about $0.45 a task-month).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any

from nexus import metrics as m

from nexus_gateway.engine.pool import Pool

log = logging.getLogger("nexus.gateway.metrics")


class Publisher:
    def __init__(self, pool: Pool, cloudwatch: Any, interval_s: float = m.GATEWAY_PUBLISH_S) -> None:
        self.pool = pool
        self.cloudwatch = cloudwatch
        self.interval_s = interval_s
        stats = pool.stats
        self._seen = (stats.rejected, stats.errors, stats.first_deltas)
        self._task: asyncio.Task[None] | None = None

    def data(self, started: bool = False) -> list[dict[str, Any]]:
        """The metric data of one interval (and resets the interval's counters)."""
        stats, census = self.pool.stats, self.pool.census()
        rejected, errors, deltas = self._seen
        self._seen = (stats.rejected, stats.errors, stats.first_deltas)
        now = datetime.now(UTC)
        dims = [{"Name": "service", "Value": m.GATEWAY_SERVICE}]

        def point(name: str, value: float, unit: str) -> dict[str, Any]:
            return {"MetricName": name, "Dimensions": dims, "Timestamp": now, "Value": value, "Unit": unit}

        busy = census["busy"] + census["suspended"]  # a turn waiting on client tools holds its session
        out = [
            point(m.GATEWAY_BUSY_SESSIONS, busy, "Count"),
            point(m.GATEWAY_WARM_SESSIONS, census["workers"] - census["starting"], "Count"),
            point(m.GATEWAY_REJECTED, stats.rejected - rejected, "Count"),
            point(m.GATEWAY_ERRORS, stats.errors - errors, "Count"),
        ]
        if started:
            out.append(point(m.GATEWAY_WORKER_STARTS, 1, "Count"))
        samples = stats.first_deltas_since(deltas)
        if samples:
            out.append(
                {
                    "MetricName": m.GATEWAY_FIRST_DELTA,
                    "Dimensions": dims,
                    "Timestamp": now,
                    "Values": samples[-150:],  # PutMetricData takes at most 150 values per datum
                    "Unit": "Milliseconds",
                }
            )
        return out

    def publish(self, started: bool = False) -> None:
        self.cloudwatch.put_metric_data(Namespace=m.NAMESPACE, MetricData=self.data(started))

    async def _run(self) -> None:
        started = True
        while True:
            try:
                await asyncio.to_thread(self.publish, started)
                started = False
            except Exception as exc:  # CloudWatch away: the next interval tries again
                log.warning("publishing metrics failed: %s", exc)
            await asyncio.sleep(self.interval_s)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        try:
            await asyncio.to_thread(self.publish)  # the last interval, so the final counts are seen
        except Exception as exc:
            log.warning("publishing metrics failed: %s", exc)
