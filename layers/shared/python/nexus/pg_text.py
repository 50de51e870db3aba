"""Text PostgreSQL can store: ``text`` and ``jsonb`` refuse U+0000, which tool output read from
binary files carries often. Such characters are shown as U+2400 (SYMBOL FOR NULL) wherever text is
stored for reading; the exact bytes stay in the byte columns (blobs, raw response)."""

from __future__ import annotations

from typing import Any

NUL = "\x00"
SHOWN = "\u2400"  # what a NUL looks like in stored text and on the dashboard


def text(value: str) -> str:
    return value.replace(NUL, SHOWN) if NUL in value else value


def clean(value: Any) -> Any:
    """``value`` (decoded JSON) with NULs in every string, keys included, shown as SHOWN."""
    if isinstance(value, str):
        return text(value)
    if isinstance(value, dict):
        return {text(k): clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [clean(v) for v in value]
    return value


def json_has_nul(encoded: bytes) -> bool:
    """Whether JSON text may hold an escaped NUL (a literal backslash before ``u0000`` also matches:
    harmless, the caller only cleans and keeps raw bytes)."""
    return b"\\u0000" in encoded
