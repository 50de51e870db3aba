"""Counters and first-delta latencies for ``GET /stats``."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


@dataclass
class Stats:
    requests: int = 0
    turns: int = 0
    errors: int = 0
    rejected: int = 0  # 429: no session free in time
    interrupted: int = 0  # clients that went away mid-turn
    warm_hits: int = 0  # continuing turns served by the session holding them
    spare_hits: int = 0  # new conversations served by a warm blank session
    cold_starts: int = 0  # new conversations that had to start a process (first-seen configuration)
    resumes: int = 0  # sessions resumed from the store
    rebuilt: int = 0  # sessions written from a history the gateway never ran
    started: int = 0
    recycled: int = 0
    worker_failures: int = 0
    retries: int = 0
    cache_hits: int = 0
    cache_misses: int = 0
    first_delta_ms: deque[float] = field(default_factory=lambda: deque(maxlen=2000))
    first_deltas: int = 0  # samples ever taken (the deque keeps the last ones)

    def first_delta(self, ms: float) -> None:
        self.first_delta_ms.append(ms)
        self.first_deltas += 1

    def first_deltas_since(self, count: int) -> list[float]:
        """The samples taken after the ``count``-th (as many as are still kept)."""
        new = min(self.first_deltas - count, len(self.first_delta_ms))
        return list(self.first_delta_ms)[-new:] if new > 0 else []

    def as_dict(self) -> dict[str, object]:
        samples = list(self.first_delta_ms)
        out: dict[str, object] = {k: v for k, v in self.__dict__.items() if k != "first_delta_ms"}
        out["first_delta_ms"] = {
            "p50": _percentile(samples, 0.5),
            "p95": _percentile(samples, 0.95),
            "samples": len(samples),
        }
        return out
