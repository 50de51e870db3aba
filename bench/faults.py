"""Faults under load, the long versions of tests/integration/test_faults_under_load.py: the same
scenarios (tests/support/faults.py) with longer phases and as much load as the machine takes.

16 clients send streamed requests through `nexus dev` (embedded PostgreSQL, its spool on a
tmpfs) to the scripted upstream; each fault in turn: the upstream cutting every 4th stream, the
spool's disk full, kill -9 of PostgreSQL, kill -9 of `nexus dev` (ingest) and a restart; then the
AWS path (the proxy as Lambda runs it, moto behind an SQS rate limit) with SQS throttling. For each:
what the clients saw, what the upstream received, what was recorded, records lost (upstream answers
with no record, target 0) and stored twice (target 0), and how long recovery took.

    .venv/bin/python bench/faults.py [--before-s 5] [--during-s 20] [--after-s 5] [--pause-ms 0]
        [--only cut,disk,pg,ingest,sqs] [--sqs-rate 10]

The disk-full fault needs root (it mounts a tmpfs); without it that fault is skipped.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

from bench.lib.report import checks_table, print_sections
from tests.support import faults
from tests.support.aws import emulated_aws
from tests.support.fake_upstream import FakeAnthropic
from tests.support.faults import Phases
from tests.support.load import Tally
from tests.support.stack import Stack

FAULTS = ("cut", "disk", "pg", "ingest", "sqs")
SPOOL_DISK_BYTES = 256 * 1024 * 1024


def _no_tmpfs(exc: PermissionError) -> None:
    print(f"disk full: skipped ({exc})", flush=True)


def local_faults(fake: FakeAnthropic, root: Path, p: Phases, only: set[str]) -> list[Tally]:
    tallies: list[Tally] = []
    with faults.tmpfs_if_allowed(root / "nexus" / "spool", SPOOL_DISK_BYTES, _no_tmpfs) as disk:
        stack = Stack(root / "nexus", fake.url).start(timeout=180)
        try:
            conninfo = faults.embedded_conninfo(stack)
            steps = [
                ("cut", lambda: faults.upstream_cut(stack, fake, conninfo, p)),
                ("disk", lambda: faults.disk_full(stack, fake, conninfo, disk, p) if disk else None),
                ("pg", lambda: faults.postgres_killed(stack, fake, p)),
            ]
            for name, step in steps:
                if name in only:
                    tally = step()
                    if tally is not None:
                        print(tally.line(), flush=True)
                        tallies.append(tally)
            if "ingest" in only:
                stack, tally = faults.ingest_killed(stack, fake, p)
                print(tally.line(), flush=True)
                tallies.append(tally)
        finally:
            stack.stop()
    return tallies


def sqs_fault(fake: FakeAnthropic, root: Path, p: Phases, rate: float) -> Tally:
    with emulated_aws() as aws, faults.aws_proxy(aws, fake, root / "lambda") as proxy:
        aws.drain()
        # A long episode: several records in a row find every attempt refused and are kept in S3.
        tally = faults.sqs_throttled(proxy, aws, fake, p, rate=rate, episode=30)
    print(tally.line(), flush=True)
    return tally


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--before-s", type=float, default=5.0)
    ap.add_argument("--during-s", type=float, default=20.0)
    ap.add_argument("--after-s", type=float, default=5.0)
    ap.add_argument("--pause-ms", type=float, default=0.0, help="each client's pause (0: as fast as it goes)")
    ap.add_argument("--only", default=",".join(FAULTS), help="which faults, comma-separated")
    ap.add_argument("--sqs-rate", type=float, default=10.0, help="SQS sends per second while throttled")
    args = ap.parse_args()
    only = set(args.only.split(","))
    unknown = only - set(FAULTS)
    if unknown:
        ap.error(f"unknown faults: {', '.join(sorted(unknown))}")
    p = Phases(args.before_s, args.during_s, args.after_s, args.pause_ms / 1000)

    root = Path(tempfile.mkdtemp(prefix="nexus-faults-bench-"))
    root.chmod(0o755)  # the embedded PostgreSQL runs as its own user
    fake = FakeAnthropic().start()
    started = time.monotonic()
    tallies: list[Tally] = []
    try:
        tallies += local_faults(fake, root, p, only)
        if "sqs" in only:
            fake.reset()
            tallies.append(sqs_fault(fake, root, p, args.sqs_rate))
    finally:
        fake.stop()
        shutil.rmtree(root, ignore_errors=True)
    checks = [
        (f"{t.name}: lost of {t.upstream}", f"{t.lost}", "0", t.lost == 0 and t.unexplained == 0)
        for t in tallies
    ] + [(f"{t.name}: stored twice", f"{t.duplicates}", "0", t.duplicates == 0) for t in tallies]
    lines = [t.line() for t in tallies]
    lines.append(
        f"{len(tallies)} faults in {(time.monotonic() - started) / 60:.1f} min, phases "
        f"{p.before_s:g} / {p.during_s:g} / {p.after_s:g} s, c=16, pause {args.pause_ms:g} ms"
    )
    print_sections([lines, checks_table(checks, "Records lost and duplicated")])
    sys.exit(0 if all(c[3] for c in checks) else 1)


if __name__ == "__main__":
    main()
