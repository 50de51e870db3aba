"""Content-addressed request bodies.

A body is cut into pieces along its top-level JSON values: each message of ``messages`` and every
large value (``system``, ``tools``) becomes a blob keyed by the SHA-256 of its exact bytes; the small
rest stays inline in a layout. Joining the layout back yields the original bytes exactly, whitespace
and key order included, because pieces are sliced from the raw text, never re-serialised.

Layout entries: a ``str`` is literal text; ``{"b": hex}`` is a blob; ``{"m": gaps}`` is the messages
array (``gaps`` is None for the compact ``[a,b,c]`` form, else the n+1 separator strings).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

BLOB_MIN_CHARS = 256  # smaller values stay inline: a blob row costs more than it saves
_DECODER = json.JSONDecoder()
_WS = " \t\n\r"


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


@dataclass(slots=True)
class SplitBody:
    layout: list[Any]
    blobs: dict[bytes, bytes] = field(default_factory=dict)  # hash -> exact bytes
    message_hashes: list[bytes] = field(default_factory=list)
    parsed: dict[str, Any] | None = None  # the decoded body, when it is a JSON object


def _skip(s: str, i: int) -> int:
    n = len(s)
    while i < n and s[i] in _WS:
        i += 1
    return i


def _blob(out: SplitBody, text: str) -> bytes:
    data = text.encode()
    h = sha256(data)
    out.blobs[h] = data
    return h


def split_body(raw: bytes) -> SplitBody:
    try:
        return _split_object(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, IndexError, RecursionError):
        out = SplitBody(layout=[])
        h = sha256(raw)
        out.blobs[h] = raw
        out.layout.append({"b": h.hex()})
        return out


def _split_object(s: str) -> SplitBody:
    out = SplitBody(layout=[], parsed={})
    i = _skip(s, 0)
    if s[i] != "{":
        raise ValueError("not an object")
    lit = 0  # start of pending literal text
    pos = i + 1
    while True:
        j = _skip(s, pos)
        if s[j] == "}":
            end = _skip(s, j + 1)
            if end != len(s):
                raise ValueError("trailing data")
            break
        key, k_end = _DECODER.raw_decode(s, j)
        c = _skip(s, k_end)
        if s[c] != ":":
            raise ValueError("expected ':'")
        v_start = _skip(s, c + 1)
        if key == "messages" and s[v_start] == "[":
            if out.message_hashes or "messages" in out.parsed:
                raise ValueError("duplicate messages key")  # stored whole, so it stays exact
            value, v_end, gaps, hashes = _split_messages(out, s, v_start)
            out.layout.append(s[lit:v_start])
            out.layout.append({"m": gaps})
            out.message_hashes = hashes
            lit = v_end
        else:
            value, v_end = _DECODER.raw_decode(s, v_start)
            if v_end - v_start >= BLOB_MIN_CHARS:
                out.layout.append(s[lit:v_start])
                out.layout.append({"b": _blob(out, s[v_start:v_end]).hex()})
                lit = v_end
        out.parsed[key] = value
        pos = _skip(s, v_end)
        if s[pos] == ",":
            pos += 1
    out.layout.append(s[lit:])
    out.layout = [p for p in out.layout if p != ""]
    return out


def _split_messages(out: SplitBody, s: str, start: int) -> tuple[list, int, list[str] | None, list[bytes]]:
    values: list[Any] = []
    hashes: list[bytes] = []
    gaps: list[str] = []
    pos = start + 1
    gap_start = pos
    while True:
        j = _skip(s, pos)
        if s[j] == "]":
            gaps.append(s[gap_start:j])
            end = j + 1
            break
        if values:  # expect a comma between elements
            if s[j] != ",":
                raise ValueError("expected ','")
            j = _skip(s, j + 1)
        gaps.append(s[gap_start:j])
        value, v_end = _DECODER.raw_decode(s, j)
        values.append(value)
        hashes.append(_blob(out, s[j:v_end]))
        gap_start = pos = v_end
    compact = gaps[0] == "" and gaps[-1] == "" and all(g == "," for g in gaps[1:-1])
    if not values:
        compact = gaps == [""]
    return values, end, None if compact else gaps, hashes


def join_body(layout: list[Any], message_blobs: list[bytes], blob: Callable[[bytes], bytes]) -> bytes:
    """Reassemble the exact body. ``message_blobs``: the messages' bytes in order; ``blob``: fetch by hash."""
    parts: list[bytes] = []
    for item in layout:
        if isinstance(item, str):
            parts.append(item.encode())
        elif "b" in item:
            parts.append(blob(bytes.fromhex(item["b"])))
        else:
            gaps = item["m"]
            n = len(message_blobs)
            if gaps is None:
                gaps = ["", *([","] * max(n - 1, 0)), ""] if n else [""]
            parts.append(b"[")
            for k, data in enumerate(message_blobs):
                parts.append(gaps[k].encode())
                parts.append(data)
            parts.append(gaps[-1].encode() if n else gaps[0].encode())
            parts.append(b"]")
    return b"".join(parts)


def chain_ids(message_hashes: list[bytes]) -> list[bytes]:
    """Prefix-tree node id for each position: id_k = sha256(id_{k-1} || hash_k)."""
    ids: list[bytes] = []
    prev = b""
    for h in message_hashes:
        prev = sha256(prev + h)
        ids.append(prev)
    return ids
