"""Soak: `nexus dev` (embedded PostgreSQL, proxy, dashboard, ingest) under steady load for a long
time, watching what should not grow. 16 clients send streamed Messages requests through the proxy to
the scripted upstream (each client starts a new session every ``--session-every`` requests, and every
request's text is new, so the database grows as in real use); every ``--sample-s`` the resident
memory (RSS) and open files of the proxy and of the `nexus dev` process (the ingest thread runs in
it) are read from /proc, with the spool's backlog.

After the warm-up (``--warmup-minutes``, default a tenth of the run), the mean of the first minute of
samples is the baseline and the mean of the last minute the end: growth = end / baseline - 1, which
must stay under 10% for each. At the end the load stops and every answered request must be recorded.

    .venv/bin/python bench/soak.py [--minutes 30] [--pause-ms 200] [--sample-s 10] [--keep]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil
from nexus.spool import SpoolReader

from bench.lib.report import checks_table, print_sections, ratio
from bench.lib.stats import pct
from tests.support.fake_upstream import FakeAnthropic
from tests.support.faults import children, embedded_conninfo
from tests.support.load import Load, wait_recorded
from tests.support.stack import Stack

GROWTH_LIMIT = 0.10
CONCURRENCY = 16


@dataclass
class Sample:
    at_s: float
    rss_kb: dict[str, int]
    fds: dict[str, int]
    backlog: int
    sent: int


@dataclass
class Series:
    samples: list[Sample] = field(default_factory=list)

    def values(self, what: str, name: str, since_s: float, until_s: float) -> list[int]:
        return [
            getattr(s, what)[name]
            for s in self.samples
            if since_s <= s.at_s < until_s and name in getattr(s, what)
        ]


def _fds(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return -1


def _rss_kb(pid: int) -> int:
    try:
        return psutil.Process(pid).memory_info().rss // 1024
    except psutil.NoSuchProcess:
        return -1


def watched(stack: Stack) -> dict[str, int]:
    """The processes to watch: the proxy and `nexus dev` (ingest)."""
    assert stack.proc is not None
    out = {"ingest (nexus dev)": stack.proc.pid}
    for pid in children(stack):
        if "nexus_proxy.serve" in " ".join(psutil.Process(pid).cmdline()):
            out["proxy"] = pid
    assert "proxy" in out, "no proxy process under nexus dev"
    return out


def sample(stack: Stack, pids: dict[str, int], started: float, load: Load) -> Sample:
    try:
        backlog = SpoolReader(stack.data_dir / "spool").pending()
    except OSError:
        backlog = -1
    return Sample(
        time.monotonic() - started,
        {name: _rss_kb(pid) for name, pid in pids.items()},
        {name: _fds(pid) for name, pid in pids.items()},
        backlog,
        load.seen.sent,
    )


def growth(series: Series, what: str, name: str, warmup_s: float, end_s: float, window_s: float) -> float:
    base = series.values(what, name, warmup_s, warmup_s + window_s)
    last = series.values(what, name, end_s - window_s, end_s + 1)
    return ratio(statistics.fmean(last), statistics.fmean(base)) - 1


def report(
    series: Series,
    pids: dict[str, int],
    load: Load,
    received: int,
    records: tuple[int, int, int],
    warmup_s: float,
    ended: float,
    window_s: float,
) -> bool:
    """Print the figures and the checks; whether all passed."""
    seen = load.seen
    recorded, other, duplicates = records
    lost = max(0, received - recorded)
    rate = seen.sent / ended
    lat = sorted(load.latencies_s)
    checks = []
    late_at = warmup_s + (ended - warmup_s) * 2 / 3
    late = []
    for name in pids:
        for what, label in (("rss_kb", "RSS"), ("fds", "open files")):
            g = growth(series, what, name, warmup_s, ended, window_s)
            base = statistics.fmean(series.values(what, name, warmup_s, warmup_s + window_s))
            end = statistics.fmean(series.values(what, name, ended - window_s, ended + 1))
            if what == "rss_kb":
                shown = f"{base / 1024:.0f} -> {end / 1024:.0f} MB"
                ok = g < GROWTH_LIMIT
                if late_at + window_s <= ended - window_s:  # two windows that do not overlap
                    late.append(f"{name} {growth(series, what, name, late_at, ended, window_s):+.1%}")
            else:  # a handful of files: one more now and then is not a leak, a climbing count is
                shown = f"{base:.1f} -> {end:.1f}"
                ok = g < GROWTH_LIMIT or end - base <= 2
            checks.append((f"{name} {label} ({shown})", f"{g:+.1%}", f"< {GROWTH_LIMIT:.0%}", ok))
    backlog = series.samples[-1].backlog
    unanswered = sum(seen.failed.values()) + sum(seen.refused.values())
    checks += [
        ("spool backlog at the end", f"{backlog}", "< 1 s of load", 0 <= backlog < rate),
        ("requests lost (answered, not recorded)", f"{lost}", "0", lost == 0),
        ("records stored twice", f"{duplicates}", "0", duplicates == 0),
        ("requests without an answer", f"{unanswered}", "0", unanswered == 0),
    ]
    summary = [
        f"Load: {seen.sent} requests in {ended / 60:.1f} min ({rate:.1f}/s), {seen.answered} answered whole, "
        f"{seen.cut} cut; the upstream received {received}; recorded {recorded} (+{other} without an answer)",
        f"Latency (client, whole stream): p50 {pct(lat, 50) * 1000:.1f} ms, p99 {pct(lat, 99) * 1000:.1f} ms",
        f"Growth: mean of the last {window_s:.0f} s over the first {window_s:.0f} s after warm-up; "
        "files: or at most 2 more",
        "RSS growth over the last third (a cache filling slows down, a leak does not): "
        + (", ".join(late) or "run too short to say"),
    ]
    print_sections([summary, checks_table(checks)])
    return all(c[3] for c in checks)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--warmup-minutes", type=float, default=None, help="default: a tenth of the run")
    ap.add_argument("--pause-ms", type=float, default=200.0, help="each client's pause between requests")
    ap.add_argument("--session-every", type=int, default=50, help="requests per session and client")
    ap.add_argument("--sample-s", type=float, default=10.0)
    ap.add_argument("--keep", action="store_true", help="keep the data directory (logs, database)")
    args = ap.parse_args()
    duration_s = args.minutes * 60
    warmup_s = (args.warmup_minutes if args.warmup_minutes is not None else args.minutes / 10) * 60
    window_s = min(60.0, (duration_s - warmup_s) / 3)

    root = Path(tempfile.mkdtemp(prefix="nexus-soak-"))
    root.chmod(0o755)  # the embedded PostgreSQL runs as its own user
    fake = FakeAnthropic().start()
    fake.record = False
    stack = Stack(root / "nexus", fake.url)
    series = Series()
    ok = False
    try:
        stack.start(timeout=180)
        pids = watched(stack)
        print(
            f"soak: {args.minutes:g} min at c={CONCURRENCY} (pause {args.pause_ms:g} ms), warm-up "
            f"{warmup_s / 60:g} min, sampling every {args.sample_s:g} s; data in {root}",
            flush=True,
        )
        session = f"soak-{os.getpid()}"
        load = Load(
            stack.proxy_url, session, CONCURRENCY, args.pause_ms / 1000, session_every=args.session_every
        )
        started = time.monotonic()
        with load:
            next_print = 0.0
            while (now := time.monotonic() - started) < duration_s:
                s = sample(stack, pids, started, load)
                series.samples.append(s)
                if now >= next_print:
                    print(
                        f"  {now / 60:5.1f} min: sent {s.sent}, backlog {s.backlog}, "
                        + ", ".join(f"{n} {s.rss_kb[n] / 1024:.0f} MB / {s.fds[n]} fds" for n in pids),
                        flush=True,
                    )
                    next_print = now + 60
                time.sleep(max(0.0, args.sample_s - (time.monotonic() - started - now)))
        ended = time.monotonic() - started
        recorded, other, duplicates = wait_recorded(
            embedded_conninfo(stack), session, fake.received, timeout=600, prefix=True
        )
        ok = report(
            series, pids, load, fake.received, (recorded, other, duplicates), warmup_s, ended, window_s
        )
    finally:
        stack.stop()
        fake.stop()
        if args.keep or not ok:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
