"""Shared fixtures: the embedded PostgreSQL, the fake Anthropic upstream, `nexus dev` stacks."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.support import pg
from tests.support.fake_upstream import FakeAnthropic
from tests.support.stack import Stack, running_stack

# jsii's runtime (the CDK tests) prints a banner about the Node version on every start: the suite's
# output is for results. jsii reads a list of Node major versions to be quiet about.
for _warning in ("END_OF_LIFE", "DEPRECATED", "UNTESTED"):
    os.environ.setdefault(f"JSII_SILENCE_WARNING_{_warning}_NODE_VERSION", "18,19,20,21,22,23,24,25,26")


@pytest.fixture(scope="session")
def pg_server():
    with pg.temporary_server() as server:
        yield server


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
    with running_stack(pg_server, fake_upstream, tmp_path_factory.mktemp("nexus")) as s:
        yield s


def strict_skips() -> bool:
    return os.environ.get("NEXUS_NO_SKIP") == "1"
