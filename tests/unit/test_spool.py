"""nexus.spool: the local file queue between the proxy and ingest."""

from __future__ import annotations

import os
import time

from nexus.record import RawRecord
from nexus.spool import SpoolReader, SpoolWriter


def rec(n: int, received_at: float | None = None, body: bytes = b"") -> RawRecord:
    return RawRecord(
        id=f"rec-{n:03d}",
        received_at=1732470000.0 + n if received_at is None else received_at,
        method="POST",
        path="/v1/messages",
        query="",
        request_headers=[["content-type", "application/json"]],
        status=200,
        request_body=body or f'{{"n":{n}}}'.encode(),
        response_body=b"\x00\x01binary\xff",
    )


def test_take_returns_records_in_arrival_order(tmp_path):
    writer, reader = SpoolWriter(tmp_path), SpoolReader(tmp_path)
    # Written out of order (requests finish in any order); taken by arrival time.
    for n in (3, 1, 4, 0, 2):
        writer.put(rec(n))
    items = reader.take(10)
    assert [i.record.id for i in items] == ["rec-000", "rec-001", "rec-002", "rec-003", "rec-004"]
    assert all(i.error is None for i in items)
    assert items[2].record == rec(2)


def test_arrival_order_is_by_time_not_by_id(tmp_path):
    writer, reader = SpoolWriter(tmp_path), SpoolReader(tmp_path)
    writer.put(rec(9, received_at=100.000002))
    writer.put(rec(1, received_at=100.000003))
    writer.put(rec(5, received_at=99.5))
    assert [i.record.id for i in reader.take(10)] == ["rec-005", "rec-009", "rec-001"]


def test_take_respects_limit_and_does_not_consume(tmp_path):
    writer, reader = SpoolWriter(tmp_path), SpoolReader(tmp_path)
    for n in range(5):
        writer.put(rec(n))
    assert [i.record.id for i in reader.take(2)] == ["rec-000", "rec-001"]
    assert reader.pending() == 5
    assert [i.record.id for i in reader.take(2)] == ["rec-000", "rec-001"]  # not acked: seen again


def test_ack_deletes_only_the_acked_records(tmp_path):
    writer, reader = SpoolWriter(tmp_path), SpoolReader(tmp_path)
    for n in range(3):
        writer.put(rec(n))
    first_two = reader.take(2)
    reader.ack(first_two)
    assert reader.pending() == 1
    assert all(not i.path.exists() for i in first_two)
    assert [i.record.id for i in reader.take(10)] == ["rec-002"]
    reader.ack(first_two)  # acking twice is harmless


def test_put_leaves_no_temp_file(tmp_path):
    SpoolWriter(tmp_path, fsync=True).put(rec(1))
    assert os.listdir(tmp_path / "tmp") == []
    assert len(os.listdir(tmp_path / "ready")) == 1


def test_dead_letter_moves_file_and_records_reason(tmp_path):
    writer, reader = SpoolWriter(tmp_path), SpoolReader(tmp_path)
    writer.put(rec(1))
    writer.put(rec(2))
    item = reader.take(1)[0]
    original = item.path.read_bytes()
    reader.dead_letter(item, "database rejected row: value too long")
    assert not item.path.exists()
    dead = tmp_path / "dead" / item.path.name
    assert dead.read_bytes() == original
    assert dead.with_suffix(".reason").read_text() == "database rejected row: value too long"
    assert [i.record.id for i in reader.take(10)] == ["rec-002"]


def test_corrupt_file_comes_back_as_item_with_error(tmp_path):
    writer, reader = SpoolWriter(tmp_path), SpoolReader(tmp_path)
    writer.put(rec(1))
    writer.put(rec(3))
    good = reader.take(10)[0].record.encode()
    (tmp_path / "ready" / "1732470002000000-bad.rec").write_bytes(good[: len(good) // 2])
    items = reader.take(10)
    assert [i.record.id if i.record else None for i in items] == ["rec-001", None, "rec-003"]
    bad = items[1]
    assert bad.error
    assert bad.path.name == "1732470002000000-bad.rec"
    reader.dead_letter(bad, bad.error)  # the consumer can move it aside
    assert [i.record.id for i in reader.take(10)] == ["rec-001", "rec-003"]


def test_take_ignores_non_record_files(tmp_path):
    writer, reader = SpoolWriter(tmp_path), SpoolReader(tmp_path)
    writer.put(rec(1))
    (tmp_path / "ready" / "notes.txt").write_text("not a record")
    assert [i.record.id for i in reader.take(10)] == ["rec-001"]


def test_sweep_tmp_removes_only_old_temp_files(tmp_path):
    writer, reader = SpoolWriter(tmp_path), SpoolReader(tmp_path)
    writer.put(rec(1))
    old = tmp_path / "tmp" / "crashed.rec"
    fresh = tmp_path / "tmp" / "in-flight.rec"
    old.write_bytes(b"half a record")
    fresh.write_bytes(b"being written")
    two_hours_ago = time.time() - 7200
    os.utime(old, (two_hours_ago, two_hours_ago))
    # Age the finished record too: sweeping must never touch ready/.
    ready_file = next((tmp_path / "ready").iterdir())
    os.utime(ready_file, (two_hours_ago, two_hours_ago))

    assert reader.sweep_tmp(older_than_s=3600) == 1
    assert not old.exists()
    assert fresh.exists()
    assert ready_file.exists()
    assert reader.sweep_tmp(older_than_s=3600) == 0
