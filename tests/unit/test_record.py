"""nexus.record: the proxy's raw record and its binary wire encoding."""

from __future__ import annotations

import struct

import orjson
import pytest
from nexus.record import MAGIC, RawRecord, RecordDecodeError


def full_record() -> RawRecord:
    return RawRecord(
        id="0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",
        received_at=1732470000.123456,
        method="POST",
        path="/v1/messages",
        query="beta=true",
        request_headers=[
            ["content-type", "application/json"],
            ["x-api-key", "[redacted 0123456789ab]"],
            ["x-claude-code-session-id", "sess-ü-日本"],
            ["anthropic-beta", "a"],
            ["anthropic-beta", "b"],
        ],
        status=200,
        response_headers=[["Content-Type", "text/event-stream"], ["content-encoding", "gzip"]],
        ttfb_ms=412.5,
        duration_ms=8123.25,
        error="upstream_cut",
        team="acme",
        user="ada",
        key_id="a1b2c3d4e5",
        auth_mode="team-key",
        account="fedcba987654",
        upstream="https://api.anthropic.com",
        request_body=b'{"model":"claude-sonnet-4-5","messages":[]}',
        # binary on purpose: every byte value, a fake header and the magic inside the body
        response_body=bytes(range(256)) + MAGIC + struct.pack(">III", 1, 2, 3) + b"\x00" * 10,
    )


def test_roundtrip_keeps_every_field_and_exact_body_bytes():
    rec = full_record()
    assert RawRecord.decode(rec.encode()) == rec


def test_roundtrip_of_minimal_record_with_no_response():
    rec = RawRecord(id="r1", received_at=1.5, method="GET", path="/v1/models", query="", request_headers=[])
    decoded = RawRecord.decode(rec.encode())
    assert decoded == rec
    assert decoded.status is None
    assert (decoded.request_body, decoded.response_body) == (b"", b"")


def test_encoding_is_magic_then_lengths_then_parts():
    rec = full_record()
    data = rec.encode()
    magic, n_meta, n_req, n_resp = struct.unpack_from(">4sIII", data)
    assert magic == b"NXR1"
    assert len(data) == 16 + n_meta + n_req + n_resp
    assert data[16 + n_meta : 16 + n_meta + n_req] == rec.request_body
    assert data[16 + n_meta + n_req :] == rec.response_body
    assert "request_body" not in orjson.loads(data[16 : 16 + n_meta])


def test_header_lookup_is_case_insensitive_on_stored_names():
    rec = full_record()
    assert rec.header("content-type", "response") == "text/event-stream"
    assert rec.header("anthropic-beta") == "a"  # the first of repeated headers
    assert rec.header("x-missing") is None


@pytest.mark.parametrize(
    "mutate",
    [
        pytest.param(lambda d: d[:-1], id="truncated_body"),
        pytest.param(lambda d: d[:20], id="truncated_meta"),
        pytest.param(lambda d: d[:15], id="shorter_than_header"),
        pytest.param(lambda d: b"", id="empty"),
        pytest.param(lambda d: d + b"\x00", id="trailing_bytes"),
        pytest.param(lambda d: b"NXR2" + d[4:], id="bad_magic"),
        pytest.param(lambda d: b"\x00" * 4 + d[4:], id="zero_magic"),
        pytest.param(lambda d: d[:4] + b"\xff\xff\xff\xff" + d[8:], id="huge_meta_length"),
    ],
)
def test_damaged_data_raises_record_decode_error(mutate):
    with pytest.raises(RecordDecodeError):
        RawRecord.decode(mutate(full_record().encode()))


def _with_meta(meta: bytes, req: bytes = b"", resp: bytes = b"") -> bytes:
    return struct.pack(">4sIII", MAGIC, len(meta), len(req), len(resp)) + meta + req + resp


@pytest.mark.parametrize(
    "meta",
    [
        pytest.param(b"{not json", id="invalid_json"),
        pytest.param(b"\xff\xfe", id="invalid_utf8"),
        pytest.param(b'{"id":"x"}', id="missing_fields"),
        pytest.param(
            b'{"id":"x","received_at":1,"method":"GET","path":"/","query":"","request_headers":[],"bogus":1}',
            id="unknown_field",
        ),
        pytest.param(b"[1,2,3]", id="not_an_object"),
    ],
)
def test_bad_metadata_raises_record_decode_error(meta):
    with pytest.raises(RecordDecodeError):
        RawRecord.decode(_with_meta(meta))


def test_record_decode_error_is_a_value_error():
    assert issubclass(RecordDecodeError, ValueError)
