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
        wbits = 47 if enc != "deflate" else 15  # 47: auto-detect gzip/zlib header
        d = zlib.decompressobj(wbits)
        try:
            return d.decompress(data) + d.flush()
        except zlib.error:
            return zlib.decompressobj(-15).decompress(data) if enc == "deflate" else b""
    if enc == "br":
        d = brotli.Decompressor()
        try:
            return d.process(data)
        except brotli.error:
            return b""
    if enc == "zstd":
        try:
            return zstandard.ZstdDecompressor().decompressobj().decompress(data)
        except zstandard.ZstdError:
            return b""
    raise ValueError(f"unsupported content-encoding {enc!r}")
