"""Undo a response's Content-Encoding for reading (stored bytes stay exactly as received)."""

from __future__ import annotations

import zlib

import brotli
import zstandard


def decode_body(data: bytes, content_encoding: str | None) -> bytes:
    """Decode, tolerating a stream cut mid-way (returns what could be decoded)."""
    enc = (content_encoding or "").strip().lower()
    if not enc or enc == "identity" or not data:
        return data
    if enc in ("gzip", "x-gzip", "deflate"):
        return _zlib(data, enc)
    if enc == "br":
        d = brotli.Decompressor()
        try:
            return bytes(d.process(data))
        except brotli.error:
            return b""
    if enc == "zstd":
        try:
            return zstandard.ZstdDecompressor().decompressobj(read_across_frames=True).decompress(data)
        except zstandard.ZstdError:
            return b""
    raise ValueError(f"unsupported content-encoding {enc!r}")


def _zlib(data: bytes, enc: str) -> bytes:
    """gzip (every member, RFC 1952 allows several), zlib-wrapped or raw deflate."""
    out: list[bytes] = []
    wbits = 47 if enc != "deflate" else 15  # 47: auto-detect a gzip or zlib header
    try:
        while data:
            d = zlib.decompressobj(wbits)
            out.append(d.decompress(data))
            out.append(d.flush())
            data = d.unused_data if enc != "deflate" else b""
    except zlib.error:
        if enc == "deflate" and not out:
            return zlib.decompressobj(-15).decompress(data)
        if not out:
            return b""
    return b"".join(out)
