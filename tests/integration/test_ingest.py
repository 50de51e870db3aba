"""The ingest consumer: idempotent, order-robust, and poison records do not block the rest."""

from __future__ import annotations

import random
import zlib

import psycopg
import pytest
from nexus.db.migrate import migrate
from nexus.record import RawRecord
from nexus.spool import FRAME, FRAME_MAGIC, SpoolReader, SpoolWriter
from nexus_cli.spool_consumer import SpoolConsumer

from tests.support.fake_upstream import message_events


def _record(i: int, session: str = "s-ingest") -> RawRecord:
    body = (
        b'{"model":"claude-opus-5-5","max_tokens":5,"stream":true,"messages":['
        + b",".join(b'{"role":"user","content":"m%d"}' % k for k in range(i + 1))
        + b"]}"
    )
    return RawRecord(
        id=f"00000000-0000-7000-8000-{i:012d}",
        received_at=1_700_000_000 + i,
        method="POST",
        path="/v1/messages",
        query="beta=true",
        request_headers=[["x-claude-code-session-id", session], ["content-type", "application/json"]],
        status=200,
        response_headers=[["content-type", "text/event-stream"]],
        ttfb_ms=1.0,
        duration_ms=2.0,
        request_body=body,
        response_body=b"".join(message_events([{"type": "text", "text": f"answer {i}"}])),
    )


@pytest.fixture
def db(database_url):
    migrate(database_url)
    return database_url


def _drain(consumer: SpoolConsumer) -> None:
    while consumer.drain_once():
        pass


def _rows(url: str) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT id::text, message_count FROM requests ORDER BY id").fetchall()


def test_reingesting_and_shuffled_order_change_nothing(db, tmp_path):
    records = [_record(i) for i in range(30)]
    spool = tmp_path / "spool"
    writer = SpoolWriter(spool)
    shuffled = records[:]
    random.Random(7).shuffle(shuffled)
    for rec in shuffled:
        writer.put(rec)
    consumer = SpoolConsumer(spool, db, batch_size=7)
    _drain(consumer)
    assert consumer.written == 30
    first = _rows(db)
    assert len(first) == 30 and [c for _, c in first] == list(range(1, 31))
    # the same records delivered again (queue redelivery), by a fresh consumer with a cold cache
    for rec in records:
        writer.put(rec)
    again = SpoolConsumer(spool, db)
    _drain(again)
    assert again.written == 0
    assert _rows(db) == first
    with psycopg.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM message_chains").fetchone()[0] == 30
    assert _rollup_matches_requests(db), "a redelivered batch must not be counted twice"


def _rollup_matches_requests(url: str) -> bool:
    """The dashboard's hourly rollup adds up to the requests it summarises, hour by hour."""
    sums = "count(*), sum(output_tokens), sum(cost_usd)"
    with psycopg.connect(url) as conn:
        direct = conn.execute(
            f"SELECT date_trunc('hour', received_at), {sums} FROM requests GROUP BY 1 ORDER BY 1"
        ).fetchall()
        rolled = conn.execute(
            "SELECT hour, sum(requests), sum(output_tokens), sum(cost_usd) FROM usage_hourly"
            " GROUP BY 1 ORDER BY 1"
        ).fetchall()
    return bool(direct) and direct == rolled


def test_rate_limit_rollups_keep_the_newest_reading_and_hourly_peaks(db, tmp_path):
    spool = tmp_path / "spool"
    writer = SpoolWriter(spool)
    for i, (util, status) in enumerate([("0.5", "allowed"), ("0.9", "allowed_warning"), ("oops", "allowed")]):
        rec = _record(i, session="s-rl")
        rec.response_headers = [
            *rec.response_headers,
            ["anthropic-ratelimit-unified-5h-utilization", util],
            ["anthropic-ratelimit-unified-status", status],
        ]
        rec.account = "acct-rollup"
        writer.put(rec)
    consumer = SpoolConsumer(spool, db, batch_size=2)
    _drain(consumer)
    with psycopg.connect(db) as conn:
        account = "acct-rollup"
        latest = conn.execute(
            "SELECT ratelimit FROM ratelimit_latest WHERE account = %s", (account,)
        ).fetchone()
        peaks = conn.execute("SELECT u5h FROM ratelimit_hourly WHERE account = %s", (account,)).fetchall()
    assert latest[0]["anthropic-ratelimit-unified-5h-utilization"] == "oops"  # newest, even if odd
    assert peaks == [(pytest.approx(0.9),)]  # the odd value is ignored, not fatal


def test_poison_record_is_dead_lettered_and_the_batch_goes_on(db, tmp_path):
    spool = tmp_path / "spool"
    writer = SpoolWriter(spool)
    for i in range(5):
        writer.put(_record(i, "s-poison"))
    # a frame whose checksum is right but whose content is not a record (e.g. a bug in a writer)
    payload = b"this is not a record"
    seg = next((spool / "segments").glob("*.seg"))
    with open(seg, "ab") as fh:
        fh.write(FRAME.pack(FRAME_MAGIC, len(payload), zlib.crc32(payload)) + payload)
    writer.put(_record(5, "s-poison"))
    consumer = SpoolConsumer(spool, db)
    _drain(consumer)
    assert len(_rows(db)) == 6
    (dead,) = (spool / "dead").glob("*.rec")
    assert dead.read_bytes() == payload
    assert "magic" in dead.with_suffix(".reason").read_text()
    assert SpoolReader(spool).pending() == 0


def test_consumer_survives_database_disappearing(db, tmp_path):
    spool = tmp_path / "spool"
    SpoolWriter(spool).put(_record(0, "s-gone"))
    consumer = SpoolConsumer(spool, db.replace("/t_", "/missing_t_"))
    from nexus_ingest.pipeline import DatabaseUnavailable

    with pytest.raises(DatabaseUnavailable):
        consumer.drain_once()
    assert SpoolReader(spool).pending() == 1  # kept for the retry
