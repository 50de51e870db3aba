"""The raw record the proxy hands off after each request, and its wire encoding.

The proxy captures bytes and timings only; everything derived (usage, cost, kind, the reconstructed
response) is computed at ingest, off the hot path (docs/adr/0002-raw-capture-derive-at-ingest.md).

Encoding: b"NXR1" + three big-endian u32 lengths (meta, request body, response body) + the parts.
Bodies travel as exact bytes: no JSON escaping or base64 on the hot path.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field, fields
from typing import Any

import orjson

MAGIC = b"NXR1"
_HEAD = struct.Struct(">4sIII")


class RecordDecodeError(ValueError):
    """A spooled or queued record that cannot be decoded (poison message)."""


@dataclass(slots=True)
class RawRecord:
    id: str
    received_at: float  # unix seconds
    method: str
    path: str
    query: str
    request_headers: list[list[str]]  # redacted, in arrival order
    status: int | None = None  # None: no response from upstream
    response_headers: list[list[str]] = field(default_factory=list)
    ttfb_ms: float | None = None
    duration_ms: float | None = None
    error: str | None = None  # proxy-side marker: client_disconnected, upstream_cut, ...
    team: str | None = None
    user: str | None = None
    key_id: str | None = None
    auth_mode: str | None = None
    account: str | None = None  # fingerprint of the upstream credential used
    upstream: str | None = None
    request_body: bytes = b""
    response_body: bytes = b""

    def header(self, name: str, headers: str = "request") -> str | None:
        pairs = self.request_headers if headers == "request" else self.response_headers
        for k, v in pairs:
            if k.lower() == name:
                return v
        return None

    def encode(self) -> bytes:
        # Built by hand: dataclasses.asdict deep-copies the header lists (hot path).
        head = orjson.dumps({name: getattr(self, name) for name in _META_FIELDS})
        req, resp = self.request_body, self.response_body
        return b"".join((_HEAD.pack(MAGIC, len(head), len(req), len(resp)), head, req, resp))

    @classmethod
    def decode(cls, data: bytes) -> RawRecord:
        try:
            magic, n_meta, n_req, n_resp = _HEAD.unpack_from(data)
        except struct.error as exc:
            raise RecordDecodeError("record shorter than its header") from exc
        if magic != MAGIC:
            raise RecordDecodeError(f"bad record magic {magic!r}")
        start = _HEAD.size
        if len(data) != start + n_meta + n_req + n_resp:
            raise RecordDecodeError("record length does not match its header (truncated?)")
        try:
            meta: dict[str, Any] = orjson.loads(data[start : start + n_meta])
            rec = cls(**meta)
        except (orjson.JSONDecodeError, TypeError) as exc:
            raise RecordDecodeError(f"bad record metadata: {exc}") from exc
        rec.request_body = data[start + n_meta : start + n_meta + n_req]
        rec.response_body = data[start + n_meta + n_req :]
        return rec


_META_FIELDS = tuple(f.name for f in fields(RawRecord) if f.name not in ("request_body", "response_body"))
