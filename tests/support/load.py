"""Steady Claude Code-like load through the proxy, and the count of what became of it.

``Load`` runs ``concurrency`` clients in a background thread, each sending streamed Messages
requests back to back (keep-alive; a refused connection is retried after a short pause), every
request tagged with one session id so its records can be counted. ``Tally`` puts side by side what
the clients saw, what the upstream saw and what was recorded: a request the upstream answered and
nobody recorded is a lost record. Used by the fault tests and by ``bench/faults.py`` and
``bench/soak.py``.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from tests.integration.http import CLAUDE_HEADERS

SESSION_HEADER = "x-claude-code-session-id"


def message_body(text: str, model: str = "claude-sonnet-4-5-20250929") -> bytes:
    return json.dumps(
        {
            "model": model,
            "max_tokens": 64,
            "stream": True,
            "system": [{"type": "text", "text": "You are a careful assistant."}],
            "messages": [{"role": "user", "content": text}],
        }
    ).encode()


@dataclass
class Seen:
    """What the clients got."""

    sent: int = 0
    answered: int = 0  # 200 and the stream's end (message_stop)
    cut: int = 0  # 200 whose stream broke off
    refused: Counter[int] = field(default_factory=Counter)  # other statuses
    failed: Counter[str] = field(default_factory=Counter)  # no answer: the error's kind

    def line(self) -> str:
        refused = ", ".join(f"{n} x {s}" for s, n in sorted(self.refused.items())) or "none"
        failed = ", ".join(f"{n} x {k}" for k, n in self.failed.most_common()) or "none"
        return (
            f"sent {self.sent}, answered {self.answered}, cut {self.cut}, "
            f"refused: {refused}; no answer: {failed}"
        )


class Load:
    """``concurrency`` clients sending to ``url`` until ``stop()``; ``pause_s`` between a client's
    requests. ``extra_headers`` go with every request (a Nexus key)."""

    def __init__(
        self,
        url: str,
        session: str,
        concurrency: int = 16,
        pause_s: float = 0.0,
        extra_headers: dict[str, str] | None = None,
        timeout_s: float = 60.0,
        session_every: int | None = None,
    ) -> None:
        """``session_every``: each client starts a new session (``<session>-<client>-<n>``) every
        that many requests, as Claude Code sessions come and go; None: one session for all."""
        self.url = url.rstrip("/") + "/v1/messages?beta=true"
        self.session = session
        self.session_every = session_every
        self.concurrency = concurrency
        self.pause_s = pause_s
        self.headers = {**CLAUDE_HEADERS, SESSION_HEADER: session, **(extra_headers or {})}
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.seen = Seen()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.latencies_s: list[float] = []

    def __enter__(self) -> Load:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> Load:
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), name="load", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> Seen:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(120)
            assert not self._thread.is_alive(), "the load did not stop"
        return self.seen

    def wait_for(self, predicate: Callable[[Seen], bool], timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not predicate(self.seen):
            assert time.monotonic() < deadline, f"the load did not get there: {self.seen.line()}"
            time.sleep(0.02)

    async def _run(self) -> None:
        connector = aiohttp.TCPConnector(limit=self.concurrency, force_close=False)
        async with aiohttp.ClientSession(connector=connector, timeout=self.timeout) as session:
            await asyncio.gather(*(self._client(session, i) for i in range(self.concurrency)))

    async def _client(self, session: aiohttp.ClientSession, n: int) -> None:
        for i in range(1_000_000_000):
            if self._stop.is_set():
                return
            body = message_body(f"client {n} request {i} of {self.session}")
            headers = self.headers
            if self.session_every:
                headers = {**headers, SESSION_HEADER: f"{self.session}-{n}-{i // self.session_every}"}
            started = time.monotonic()
            outcome = await self._one(session, body, headers)
            with self._lock:
                self.seen.sent += 1
                if outcome == "answered":
                    self.seen.answered += 1
                    self.latencies_s.append(time.monotonic() - started)
                elif outcome == "cut":
                    self.seen.cut += 1
                elif isinstance(outcome, int):
                    self.seen.refused[outcome] += 1
                else:
                    self.seen.failed[outcome] += 1
            if outcome not in ("answered", "cut") and not isinstance(outcome, int):
                await asyncio.sleep(0.05)  # the proxy is away: do not spin
            elif self.pause_s:
                await asyncio.sleep(self.pause_s)

    async def _one(self, session: aiohttp.ClientSession, body: bytes, headers: dict[str, str]) -> str | int:
        try:
            async with session.post(self.url, data=body, headers=headers) as resp:
                data = await resp.read()
                if resp.status != 200:
                    return resp.status
                return "answered" if b"message_stop" in data else "cut"
        except aiohttp.ClientPayloadError:
            return "cut"
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            return type(exc).__name__


@dataclass
class Tally:
    """One fault's count: what the clients saw, what the upstream saw, what was recorded."""

    name: str
    seen: Seen
    upstream: int  # requests of the session the upstream received
    recorded: int  # distinct records of the session with the upstream's answer (whole or cut)
    other: int = 0  # records of requests the upstream never answered (refusals, vanished clients)
    duplicates: int = 0  # records stored more than once
    note: str = ""

    @property
    def lost(self) -> int:
        """Requests the upstream answered that have no record."""
        return max(0, self.upstream - self.recorded)

    @property
    def unexplained(self) -> int:
        """Records of upstream answers beyond what the upstream saw: the count itself is wrong."""
        return max(0, self.recorded - self.upstream)

    def line(self) -> str:
        return (
            f"{self.name}: {self.seen.line()}; upstream saw {self.upstream}, recorded {self.recorded} "
            f"(+{self.other} refusals), lost {self.lost}, duplicates {self.duplicates}"
            + (f"; {self.note}" if self.note else "")
        )


def upstream_count(seen: list[Any], session: str) -> int:
    """How many requests of ``session`` the fake upstream received (its ``seen`` list)."""
    return sum(1 for s in list(seen) if s.header(SESSION_HEADER) == session)


def recorded_in_database(conninfo: str, session: str, prefix: bool = False) -> tuple[int, int, int]:
    """(records with the upstream's answer, other records, duplicate rows) of ``session`` (of every
    session whose id starts with it, with ``prefix``)."""
    import psycopg

    where = "session_id LIKE %s" if prefix else "session_id = %s"
    with psycopg.connect(conninfo, connect_timeout=5) as conn:
        row = conn.execute(
            "SELECT count(DISTINCT id) FILTER (WHERE response_headers <> '[]'::jsonb),"
            " count(DISTINCT id) FILTER (WHERE response_headers = '[]'::jsonb),"
            f" count(*) - count(DISTINCT id) FROM requests WHERE {where}",
            (session + "%" if prefix else session,),
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1]), int(row[2])


def wait_recorded(
    conninfo: str, session: str, upstream: int, timeout: float = 60, prefix: bool = False
) -> tuple[int, int, int]:
    """``recorded_in_database`` once the records of every upstream answer are in (or at ``timeout``:
    what is there then). The database may still be coming back: connection errors are waited out."""
    import psycopg

    deadline = time.monotonic() + timeout
    got = (0, 0, 0)
    while time.monotonic() < deadline:
        try:
            got = recorded_in_database(conninfo, session, prefix)
        except psycopg.OperationalError:
            pass
        else:
            if got[0] >= upstream:
                time.sleep(0.3)  # and nothing more arrives (duplicates)
                return recorded_in_database(conninfo, session, prefix)
        time.sleep(0.2)
    return got
