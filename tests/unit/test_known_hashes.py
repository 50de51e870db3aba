"""The ingest's cache of hashes already stored: bounded memory, never a wrong hit, recent ones kept."""

from __future__ import annotations

import hashlib
import tracemalloc

from nexus.db.records import KnownHashes


def h(n: int) -> bytes:
    return hashlib.sha256(str(n).encode()).digest()


def test_added_hashes_are_known_and_others_are_not() -> None:
    known = KnownHashes(max_bytes=1 << 18)  # 2048 sets: 500 hashes never fill one
    known.add_all(h(n) for n in range(500))
    assert all(h(n) in known for n in range(500))
    assert not any(h(n) in known for n in range(500, 5000))


def test_memory_is_fixed_by_max_bytes_whatever_is_added() -> None:
    hashes = [h(n) for n in range(50_000)]
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        known = KnownHashes(max_bytes=1 << 18)
        for start in range(0, 50_000, 5_000):
            known.add_all(hashes[start : start + 5_000])
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert known.capacity == (1 << 18) // 32
    assert held < (1 << 18) + 4096  # the table itself, nothing per hash
    # Full sets evict their least recently used hash: the newest ones stay (all but the few
    # whose set received more than four newer ones), the oldest are gone.
    assert sum(x in known for x in hashes[49_000:]) > 990
    assert not any(x in known for x in hashes[:10_000])
    assert 0.9 * known.capacity < sum(x in known for x in hashes) <= known.capacity


def test_a_hash_used_again_outlives_newer_ones_in_its_set() -> None:
    known = KnownHashes(max_bytes=KnownHashes.HASH * KnownHashes.WAYS)  # one set of 4 slots
    known.add_all([h(0), h(1), h(2), h(3)])
    assert h(0) in known  # used: now the most recent
    known.add_all([h(4), h(5), h(6)])
    assert h(0) in known
    assert [h(n) in known for n in (1, 2, 3)] == [False, False, False]
    assert all(h(n) in known for n in (4, 5, 6))


def test_what_is_not_a_sha256_is_never_a_hit() -> None:
    known = KnownHashes(max_bytes=1 << 12)
    assert bytes(32) not in known  # an unused slot is zeros, not a stored hash
    known.add_all([b"short", h(1)[:16], bytes(32)])
    assert b"short" not in known and h(1)[:16] not in known and bytes(32) not in known
    # Bytes straddling two stored hashes are not a stored hash.
    known = KnownHashes(max_bytes=KnownHashes.HASH * KnownHashes.WAYS)
    known.add_all([h(1), h(2)])
    straddle = (h(2) + h(1))[16:48]
    assert straddle not in known
