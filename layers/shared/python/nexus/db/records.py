"""Writing prepared records to Postgres and reading them back (bodies reassembled exactly)."""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterable
from typing import Any

import orjson
import psycopg

from nexus.bodies import join_body
from nexus.db.tracking import link_request
from nexus.derive import Prepared
from nexus.record import RawRecord

log = logging.getLogger("nexus.ingest")


@functools.cache
def _insert_sql(columns: tuple[str, ...]) -> str:
    """INSERT for the columns ``nexus.derive.prepare`` fills (its row dict is the one column list)."""
    return (
        f"INSERT INTO requests ({', '.join(columns)}) VALUES ({', '.join(['%s'] * len(columns))})"
        " ON CONFLICT (id) DO NOTHING RETURNING id::text"
    )


_EMPTY = bytes(32)


class KnownHashes:
    """Hashes already in the database (blobs and chain nodes are never rewritten): skips the
    existence check for the pieces every request repeats (tools, system prompt, history).

    A fixed block of memory, not a dict: ``max_bytes`` holds ``max_bytes // 32`` SHA-256 hashes in
    sets of ``WAYS`` slots, the set picked by the hash's first bytes (uniform), least recently used
    slot replaced. A dict of bytes costs ~175 bytes a hash and grew a long-running ingest by 35 MB
    (bench/soak.py); this costs 32. Full hashes are compared, so a hit is never wrong; a miss only
    costs the existence check."""

    HASH = 32
    WAYS = 4

    def __init__(self, max_bytes: int = 8 << 20) -> None:
        row = self.HASH * self.WAYS
        sets = 1 << max(0, (max(max_bytes, row) // row).bit_length() - 1)  # a power of two
        self._mask = sets - 1
        self._table = bytearray(sets * row)
        self.capacity = sets * self.WAYS

    def _row(self, h: bytes) -> int | None:
        """Where ``h``'s set starts in the table; None for what is never cached (not a SHA-256, or
        the all-zero hash an unused slot reads as)."""
        if len(h) != self.HASH or h == _EMPTY:
            return None
        return (int.from_bytes(h[:8], "little") & self._mask) * self.HASH * self.WAYS

    def _touch(self, h: bytes, o: int) -> bool:
        """Whether ``h`` is in the set at ``o``; a hit becomes the set's most recently used."""
        t = self._table
        at = t.find(h, o, o + self.HASH * self.WAYS)
        if at < 0 or (at - o) % self.HASH:  # absent, or bytes across two slots that happen to match
            return False
        if at != o:
            t[o + self.HASH : at + self.HASH] = t[o:at]
            t[o : o + self.HASH] = h
        return True

    def __contains__(self, h: bytes) -> bool:
        o = self._row(h)
        return o is not None and self._touch(h, o)

    def add_all(self, hashes: Iterable[bytes]) -> None:
        t, last = self._table, self.HASH * (self.WAYS - 1)
        for h in hashes:
            o = self._row(h)
            if o is not None and not self._touch(h, o):
                t[o + self.HASH : o + self.HASH * self.WAYS] = t[o : o + last]  # the last one goes
                t[o : o + self.HASH] = h


def _missing(conn: psycopg.Connection, table: str, col: str, candidates: list[bytes]) -> set[bytes]:
    if not candidates:
        return set()
    rows = conn.execute(f"SELECT {col} FROM {table} WHERE {col} = ANY(%s)", (candidates,)).fetchall()
    return set(candidates) - {bytes(r[0]) for r in rows}


def write_batch(conn: psycopg.Connection, batch: list[Prepared], known: KnownHashes) -> set[str]:
    """Write a batch in one transaction. Idempotent: already-present ids are skipped. Returns the ids
    stored by this call (a re-delivered record is not among them)."""
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
            columns = tuple(batch[0].row) if batch else ()
            cur.executemany(
                _insert_sql(columns), [[p.row[c] for c in columns] for p in batch], returning=True
            )
            new: set[str] = set()
            while True:
                new.update(r[0] for r in cur.fetchall())
                if not cur.nextset():
                    break
            if new:
                # Dashboard rollups (migration 0003), for newly stored requests only: idempotent.
                cur.execute("SELECT nexus_roll_up(%s::uuid[])", (sorted(new),))
        # Link in arrival order at the proxy, so parents usually come before their children.
        for p in sorted(batch, key=lambda p: (p.row["received_at"], p.row["id"])):
            if p.link is not None and p.row["id"] in new:
                try:
                    with conn.transaction():  # a savepoint: a linking failure never loses the record
                        link_request(conn, p.link)
                except psycopg.OperationalError:
                    raise
                except Exception:
                    log.exception(
                        "request %s stored but not linked (nexus tracking rebuild links it)", p.row["id"]
                    )
    known.add_all(blobs)
    known.add_all(chain)
    return new


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


PROXY_ERRORS = ("client_disconnected", "upstream_", "cancelled")


def raw_records(conn: psycopg.Connection, where: str = "TRUE", args: tuple[Any, ...] = ()) -> list[RawRecord]:
    """Stored requests as records the proxy could have handed over, for `tracking rebuild` and
    re-ingest: request bodies exact, headers as stored (already redacted). A complete stream was
    stored as its rebuilt message only, so it comes back as that message in a JSON body, which
    ingest derives the same usage, answer and keys from."""
    rows = conn.execute(
        "SELECT id::text, extract(epoch FROM received_at)::float8, method, path, query, request_headers,"
        " status, response_headers, ttfb_ms, duration_ms, error, team, user_id, key_id, auth_mode, account,"
        " upstream, body_layout, messages_chain, response_raw, response FROM requests"
        f" WHERE {where} ORDER BY received_at, id",
        args,
    ).fetchall()
    out = []
    for r in rows:
        headers = fetch_blobs(conn, [bytes(r[5])]).get(bytes(r[5])) if r[5] is not None else None
        raw, rebuilt = r[19], r[20]
        response_headers = r[7]
        if raw is None and rebuilt is not None:
            raw = orjson.dumps(rebuilt)
            response_headers = [
                [k, v] for k, v in response_headers if k not in ("content-type", "content-encoding")
            ]
            response_headers.append(["content-type", "application/json"])
        proxy_error = r[10] and (r[10].startswith(PROXY_ERRORS) or (raw is None and rebuilt is None))
        rec = RawRecord(
            id=r[0],
            received_at=r[1],
            method=r[2],
            path=r[3],
            query=r[4],
            request_headers=orjson.loads(headers) if headers else [],
            status=r[6],
            response_headers=response_headers,
            ttfb_ms=r[8],
            duration_ms=r[9],
            error=r[10] if proxy_error else None,  # upstream errors are derived again from the body
            team=r[11],
            user=r[12],
            key_id=r[13],
            auth_mode=r[14],
            account=r[15],
            upstream=r[16],
        )
        rec.request_body = request_body(conn, r[17], bytes(r[18]) if r[18] is not None else None)
        rec.response_body = bytes(raw) if raw is not None else b""
        out.append(rec)
    return out
