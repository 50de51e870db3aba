"""Where the workers are: a DNS name (in AWS, the Cloud Map service the ECS tasks register in, with
one A record per healthy task) or a fixed list of ``host:port`` (the local cloud shape, tests)."""

from __future__ import annotations

import asyncio
import socket
import time

DNS_CACHE_S = 5.0  # shorter than the records' TTL: a new task is tried within seconds


class Workers:
    def __init__(self, spec: str, port: int) -> None:
        names = [s.strip() for s in spec.split(",") if s.strip()]
        if not names:
            raise ValueError("no workers given")
        self.fixed = (
            [n if ":" in n else f"{n}:{port}" for n in names] if len(names) > 1 or ":" in names[0] else None
        )
        self.name = names[0]
        self.port = port
        self._cached: tuple[float, list[str]] = (0.0, [])

    async def addresses(self) -> list[str]:
        """``host:port`` of every registered worker (empty while none runs)."""
        if self.fixed is not None:
            return list(self.fixed)
        at, found = self._cached
        if time.monotonic() - at < DNS_CACHE_S:
            return found
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                self.name, self.port, family=socket.AF_INET, type=socket.SOCK_STREAM
            )
            found = sorted({f"{info[4][0]}:{self.port}" for info in infos})
        except socket.gaierror:
            found = []  # no healthy task registered (scaled to zero, or all starting)
        self._cached = (time.monotonic(), found)
        return found

    def forget(self, address: str) -> None:
        """A worker refused a connection: do not wait for the DNS cache to learn it is gone."""
        at, found = self._cached
        self._cached = (at, [a for a in found if a != address])
