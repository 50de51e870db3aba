"""Faults under load, each a scenario: steady load through the proxy (``tests.support.load``), the
fault while it runs, recovery, and the count of records lost. The fault tests run them for a few
seconds; ``bench/faults.py`` for as long as asked.

- ``upstream_cut``: every n-th stream from the upstream breaks off mid-way;
- ``disk_full``: the spool's filesystem fills up (a tmpfs mounted on the spool directory), then
  space returns;
- ``postgres_killed``: ``kill -9`` of the embedded PostgreSQL's postmaster (``nexus dev`` restarts it);
- ``ingest_killed``: ``kill -9`` of ``nexus dev`` (ingest is its thread; the proxy and dashboard
  follow it down), then ``nexus dev`` started again on the same data directory;
- ``sqs_throttled`` (the AWS path): SQS refuses sends over a rate while the proxy hands records to it.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from tests.support.aws import EmulatedAws
from tests.support.fake_upstream import FakeAnthropic, Reply, Usage, cli_rules
from tests.support.load import Load, Tally, upstream_count, wait_recorded
from tests.support.stack import Stack, free_port


@dataclass
class Phases:
    """Seconds of load before the fault, while it lasts, and after recovery; each client's pause
    between requests (0: back to back, as fast as the machine goes)."""

    before_s: float = 1.0
    during_s: float = 1.0
    after_s: float = 1.0
    pause_s: float = 0.0


# --- the pieces -------------------------------------------------------------------------------------


@contextlib.contextmanager
def tmpfs(mountpoint: Path, size_bytes: int) -> Iterator[Path]:
    """A tmpfs of ``size_bytes`` mounted on ``mountpoint`` (needs root); raises PermissionError
    with mount's message when it cannot be mounted."""
    mountpoint.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_bytes}", "tmpfs", str(mountpoint)], capture_output=True
    )
    if done.returncode != 0:
        raise PermissionError(f"cannot mount a tmpfs: {done.stderr.decode().strip()} (needs root)")
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", "-l", str(mountpoint)], check=False)


@contextlib.contextmanager
def tmpfs_if_allowed(
    mountpoint: Path, size_bytes: int, refused: Callable[[PermissionError], None]
) -> Iterator[Path | None]:
    """``tmpfs``, or None where none can be mounted (not root), once ``refused`` (which may raise
    instead) has been told why."""
    with contextlib.ExitStack() as mounted:
        try:
            disk: Path | None = mounted.enter_context(tmpfs(mountpoint, size_bytes))
        except PermissionError as exc:
            refused(exc)
            disk = None
        yield disk


def fill(disk: Path) -> Path:
    """Fill the filesystem of ``disk`` to the last byte; returns the file to delete to free it (it
    may not exist: the disk was full already)."""
    filler = disk / "filler"
    try:
        with open(filler, "wb") as fh:
            chunk = b"\0" * 65536
            while True:
                fh.write(chunk)
                fh.flush()
    except OSError as exc:
        assert exc.errno == errno.ENOSPC, exc
    return filler


def embedded_conninfo(stack: Stack) -> str:
    """The connection string of a stack's embedded PostgreSQL, from its postmaster.pid."""
    lines = (stack.data_dir / "pg" / "postmaster.pid").read_text().splitlines()
    return f"postgresql://postgres:@/postgres?host={lines[4]}&port={lines[3]}"


def postmaster(stack: Stack) -> int:
    return int((stack.data_dir / "pg" / "postmaster.pid").read_text().split("\n", 1)[0])


