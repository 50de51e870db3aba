"""What ingest's cache of already-stored hashes (``nexus.db.records.KnownHashes``) buys, against the
memory it holds. The same synthetic Claude Code traffic (bench/lib/traffic.py: 16 interleaved
sessions with their histories, sub-agents, compactions) is written through ``write_batch`` in batches
of 100 (the local consumer's size) into a fresh database per variant:

- ``none``: no cache; every piece of every request is looked up in PostgreSQL (the baseline);
- ``dict 200k``: the cache before, an OrderedDict of 200,000 hashes (least recently used out);
- ``table N MB``: the fixed table, at several sizes (8 MB is the default).

Each variant runs twice, in mirrored order (so a server warming up favours none); the report gives
records/s (mean of both), its ratio to ``none``, the share of lookups the cache answered, and the
memory the cache holds when full (traced with tracemalloc, filled with random hashes apart from the
timed runs). Records are prepared once, before any timing: only the writing is compared.

    .venv/bin/python bench/ingest_cache.py [--records 20000] [--sessions 16] [--quick]
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
import tracemalloc
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import psycopg
from nexus.db.migrate import migrate
from nexus.db.records import KnownHashes, write_batch
from nexus.derive import Prepared, prepare

from bench.lib.report import checks_table, print_sections, ratio
from bench.lib.traffic import Generator, Shapes, Text, Workload
from tests.support.pg import create_database, temporary_server

BATCH = 100
DICT_CAPACITY = 200_000


class DictLRU:
    """The cache as it was before the fixed table (kept here as the reference to beat)."""

    def __init__(self, capacity: int = DICT_CAPACITY) -> None:
        self.capacity = capacity
        self._seen: OrderedDict[bytes, None] = OrderedDict()

    def __contains__(self, h: bytes) -> bool:
        if h in self._seen:
            self._seen.move_to_end(h)
            return True
        return False

    def add_all(self, hashes: Iterable[bytes]) -> None:
        for h in hashes:
            self._seen[h] = None
            self._seen.move_to_end(h)
        while len(self._seen) > self.capacity:
            self._seen.popitem(last=False)


class Nothing:
    """No cache: nothing is known."""

    capacity = 0

    def __contains__(self, h: bytes) -> bool:
        return False

    def add_all(self, hashes: Iterable[bytes]) -> None:
        pass


class Counting:
    """Counts lookups and hits on the way to the cache it wraps (the same small cost for every
    variant, none included)."""

    def __init__(self, inner: KnownHashes | DictLRU | Nothing) -> None:
        self.inner, self.lookups, self.hits = inner, 0, 0

    def __contains__(self, h: bytes) -> bool:
        self.lookups += 1
        found = h in self.inner
        self.hits += found
        return found

    def add_all(self, hashes: Iterable[bytes]) -> None:
        self.inner.add_all(hashes)


@dataclass
class Variant:
    name: str
    make: Callable[[], KnownHashes | DictLRU | Nothing]
    runs_s: list[float]
    hit_share: float = 0.0
    held_mb: float = 0.0


def held_when_full(make: Callable[[], KnownHashes | DictLRU | Nothing]) -> float:
    """MB the cache holds once full: filled with random hashes, its allocations traced."""
    hashes = [random.randbytes(32) for _ in range(600_000)]
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        cache = make()
        for i in range(0, len(hashes), 10_000):
            cache.add_all(hashes[i : i + 10_000])
        return (tracemalloc.get_traced_memory()[0] - before) / 1e6
    finally:
        tracemalloc.stop()


def records(n: int, seed: int, sessions: int) -> list[Prepared]:
    rng = random.Random(seed)
    text = Text(rng)
    workload = Workload(Generator(rng, text, Shapes.build(text)), rng, sessions)
    return [prepare(r) for r in workload.records(n)]


def timed_run(server_uri: str, batch: list[Prepared], variant: Variant) -> None:
    url = create_database(server_uri)
    migrate(url)
    known = Counting(variant.make())
    with psycopg.connect(url, autocommit=True) as conn:
        t0 = time.perf_counter()
        for i in range(0, len(batch), BATCH):
            write_batch(conn, batch[i : i + BATCH], known)  # type: ignore[arg-type]
        variant.runs_s.append(time.perf_counter() - t0)
        stored = conn.execute("SELECT count(*) FROM requests").fetchone()
    assert stored is not None and stored[0] == len(batch), f"{variant.name}: stored {stored}"
    variant.hit_share = known.hits / max(known.lookups, 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=20_000)
    ap.add_argument("--quick", action="store_true", help="4,000 records")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument(
        "--sessions", type=int, default=16, help="sessions in flight at once (the working set grows with it)"
    )
    args = ap.parse_args()
    n = 4_000 if args.quick else args.records

    variants = [
        Variant("none (baseline)", Nothing, []),
        Variant(f"dict {DICT_CAPACITY // 1000}k (before)", DictLRU, []),
        Variant("table 1 MB", lambda: KnownHashes(1 << 20), []),
        Variant("table 8 MB (default)", KnownHashes, []),
        Variant("table 32 MB", lambda: KnownHashes(32 << 20), []),
    ]
    t0 = time.monotonic()
    batch = records(n, args.seed, args.sessions)
    pieces = sum(len(p.blobs) + len(p.chain) for p in batch)
    took = time.monotonic() - t0
    print(f"{n:,} records prepared in {took:.0f} s ({pieces / n:.0f} pieces each)", flush=True)
    with temporary_server(prefix="nexus-bench-pg-") as server:
        for order in (variants, variants[::-1]):
            for v in order:
                timed_run(server.get_uri(), batch, v)
                print(f"  {v.name}: {n / v.runs_s[-1]:.0f} records/s", flush=True)
    for v in variants:
        v.held_mb = held_when_full(v.make)

    base = n / (sum(variants[0].runs_s) / 2)
    rows = [f"{'cache':<22} {'records/s':>9} {'vs none':>8} {'hits':>6} {'memory when full':>17}"]
    for v in variants:
        rate = n / (sum(v.runs_s) / 2)
        rows.append(
            f"{v.name:<22} {rate:>9.0f} {ratio(rate, base):>7.2f}x {v.hit_share:>6.1%} {v.held_mb:>13.1f} MB"
        )
    default = next(v for v in variants if "default" in v.name)
    before = variants[1]
    rate_default = n / (sum(default.runs_s) / 2)
    rate_before = n / (sum(before.runs_s) / 2)
    checks = [
        ("default table: throughput vs the dict", f"{ratio(rate_default, rate_before):.2f}x", ">= 0.95x",
         rate_default >= 0.95 * rate_before),
        ("default table: memory vs the dict", f"{ratio(default.held_mb, before.held_mb):.2f}x", "<= 0.5x",
         default.held_mb <= 0.5 * before.held_mb),
    ]  # fmt: skip
    print_sections(
        [
            [
                f"{os.cpu_count()} CPUs; {n:,} records of {args.sessions} interleaved sessions, batches of"
                f" {BATCH}, a fresh database per run",
                *rows,
            ],
            checks_table(checks),
        ]
    )
    sys.exit(0 if all(c[3] for c in checks) else 1)


if __name__ == "__main__":
    main()
