"""The dashboard app served over real HTTP by uvicorn in a thread of the test process, on a migrated
database with two teams' traffic recorded through the real ingest path: one process for a whole
test module (the role matrix, the OIDC sign-in)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
import uvicorn
from fastapi import FastAPI
from nexus.db.migrate import migrate
from nexus.db.records import KnownHashes
from nexus.record import RawRecord
from nexus_ingest.pipeline import ingest_batch

from tests.support import pg
from tests.support.conversations import conversation_records
from tests.support.stack import free_port

# Each team's traffic carries its own marker in prompts and answers: a page or an API response that
# shows another team's data shows its marker.
TEAMS = {"alpha": ("ann", "ALPHA-MARKER"), "bravo": ("bob", "BRAVO-MARKER")}


def recorded(team: str, turns: int = 2) -> list[RawRecord]:
    """One conversation of ``team``'s user, ``turns`` prompts each answered, as the proxy records it."""
    user, marker = TEAMS[team]
    return conversation_records(
        [f"{marker} question {i}" for i in range(turns)],
        [f"{marker} answer {i}" for i in range(turns)],
        team=team,
        user=user,
        key_id=f"key{team}",
        account=f"acct-{team}",
    )


def seed(url: str) -> dict[str, Any]:
    """Migrate, record a conversation per team through ingest, add an alert per team; each team's
    conversation and request ids."""
    migrate(url)
    with psycopg.connect(url) as conn:
        ingest_batch(conn, [r for team in TEAMS for r in recorded(team)], KnownHashes())
        ids = {}
        for team, (_, marker) in TEAMS.items():
            row = conn.execute(
                "SELECT conversation_id::text, id::text FROM requests WHERE team = %s ORDER BY received_at",
                (team,),
            ).fetchone()
            assert row is not None and row[0] is not None
            ids[team] = {"conversation": row[0], "request": row[1]}
            conn.execute(
                "INSERT INTO alerts (kind, level, team, subject, message, dedup_key, window_s)"
                " VALUES ('error_rate', 'warning', %s, %s, %s, %s, 3600)",
                (team, f"team:{team}", f"{marker} alert", f"dk-{team}"),
            )
    return ids


@dataclass
class Served:
    url: str
    database_url: str
    key: str
    app: FastAPI
    ids: dict[str, Any]


@contextmanager
def serve(app: FastAPI) -> Iterator[str]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the dashboard did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def database(pg_server: Any) -> str:
    return pg.create_database(pg_server.get_uri())