def alive(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


def children(stack: Stack) -> list[int]:
    assert stack.proc is not None
    try:
        return [p.pid for p in psutil.Process(stack.proc.pid).children()]
    except psutil.NoSuchProcess:
        return []


def health(stack: Stack) -> dict[str, Any]:
    import json
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(stack.proxy_url + "/health", timeout=5) as r:
            doc: dict[str, Any] = json.loads(r.read())
    except urllib.error.HTTPError as exc:
        doc = json.loads(exc.read())
    return doc


def _count(name: str, load: Load, fake: FakeAnthropic, conninfo: str, note: str = "") -> Tally:
    seen = load.stop()
    upstream = upstream_count(fake.seen, load.session)
    recorded, other, duplicates = wait_recorded(conninfo, load.session, upstream)
    return Tally(name, seen, upstream, recorded, other, duplicates, note)


def _session(name: str) -> str:
    return f"fault-{name}-{os.getpid()}-{time.monotonic_ns()}"


# --- the faults -------------------------------------------------------------------------------------


def upstream_cut(stack: Stack, fake: FakeAnthropic, conninfo: str, p: Phases, every: int = 4) -> Tally:
    """Every ``every``-th stream breaks off after 3 events while the load runs (for ``during_s``)."""
    numbers = itertools.count(1)

    def cutting(body: dict[str, Any], usage: Usage) -> Reply:
        reply = cli_rules(body, usage)
        if next(numbers) % every == 0:
            reply.cut_after = 3
        return reply

    with Load(stack.proxy_url, _session("cut"), pause_s=p.pause_s) as load:
        time.sleep(p.before_s)
        cuts = fake.cut_connections
        fake.rules = cutting
        time.sleep(p.during_s)
        fake.rules = cli_rules
        cut = fake.cut_connections - cuts
        time.sleep(p.after_s)
        return _count("upstream cut mid-stream", load, fake, conninfo, f"{cut} streams cut by the upstream")


def disk_full(stack: Stack, fake: FakeAnthropic, conninfo: str, spool_disk: Path, p: Phases) -> Tally:
    """The spool's filesystem full for ``during_s``: records wait in the proxy's memory."""
    with Load(stack.proxy_url, _session("disk"), pause_s=p.pause_s) as load:
        time.sleep(p.before_s)
        filler = fill(spool_disk)
        try:
            deadline = time.monotonic() + p.during_s
            held = 0
            while time.monotonic() < deadline:
                held = max(held, health(stack).get("recording", {}).get("held", 0))
                time.sleep(0.05)
        finally:
            filler.unlink(missing_ok=True)
        time.sleep(p.after_s)
        late = health(stack).get("recording", {}).get("written_late", 0)
        return _count(
            "disk full", load, fake, conninfo, f"up to {held} records held in memory, {late} written late"
        )


def postgres_killed(stack: Stack, fake: FakeAnthropic, p: Phases) -> Tally:
    """``kill -9`` of the embedded PostgreSQL; load goes on until ``nexus dev`` has restarted it and
    for ``after_s`` more."""
    with Load(stack.proxy_url, _session("pg"), pause_s=p.pause_s) as load:
        time.sleep(p.before_s)
        first = postmaster(stack)
        killed_at = time.monotonic()
        log_from = len(stack.log())
        os.kill(first, signal.SIGKILL)
        deadline = killed_at + 60
        while "embedded PostgreSQL restarted" not in stack.log()[log_from:]:
            assert time.monotonic() < deadline, "PostgreSQL was not restarted"
            time.sleep(0.1)
        down_s = time.monotonic() - killed_at
        time.sleep(max(p.after_s, p.during_s - down_s))
        return _count(
            "kill -9 PostgreSQL", load, fake, embedded_conninfo(stack), f"database back after {down_s:.1f} s"
        )


def ingest_killed(stack: Stack, fake: FakeAnthropic, p: Phases) -> tuple[Stack, Tally]:
    """``kill -9`` of ``nexus dev`` (its ingest thread dies with it; its proxy and dashboard are told
    to stop and finish what they serve), then a new ``nexus dev`` on the same data directory and
    ports. Returns the new stack and the count."""
    assert stack.proc is not None
    with Load(stack.proxy_url, _session("ingest"), pause_s=p.pause_s) as load:
        time.sleep(p.before_s)
        servers = children(stack)
        killed_at = time.monotonic()
        os.kill(stack.proc.pid, signal.SIGKILL)
        stack.proc.wait(10)
        deadline = time.monotonic() + 60
        while any(alive(pid) for pid in servers):  # the proxy finishes its in-flight streams
            assert time.monotonic() < deadline, "the proxy outlived nexus dev by a minute"
            time.sleep(0.05)
        time.sleep(max(0.0, p.during_s - (time.monotonic() - killed_at)))
        again = Stack(stack.data_dir, stack.upstream, stack.database_url, stack.keys, stack.extra_env)
        again.proxy_port, again.dashboard_port, again.gateway_port = (
            stack.proxy_port,
            stack.dashboard_port,
            stack.gateway_port,
        )
        again.start(timeout=120)
        back_s = time.monotonic() - killed_at
        time.sleep(p.after_s)
        conninfo = again.database_url or embedded_conninfo(again)
        note = f"proxy back after {back_s:.1f} s"
        return again, _count("kill -9 ingest (nexus dev)", load, fake, conninfo, note)


# --- the AWS path -----------------------------------------------------------------------------------


@contextlib.contextmanager
def aws_proxy(
    aws: EmulatedAws, upstream: FakeAnthropic, data_dir: Path, **env: str
) -> Iterator[tuple[str, Path]]:
    """The proxy as Lambda runs it (keys from Secrets Manager, records to SQS), against ``aws``
    (``env`` overrides its variables): its base URL and its log (stdout and stderr)."""
    port = free_port()
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("NEXUS_", "AWS_"))}
    environ.update(aws.env, NEXUS_UPSTREAM_URL=upstream.url, NEXUS_DATA_DIR=str(data_dir), **env)
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir / "proxy.log"
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "nexus_proxy.serve", "--port", str(port), "--log-level", "warning"],
            env=environ,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(base, proc)
        yield base, log_path
    finally:
        proc.terminate()
        proc.wait(30)


