"""Faults while 16 clients keep sending: the upstream cutting streams, the spool's disk filling up,
PostgreSQL and ingest killed with SIGKILL, SQS throttling sends on the AWS path. For each, the
records lost are counted (a request the upstream answered with no record; on the AWS path, with no
message in the queue and no object kept in S3 for ingest's replay) and must be zero, and no record
is stored twice.

A few seconds per fault here; ``bench/faults.py`` runs the same scenarios for as long as asked.
One `nexus dev` with its embedded PostgreSQL (so that killing it is the stack's own concern) and its
spool on a small tmpfs, shared by the faults in order; the ingest fault restarts it."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import strict_skips
from tests.support import faults, secret_scan
from tests.support.aws import EmulatedAws, emulated_aws
from tests.support.fake_upstream import FakeAnthropic
from tests.support.faults import Phases
from tests.support.stack import Stack

# 16 clients, each pausing 0.1 s between requests: about 100 requests a second here, so that
# ingest's catching up after a fault takes a few seconds, not a minute.
SHORT = Phases(before_s=0.5, during_s=0.8, after_s=0.5, pause_s=0.1)
SPOOL_DISK_BYTES = 24 * 1024 * 1024


@dataclass
class Faulted:
    stack: Stack
    spool_disk: Path | None  # None when no tmpfs could be mounted (not root)


@pytest.fixture(scope="module")
def faulted(fake_upstream: FakeAnthropic) -> Iterator[Faulted]:
    # Outside pytest's temporary directory, which any pytest starting on the machine makes private
    # to root again (the embedded PostgreSQL runs as its own user); kept for the secrets scan.
    root = secret_scan.remove_after_session(Path(tempfile.mkdtemp(prefix="nexus-faults-")))
    root.chmod(0o755)
    fake_upstream.reset()
    with faults.tmpfs_if_allowed(root / "nexus" / "spool", SPOOL_DISK_BYTES, _no_tmpfs) as disk:
        holder = Faulted(Stack(root / "nexus", fake_upstream.url).start(timeout=120), disk)
        yield holder
        first_pg = faults.postmaster(holder.stack)
        holder.stack.stop()
        # Stopping the stack stops the PostgreSQL it ran, also one it took over from a killed run.
        assert not faults.alive(first_pg), "nexus dev left its embedded PostgreSQL running"
        if disk is not None:
            secret_scan.scan_now(disk)  # the tmpfs goes with the fixture


def _no_tmpfs(exc: PermissionError) -> None:
    if strict_skips():
        raise exc


def _report(tally: faults.Tally, least: int = 50) -> None:
    print(tally.line())
    assert tally.upstream >= least, f"too little load to say anything: {tally.line()}"
    assert tally.lost == 0, tally.line()
    assert tally.unexplained == 0 and tally.duplicates == 0, tally.line()


def test_an_upstream_cutting_streams_costs_no_record(faulted: Faulted, fake_upstream: FakeAnthropic) -> None:
    tally = faults.upstream_cut(faulted.stack, fake_upstream, faults.embedded_conninfo(faulted.stack), SHORT)
    _report(tally)
    assert tally.seen.cut > 0 and tally.seen.answered > 0, tally.line()


def test_a_full_spool_disk_costs_no_record(faulted: Faulted, fake_upstream: FakeAnthropic) -> None:
    if faulted.spool_disk is None:
        pytest.skip("no tmpfs to fill (needs root)")
    conninfo = faults.embedded_conninfo(faulted.stack)
    tally = faults.disk_full(faulted.stack, fake_upstream, conninfo, faulted.spool_disk, SHORT)
    _report(tally)
    assert "up to 0 records held" not in tally.note, f"the disk never filled: {tally.line()}"


def test_killing_postgres_costs_no_record(faulted: Faulted, fake_upstream: FakeAnthropic) -> None:
    tally = faults.postgres_killed(faulted.stack, fake_upstream, SHORT)
    _report(tally)
    assert tally.seen.refused.total() == 0, "the proxy does not need the database"


def test_killing_ingest_costs_no_record(faulted: Faulted, fake_upstream: FakeAnthropic) -> None:
    """`nexus dev` killed: ingest dies with it, its proxy finishes the streams it serves and stops;
    clients cannot connect until it is started again; what was answered is recorded."""
    faulted.stack, tally = faults.ingest_killed(faulted.stack, fake_upstream, SHORT)
    _report(tally)


@pytest.fixture(scope="module")
def aws() -> Iterator[EmulatedAws]:
    with emulated_aws() as emulated:
        yield emulated


def test_sqs_throttling_on_the_aws_path_costs_no_record(
    aws: EmulatedAws, fake_upstream: FakeAnthropic, tmp_path: Path
) -> None:
    fake_upstream.reset()
    with faults.aws_proxy(aws, fake_upstream, tmp_path / "lambda") as proxy:
        aws.drain()
        # SQS takes 2 sends a second: most sends are refused and retried; one refused 4 times in a
        # row is kept in S3 for the replay (bench/faults.py forces that; test_unsent_records has it).
        # A refused send pauses the proxy's event loop for its backoff (a Lambda sandbox serves one
        # request at a time), so a forced run of refusals would cost this test seconds.
        tally = faults.sqs_throttled(proxy, aws, fake_upstream, SHORT, rate=2, episode=0)
    # One proxy process sends one record at a time: fewer requests than the others.
    _report(tally, least=20)
    assert "SQS refused 0 sends" not in tally.note, tally.line()
    assert "0 only in the log line" in tally.note, tally.line()
