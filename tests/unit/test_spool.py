"""nexus.spool: the local segment-file queue between the proxy and ingest."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import zlib

from nexus.record import RawRecord
from nexus.spool import FRAME, FRAME_MAGIC, SpoolReader, SpoolWriter


def rec(n: int, body: bytes = b"") -> RawRecord:
    return RawRecord(
        id=f"rec-{n:03d}",
        received_at=1732470000.0 + n,
        method="POST",
        path="/v1/messages",
        query="",
        request_headers=[["content-type", "application/json"]],
        status=200,
        request_body=body or f'{{"n":{n}}}'.encode(),
        response_body=b"\x00\x01binary\xff",
    )


def put_in_child_process(root, *numbers: int) -> None:
    """Write records from another process that then exits without sealing its segment (a crash)."""
    script = (
        "import sys; from pathlib import Path; from nexus.spool import SpoolWriter; "
        "from tests.unit.test_spool import rec; w = SpoolWriter(Path(sys.argv[1])); "
        "[w.put(rec(int(n))) for n in sys.argv[2:]]"
    )
    repo = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))
    subprocess.run([sys.executable, "-c", script, str(root), *map(str, numbers)], check=True, cwd=repo)


def ids(items) -> list[str | None]:
    return [i.record.id if i.record else None for i in items]


def segments(root) -> list[str]:
    return sorted(p.name for p in (root / "segments").iterdir() if p.suffix in (".seg", ".sealed"))


def test_records_come_back_in_write_order_exactly(tmp_path):
    writer, reader = SpoolWriter(tmp_path), SpoolReader(tmp_path)
    for n in (3, 1, 4):
        writer.put(rec(n))
    items = reader.take(10)
    assert ids(items) == ["rec-003", "rec-001", "rec-004"]
    assert items[1].record == rec(1)
    assert all(i.error is None for i in items)


def test_take_respects_limit_and_does_not_consume(tmp_path):
    writer, reader = SpoolWriter(tmp_path), SpoolReader(tmp_path)
    for n in range(5):
        writer.put(rec(n))
    assert ids(reader.take(2)) == ["rec-000", "rec-001"]
    assert reader.pending() == 5
    assert ids(reader.take(2)) == ["rec-000", "rec-001"]  # not acked: seen again


def test_ack_advances_the_cursor_and_survives_a_new_reader(tmp_path):
    writer, reader = SpoolWriter(tmp_path), SpoolReader(tmp_path)
    for n in range(3):
        writer.put(rec(n))
    reader.ack(reader.take(2))
    assert reader.pending() == 1
    assert ids(SpoolReader(tmp_path).take(10)) == ["rec-002"]  # e.g. after an ingest restart


def test_sealed_and_consumed_segments_are_deleted(tmp_path):
    writer, reader = SpoolWriter(tmp_path, segment_bytes=400), SpoolReader(tmp_path)
    for n in range(6):
        writer.put(rec(n, body=b"x" * 150))  # each record fills most of a segment: rotation
    writer.close()
    assert len(segments(tmp_path)) >= 3
    items = reader.take(100)
    assert ids(items) == [f"rec-{n:03d}" for n in range(6)]
    reader.ack(items)
    assert segments(tmp_path) == []
    assert not list((tmp_path / "segments").glob("*.cursor"))


def test_a_frame_still_being_written_is_not_read(tmp_path):
    writer, reader = SpoolWriter(tmp_path), SpoolReader(tmp_path)
    writer.put(rec(1))
    payload = rec(2).encode()
    frame = FRAME.pack(FRAME_MAGIC, len(payload), zlib.crc32(payload)) + payload
    seg = next((tmp_path / "segments").glob("*.seg"))
    with open(seg, "ab") as fh:
        fh.write(frame[:30])  # the writer (this process, alive) is mid-write
    assert ids(reader.take(10)) == ["rec-001"]
    with open(seg, "ab") as fh:
        fh.write(frame[30:])
    assert ids(reader.take(10)) == ["rec-001", "rec-002"]


def test_crashed_writer_segment_is_sealed_and_its_torn_tail_set_aside(tmp_path):
    put_in_child_process(tmp_path, 1, 2)
    (seg,) = (tmp_path / "segments").glob("*.seg")  # never sealed: the process just exited
    with open(seg, "ab") as fh:
        fh.write(struct.pack(">4sII", FRAME_MAGIC, 1000, 0) + b"partial")
    reader = SpoolReader(tmp_path)
    items = reader.take(10)
    assert ids(items) == ["rec-001", "rec-002", None]
    assert "torn frame" in items[2].error
    for it in items:
        if it.record is None:
            reader.dead_letter(it, it.error)
    reader.ack(items)
    assert segments(tmp_path) == []
    assert len(list((tmp_path / "dead").glob("*.rec"))) == 1


def test_corrupt_frames_come_back_as_items_with_errors(tmp_path):
    writer, reader = SpoolWriter(tmp_path), SpoolReader(tmp_path)
    writer.put(rec(1))
    seg = next((tmp_path / "segments").glob("*.seg"))
    good = rec(9).encode()
    damaged = FRAME.pack(FRAME_MAGIC, len(good), zlib.crc32(good) ^ 1) + good  # wrong checksum
    with open(seg, "ab") as fh:
        fh.write(damaged)
    writer.put(rec(3))
    items = reader.take(10)
    assert ids(items) == ["rec-001", None, "rec-003"]
    assert items[1].error.startswith("damaged frame")
    reader.dead_letter(items[1], items[1].error)
    name = next((tmp_path / "dead").glob("*.rec"))
    assert name.read_bytes() == damaged  # kept exactly as found, for a human
    assert name.with_suffix(".reason").read_text().startswith("damaged frame")
    reader.ack(items)
    assert reader.take(10) == []


def test_garbage_in_a_segment_is_set_aside_and_later_frames_are_read(tmp_path):
    writer, reader = SpoolWriter(tmp_path), SpoolReader(tmp_path)
    writer.put(rec(1))
    seg = next((tmp_path / "segments").glob("*.seg"))
    with open(seg, "ab") as fh:
        fh.write(b"this is not a frame at all")
    # The writer is alive: the reader waits for an intact frame before judging the bytes.
    assert ids(reader.take(10)) == ["rec-001"]
    writer.put(rec(2))
    items = reader.take(10)
    assert ids(items) == ["rec-001", None, "rec-002"]
    assert items[1].raw == b"this is not a frame at all"
    reader.ack(items)
    assert reader.take(10) == []


def test_a_torn_frame_never_poisons_the_frames_after_it(tmp_path):
    """A disk that filled mid-write (before writers cut failed writes back) left part of a frame,
    then space came back and later frames were appended after it: all of those are read."""
    writer, reader = SpoolWriter(tmp_path), SpoolReader(tmp_path)
    writer.put(rec(1))
    seg = next((tmp_path / "segments").glob("*.seg"))
    payload = rec(2, body=b"y" * 5000).encode()
    frame = FRAME.pack(FRAME_MAGIC, len(payload), zlib.crc32(payload)) + payload
    with open(seg, "ab") as fh:
        fh.write(frame[:3000])
    for n in range(3, 8):
        writer.put(rec(n))
    items = reader.take(100)
    assert ids(items) == ["rec-001", None, *(f"rec-{n:03d}" for n in range(3, 8))]
    assert items[1].raw == frame[:3000]
    assert reader.pending() == 6


def test_garbage_at_the_end_of_a_sealed_segment_is_set_aside(tmp_path):
    writer, reader = SpoolWriter(tmp_path), SpoolReader(tmp_path)
    writer.put(rec(1))
    seg = next((tmp_path / "segments").glob("*.seg"))
    with open(seg, "ab") as fh:
        fh.write(b"NXS1 and then nothing sensible")
    writer.close()
    items = reader.take(10)
    assert ids(items) == ["rec-001", None] and items[1].error.startswith("torn frame")
    reader.ack(items)
    assert reader.take(10) == [] and segments(tmp_path) == []


def test_fsync_mode_writes_the_same_bytes(tmp_path):
    SpoolWriter(tmp_path, fsync=True).put(rec(1))
    assert ids(SpoolReader(tmp_path).take(1)) == ["rec-001"]


def test_writers_in_two_processes_never_share_a_segment(tmp_path):
    SpoolWriter(tmp_path).put(rec(1))
    put_in_child_process(tmp_path, 2)
    assert len(segments(tmp_path)) == 2
    assert sorted(ids(SpoolReader(tmp_path).take(10))) == ["rec-001", "rec-002"]


def test_a_segment_sealed_while_the_reader_works_is_neither_an_error_nor_lost(tmp_path) -> None:
    """The writer renames `.seg` to `.sealed` at any moment; the reader may hold the old name."""
    w = SpoolWriter(tmp_path)
    for n in (1, 2):
        w.put(rec(n))
    reader = SpoolReader(tmp_path)
    stale = reader._segments()
    items = reader.take(10)
    assert ids(items) == [rec(1).id, rec(2).id]
    w.close()  # seals: the reader's paths are now stale

    reader.ack(items)  # acknowledging under the old name still counts
    assert reader.take(10) == [] and reader.pending() == 0

    w2 = SpoolWriter(tmp_path)
    w2.put(rec(3))
    listed = reader._segments()
    w2.close()
    reader._segments = lambda: stale + listed  # a listing taken just before the rename
    assert ids(reader.take(10)) == []  # skipped this round, not an exception
    assert reader.pending() == 1
    del reader._segments
    assert ids(reader.take(10)) == [rec(3).id]