def _wait_healthy(base: str, proc: subprocess.Popen[bytes]) -> None:
    import urllib.request

    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(base + "/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        assert proc.poll() is None and time.monotonic() < deadline, "the proxy did not become ready"
        time.sleep(0.05)


def queued(aws: EmulatedAws, session: str, records: dict[str, bool]) -> int:
    """Drain the queue into ``records`` (record id -> it holds the upstream's answer) for the
    records of ``session``; returns how many copies of records already seen came up."""
    from nexus.sqs_queue import decode_message

    copies = 0
    for message in aws.drain():
        record = decode_message(message["Body"], aws.s3)
        if record.header("x-claude-code-session-id") == session:
            copies += record.id in records
            records[record.id] = bool(record.response_headers)
    return copies


def kept_for_replay(aws: EmulatedAws, session: str, records: dict[str, bool]) -> int:
    """Take the records of ``session`` the proxy kept in S3 when SQS refused them (what ingest's
    scheduled replay stores, ADR 0012) into ``records``, as the replay does; returns how many."""
    from nexus.record import RawRecord
    from nexus.sqs_queue import UNSENT_PREFIX

    from tests.support.aws import BUCKET

    kept = 0
    listed = aws.s3.list_objects_v2(Bucket=BUCKET, Prefix=UNSENT_PREFIX).get("Contents", [])
    for obj in listed:
        record = RawRecord.decode(aws.s3.get_object(Bucket=BUCKET, Key=obj["Key"])["Body"].read())
        if record.header("x-claude-code-session-id") == session:
            kept += 1
            records[record.id] = bool(record.response_headers)
            aws.s3.delete_object(Bucket=BUCKET, Key=obj["Key"])
    return kept


def in_log_lines(log: Path, session: str) -> set[str]:
    """Ids of the records of ``session`` that only the proxy's log line kept (S3 refused too)."""
    from nexus.sqs_queue import records_in_log

    lines = log.read_text(errors="replace").splitlines() if log.exists() else []
    return {r.id for r in records_in_log(lines) if r.header("x-claude-code-session-id") == session}


def sqs_throttled(
    proxy: tuple[str, Path], aws: EmulatedAws, fake: FakeAnthropic, p: Phases, rate: float, episode: int = 5
) -> Tally:
    """While the load runs: the next ``episode`` sends are all refused (a throttling episode, which
    the first sender to meet it sees whole), then for ``during_s`` SQS takes at most ``rate`` sends
    per second. A record is kept if it reached the queue or, refused, was kept in S3 for the replay;
    one only in the proxy's log line (S3 refused too) needs an operator and is counted apart."""
    base, log = proxy
    headers = {"x-nexus-key": aws.key}
    with Load(base, _session("sqs"), pause_s=p.pause_s, extra_headers=headers) as load:
        time.sleep(p.before_s)
        throttled = aws.throttle.throttled
        aws.throttle.limit(rate, burst=1)
        if episode:
            aws.throttle.refuse(episode)
        time.sleep(p.during_s)
        aws.throttle.limit(None)
        time.sleep(p.after_s)
        seen = load.stop()
    refused = aws.throttle.throttled - throttled
    # Every hand-off ends before its response does, so the queue is complete once the load stopped.
    upstream = upstream_count(fake.seen, load.session)
    records: dict[str, bool] = {}
    duplicates = queued(aws, load.session, records)
    in_queue = len(records)
    spilled = kept_for_replay(aws, load.session, records)
    logged = in_log_lines(log, load.session) - set(records)
    answered = sum(records.values())
    run = f"{episode} in a row, then " if episode else ""
    note = (
        f"SQS refused {refused} sends ({run}over {rate:g}/s); {in_queue} records queued, "
        f"{spilled} kept in S3 for the replay, {len(logged)} only in the log line"
    )
    return Tally(
        "SQS throttling (AWS path)", seen, upstream, answered, len(records) - answered, duplicates, note
    )
