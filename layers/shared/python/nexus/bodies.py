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
from collections import OrderedDict
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
    chain: list[bytes] = field(default_factory=list)  # prefix-tree node id per message (chain_ids)
    # The decoded body, when it is a JSON object. Values may be shared with other bodies through the
    # PieceCache: treat them as read-only.
    parsed: dict[str, Any] | None = None


@dataclass(slots=True)
class Piece:
    text: str
    value: Any
    hash: bytes
    data: bytes


class PieceCache:
    """Pieces seen recently, so an identical one is recognised by a string comparison instead of being
    parsed and hashed again: the tools and system prompt of every request, and every message of the
    history a conversation resends. Slots say where a piece may recur: a top-level key, or the message
    that follows a given message-list prefix. Only objects, arrays and strings are cached: they are
    self-delimiting, so a cached text found at a position is exactly the value there.
    Bounded by total characters; least recently used slots go first."""

    def __init__(self, max_chars: int = 8_000_000, per_slot: int = 4) -> None:
        self.max_chars = max_chars
        self.per_slot = per_slot
        self._slots: OrderedDict[Any, list[Piece]] = OrderedDict()
        self._chars = 0

    def match(self, slot: Any, s: str, pos: int) -> Piece | None:
        pieces = self._slots.get(slot)
        if pieces:
            for piece in pieces:
                if s.startswith(piece.text, pos):
                    self._slots.move_to_end(slot)
                    return piece
        return None

    def add(self, slot: Any, piece: Piece) -> None:
        if piece.text[:1] not in ("{", "[", '"') or len(piece.text) > self.max_chars // 8:
            return
        pieces = self._slots.setdefault(slot, [])
        self._slots.move_to_end(slot)
        pieces.insert(0, piece)
        self._chars += len(piece.text)
        while len(pieces) > self.per_slot:
            self._chars -= len(pieces.pop().text)
        while self._chars > self.max_chars and self._slots:
            _, dropped = self._slots.popitem(last=False)
            self._chars -= sum(len(p.text) for p in dropped)


def _skip(s: str, i: int) -> int:
    n = len(s)
    while i < n and s[i] in _WS:
        i += 1
    return i


def _piece(s: str, start: int, cache: PieceCache | None, slot: Any) -> Piece:
    """The JSON value at ``start``: from the cache when this exact text was seen in this slot."""
    if cache is not None and (hit := cache.match(slot, s, start)) is not None:
        return hit
    value, end = _DECODER.raw_decode(s, start)
    text = s[start:end]
    data = text.encode()
    piece = Piece(text, value, sha256(data), data)
    if cache is not None:
        cache.add(slot, piece)
    return piece


def split_body(raw: bytes, cache: PieceCache | None = None) -> SplitBody:
    try:
        return _split_object(raw.decode("utf-8"), cache)
    except (UnicodeDecodeError, ValueError, IndexError, RecursionError):
        out = SplitBody(layout=[])
        h = sha256(raw)
        out.blobs[h] = raw
        out.layout.append({"b": h.hex()})
        return out


def _split_object(s: str, cache: PieceCache | None) -> SplitBody:
    parsed: dict[str, Any] = {}
    out = SplitBody(layout=[], parsed=parsed)
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
            if out.message_hashes or "messages" in parsed:
                raise ValueError("duplicate messages key")  # stored whole, so it stays exact
            value, v_end, gaps = _split_messages(out, s, v_start, cache)
            out.layout.append(s[lit:v_start])
            out.layout.append({"m": gaps})
            lit = v_end
        else:
            piece = _piece(s, v_start, cache, ("key", key))
            value, v_end = piece.value, v_start + len(piece.text)
            if len(piece.text) >= BLOB_MIN_CHARS:
                out.layout.append(s[lit:v_start])
                out.blobs[piece.hash] = piece.data
                out.layout.append({"b": piece.hash.hex()})
                lit = v_end
        parsed[key] = value
        pos = _skip(s, v_end)
        if s[pos] == ",":
            pos += 1
    out.layout.append(s[lit:])
    out.layout = [p for p in out.layout if p != ""]
    return out


def _split_messages(
    out: SplitBody, s: str, start: int, cache: PieceCache | None
) -> tuple[list[Any], int, list[str] | None]:
    values: list[Any] = []
    gaps: list[str] = []
    node = b""
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
        piece = _piece(s, j, cache, ("after", node))  # the message that follows this prefix
        values.append(piece.value)
        out.blobs[piece.hash] = piece.data
        out.message_hashes.append(piece.hash)
        node = sha256(node + piece.hash)
        out.chain.append(node)
        gap_start = pos = j + len(piece.text)
    compact = gaps[0] == "" and gaps[-1] == "" and all(g == "," for g in gaps[1:-1])
    if not values:
        compact = gaps == [""]
    return values, end, None if compact else gaps


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
