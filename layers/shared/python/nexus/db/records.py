"""Writing prepared records to Postgres and reading them back (bodies reassembled exactly)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

import psycopg

from nexus.bodies import join_body
from nexus.db.tracking import link_request
from nexus.ingest import Prepared

COLUMNS = [
    "id",
    "received_at",
    "team",
    "user_id",
    "key_id",
    "auth_mode",
    "account",
    "session_id",
    "agent_id",
    "method",
    "path",
    "query",
    "model",
    "kind",
    "stream",
    "status",
    "error",
    "stop_reason",
    "input_tokens",
    "output_tokens",
    "cache_creation_input_tokens",
    "cache_creation_5m_tokens",
    "cache_creation_1h_tokens",
    "cache_read_input_tokens",
    "cost_usd",
    "cost_flag",
    "price_version",
    "ttfb_ms",
    "duration_ms",
    "upstream",
    "request_headers",
    "response_headers",
    "ratelimit",
    "body_layout",
    "messages_chain",
    "message_count",
    "body_size",
    "response",
    "response_raw",
]
_INSERT = (
    f"INSERT INTO requests ({', '.join(COLUMNS)}) VALUES ({', '.join(['%s'] * len(COLUMNS))}) "
    "ON CONFLICT (id) DO NOTHING RETURNING id::text"
)


class KnownHashes:
    """Hashes already in the database (blobs and chain nodes are never rewritten): skips the
    existence check for the pieces every request repeats (tools, system prompt, history)."""

    def __init__(self, capacity: int = 200_000) -> None:
        self.capacity = capacity
        self._seen: OrderedDict[bytes, None] = OrderedDict()

    def __contains__(self, h: bytes) -> bool:
        if h in self._seen:
            self._seen.move_to_end(h)
            return True
        return False

    def add_all(self, hashes: Iterable[bytes]) -> None:
        for h in hashes:
            self._seen[h] = None
            self._seen.move_to_end(h)
        while len(self._seen) > self.capacity:
            self._seen.popitem(last=False)


def _missing(conn: psycopg.Connection, table: str, col: str, candidates: list[bytes]) -> set[bytes]:
    if not candidates:
        return set()
    rows = conn.execute(f"SELECT {col} FROM {table} WHERE {col} = ANY(%s)", (candidates,)).fetchall()
    return set(candidates) - {bytes(r[0]) for r in rows}


def write_batch(conn: psycopg.Connection, batch: list[Prepared], known: KnownHashes) -> int:
    """Write a batch in one transaction. Idempotent: already-present ids are skipped. Returns rows new."""
    blobs: dict[bytes, bytes] = {}
    chain: dict[bytes, tuple[bytes, bytes | None, bytes, int]] = {}
    for p in batch:
        for h, data in p.blobs.items():
            if h not in known:
                blobs[h] = data
        for node in p.chain:
            if node[0] not in known:
                chain[node[0]] = node
    with conn.transaction():
        new_blobs = _missing(conn, "blobs", "hash", list(blobs))
        new_nodes = _missing(conn, "message_chains", "id", list(chain))
        with conn.cursor() as cur:
            if new_blobs:
                cur.executemany(
                    "INSERT INTO blobs (hash, data) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                    [(h, blobs[h]) for h in new_blobs],
                )
            if new_nodes:
                cur.executemany(
                    "INSERT INTO message_chains (id, parent_id, message_hash, depth) "
                    "VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING",
                    [chain[n] for n in new_nodes],
                )
            # executemany pipelines the inserts; RETURNING tells which ids are new (re-ingest: none).
            cur.executemany(_INSERT, [[p.row[c] for c in COLUMNS] for p in batch], returning=True)
            new: set[str] = set()
            while True:
                new.update(r[0] for r in cur.fetchall())
                if not cur.nextset():
                    break
        # Link in arrival order at the proxy, so parents usually come before their children.
        for p in sorted(batch, key=lambda p: (p.row["received_at"], p.row["id"])):
            if p.link is not None and p.row["id"] in new:
                link_request(conn, p.link)
        inserted = len(new)
    known.add_all(blobs)
    known.add_all(chain)
    return inserted


def message_hashes(conn: psycopg.Connection, chain_id: bytes | None) -> list[bytes]:
    if chain_id is None:
        return []
    rows = conn.execute(
        "WITH RECURSIVE c AS ("
        " SELECT id, parent_id, message_hash, depth FROM message_chains WHERE id = %s"
        " UNION ALL SELECT m.id, m.parent_id, m.message_hash, m.depth"
        " FROM message_chains m JOIN c ON m.id = c.parent_id)"
        " SELECT message_hash FROM c ORDER BY depth",
        (chain_id,),
    ).fetchall()
    return [bytes(r[0]) for r in rows]


def fetch_blobs(conn: psycopg.Connection, hashes: Iterable[bytes]) -> dict[bytes, bytes]:
    wanted = list(set(hashes))
    if not wanted:
        return {}
    rows = conn.execute("SELECT hash, data FROM blobs WHERE hash = ANY(%s)", (wanted,)).fetchall()
    return {bytes(h): bytes(d) for h, d in rows}


def request_body(conn: psycopg.Connection, layout: list[Any] | None, chain_id: bytes | None) -> bytes:
    """The exact request body bytes as the client sent them."""
    if layout is None:
        return b""
    msgs = message_hashes(conn, chain_id)
    refs = [bytes.fromhex(i["b"]) for i in layout if isinstance(i, dict) and "b" in i]
    data = fetch_blobs(conn, [*msgs, *refs])
    return join_body(layout, [data[h] for h in msgs], data.__getitem__)
