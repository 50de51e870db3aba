"""The dashboard's connection pool, and what a database outage looks like to a caller.

The pool fails fast and heals itself: a request waits at most ``POOL_TIMEOUT_S`` for a connection
(then 503, not a 30 s hang), and only ``DOWN_WAIT_S`` while the last attempt failed; every
connection is checked as it is handed out, so the dead ones a restarted server leaves behind are
replaced rather than used; and a failed reconnection is given up after ``RECONNECT_S``, so the next
request tries again at once instead of waiting out an exponential backoff that can reach minutes.
No dashboard restart is needed after an outage.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

POOL_TIMEOUT_S = 3.0
DOWN_WAIT_S = 0.5  # enough for a fresh connection to a database that is back
RECONNECT_S = 2.0
CONNECT_TIMEOUT_S = 3  # an unreachable host (not a refused port) fails within this
RETRY_AFTER_S = 5
UNAVAILABLE = (psycopg.OperationalError, PoolTimeout)
"""Exceptions that mean "the database is unavailable" (connection refused or lost, server shutting
down, statement cancelled, no connection in time): 503, never 500."""

log = logging.getLogger("nexus.dashboard")


class Pool:
    """A connection pool that knows whether the database answered last time (per process: it only
    shortens the wait while down, every request still tries)."""

    def __init__(
        self,
        conninfo: str | Callable[[], str],
        max_size: int,
        connection_class: type[psycopg.Connection[Any]] = psycopg.Connection,
    ) -> None:
        """``conninfo`` may be a function (``nexus.db.connect.SecretConninfo``: the RDS secret, read for
        each new connection), with its ``connection_class`` (which survives a password rotation)."""
        self.pool: ConnectionPool = ConnectionPool(
            conninfo,
            connection_class=connection_class,
            min_size=1,
            max_size=max_size,
            open=True,  # without waiting: a dashboard started while the database is down answers 503
            timeout=POOL_TIMEOUT_S,
            check=ConnectionPool.check_connection,
            reconnect_timeout=RECONNECT_S,
            kwargs={"connect_timeout": CONNECT_TIMEOUT_S},
        )
        self.down = False

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection]:
        try:
            with self.pool.connection(DOWN_WAIT_S if self.down else POOL_TIMEOUT_S) as conn:
                yield conn
        except UNAVAILABLE:
            self.down = True
            raise
        self.down = False

    def close(self) -> None:
        self.pool.close()


def describe(exc: Exception) -> str:
    """A short reason for a caller, which may be anyone (``/health`` is open): no host names or
    server messages; those go to the log."""
    log.warning("database unavailable: %s: %s", type(exc).__name__, str(exc).strip())
    if isinstance(exc, PoolTimeout):
        return "no connection could be had in time"
    sqlstate = getattr(exc, "sqlstate", None)
    return f"connection failed or lost ({type(exc).__name__}{f', {sqlstate}' if sqlstate else ''})"
