"""Shared fixtures: the embedded PostgreSQL, the fake Anthropic upstream, `nexus dev` stacks."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support import pg
from tests.support.fake_upstream import FakeAnthropic
from tests.support.stack import Stack


@pytest.fixture(scope="session")
def pg_server():
    # Not under pytest's tmp dir: that is private to root (0700), and the server runs as its own user.
    root = Path(tempfile.mkdtemp(prefix="nexus-test-pg-"))
    root.chmod(0o755)
    server = pg.start_server(root / "data")
    yield server
    server.cleanup()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def database_url(pg_server) -> str:
    """A fresh, empty database (migrations not applied)."""
    return pg.create_database(pg_server.get_uri())


@pytest.fixture(scope="session")
def fake_upstream() -> Iterator[FakeAnthropic]:
    fake = FakeAnthropic().start()
    yield fake
    fake.stop()


@pytest.fixture
def upstream(fake_upstream: FakeAnthropic) -> FakeAnthropic:
    fake_upstream.reset()
    return fake_upstream


@pytest.fixture(scope="module")
def stack(pg_server, fake_upstream, tmp_path_factory) -> Iterator[Stack]:
    """A running `nexus dev` with keys optional (localhost), shared by a test module."""
    s = Stack(tmp_path_factory.mktemp("nexus"), fake_upstream.url, pg.create_database(pg_server.get_uri()))
    s.start()
    yield s
    s.stop()


def strict_skips() -> bool:
    return os.environ.get("NEXUS_NO_SKIP") == "1"
