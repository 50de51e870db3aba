"""Shared fixtures: the embedded PostgreSQL, the fake Anthropic upstream, `nexus dev` stacks."""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Iterator

import pytest

from tests.support import pg, secret_scan
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


@pytest.fixture(scope="session")
def shared_stack(pg_server, fake_upstream, tmp_path_factory) -> Iterator[Stack]:
    """One `nexus dev` for every module marked ``shared_stack``."""
    with running_stack(pg_server, fake_upstream, tmp_path_factory.mktemp("nexus-shared")) as s:
        yield s


@pytest.fixture(scope="module")
def stack(request, pg_server, fake_upstream, tmp_path_factory) -> Iterator[Stack]:
    """A running `nexus dev` with keys optional (localhost). A module of its own by default; a
    module marked ``pytest.mark.shared_stack`` (tests that only send requests and read what was
    recorded under ids of their own, never changing keys, settings, credentials, sessions or the
    sign-in throttle) shares the session's: each start costs seconds."""
    if request.node.get_closest_marker("shared_stack"):
        yield request.getfixturevalue("shared_stack")
        return
    with running_stack(pg_server, fake_upstream, tmp_path_factory.mktemp("nexus")) as s:
        yield s


def strict_skips() -> bool:
    return os.environ.get("NEXUS_NO_SKIP") == "1"


# --- the secrets scan (tests/support/secret_scan.py, tests/test_secrets_scan.py) -------------------


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Every test's captured output is kept for the scan (what could be a credential in it)."""
    for title, text in report.sections:
        secret_scan.watch_output(f"{report.nodeid}: {title}", text)


@pytest.hookimpl(trylast=True)  # after any other reordering
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The scan runs after every other test, whatever order the paths were given in."""
    last = [item for item in items if item.get_closest_marker("after_everything")]
    if last:
        items[:] = [item for item in items if not item.get_closest_marker("after_everything")] + last


def pytest_sessionfinish(session: pytest.Session) -> None:
    for path in secret_scan.directories_to_remove():
        shutil.rmtree(path, ignore_errors=True)


def pytest_unconfigure(config: pytest.Config) -> None:
    # Some tests run a Lambda entry in-process, which points the root logger at that test's captured
    # stderr; the embedded PostgreSQL's exit hook logs a line after pytest closed it. Not a failure:
    # keep the tracebacks logging would print for it out of the suite's output.
    logging.raiseExceptions = False
