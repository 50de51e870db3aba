"""nexus.encoding: undoing a response's Content-Encoding for reading."""

from __future__ import annotations

import gzip
import zlib

import brotli
import pytest
import zstandard
from nexus.encoding import decode_body

PLAIN = b"".join(b'event: ping\ndata: {"type": "ping", "i": %d}\n\n' % i for i in range(2000)) + bytes(
    range(256)
)


def raw_deflate(data: bytes) -> bytes:
    c = zlib.compressobj(wbits=-15)
    return c.compress(data) + c.flush()


@pytest.mark.parametrize(
    ("encoding", "compressed"),
    [
        ("gzip", gzip.compress(PLAIN)),
        ("x-gzip", gzip.compress(PLAIN)),
        ("GZIP ", gzip.compress(PLAIN)),
        ("gzip", zlib.compress(PLAIN)),  # mislabelled zlib data is still read
        ("deflate", zlib.compress(PLAIN)),  # RFC 9110 deflate: zlib-wrapped
        ("deflate", raw_deflate(PLAIN)),  # what some servers send instead
        ("br", brotli.compress(PLAIN)),
        ("Br", brotli.compress(PLAIN)),
        ("zstd", zstandard.ZstdCompressor().compress(PLAIN)),
    ],
    ids=[
        "gzip",
        "x-gzip",
        "gzip-case-space",
        "gzip-zlib",
        "deflate-zlib",
        "deflate-raw",
        "br",
        "br-case",
        "zstd",
    ],
)
def test_decodes_supported_encodings(encoding, compressed):
    assert decode_body(compressed, encoding) == PLAIN


def test_zstd_streamed_with_flushed_blocks():
    c = zstandard.ZstdCompressor().compressobj()
    data = (
        c.compress(PLAIN[:1000])
        + c.flush(zstandard.COMPRESSOBJ_FLUSH_BLOCK)
        + c.compress(PLAIN[1000:])
        + c.flush()
    )
    assert decode_body(data, "zstd") == PLAIN


@pytest.mark.parametrize("encoding", [None, "", "identity", " Identity "])
def test_identity_returns_bytes_unchanged(encoding):
    assert decode_body(PLAIN, encoding) == PLAIN


@pytest.mark.parametrize("encoding", ["compress", "gzip, br", "snappy"])
def test_unknown_encoding_raises_value_error(encoding):
    with pytest.raises(ValueError, match="unsupported content-encoding"):
        decode_body(b"\x00\x01\x02", encoding)


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "br", "zstd"])
def test_empty_body_decodes_to_empty(encoding):
    assert decode_body(b"", encoding) == b""


@pytest.mark.parametrize(
    ("encoding", "compressed"),
    [("gzip", gzip.compress(PLAIN)), ("deflate", zlib.compress(PLAIN)), ("br", brotli.compress(PLAIN))],
)
def test_cut_stream_yields_a_prefix_of_the_original(encoding, compressed):
    out = decode_body(compressed[: len(compressed) * 2 // 3], encoding)
    assert out
    assert len(out) < len(PLAIN)
    assert PLAIN.startswith(out)


@pytest.mark.parametrize("encoding", ["gzip", "br", "zstd"])
def test_garbage_does_not_raise(encoding):
    assert decode_body(b"\x00 definitely not compressed \xff" * 4, encoding) == b""


def test_zstd_multiple_frames_are_all_decoded():
    c = zstandard.ZstdCompressor()
    data = c.compress(PLAIN[:5000]) + c.compress(PLAIN[5000:])
    assert decode_body(data, "zstd") == PLAIN


def test_gzip_multiple_members_are_all_decoded():
    data = gzip.compress(PLAIN[:5000]) + gzip.compress(PLAIN[5000:])
    assert decode_body(data, "gzip") == PLAIN
