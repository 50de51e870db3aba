"""Plain versioned SQL migrations (``migrations/NNNN_name.sql``), applied in order, once each.

An advisory lock makes concurrent runs (two processes starting, a deploy hook racing a CLI) safe.
"""

from __future__ import annotations

import re
from pathlib import Path

import psycopg

MIGRATIONS = Path(__file__).with_name("migrations")
_LOCK_ID = 0x4E455855  # "NEXU"
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


def available() -> list[tuple[int, str, Path]]:
    out = []
    for path in sorted(MIGRATIONS.glob("*.sql")):
        m = _NAME.match(path.name)
        if not m:
            raise ValueError(f"badly named migration {path.name}: want NNNN_name.sql")
        out.append((int(m.group(1)), m.group(2), path))
    return out


def migrate(conninfo: str) -> list[str]:
    """Apply pending migrations; returns the names applied."""
    applied: list[str] = []
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_ID,))
        try:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version integer PRIMARY KEY, name text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {v for (v,) in conn.execute("SELECT version FROM schema_migrations")}
            for version, name, path in available():
                if version in done:
                    continue
                with conn.transaction():
                    conn.execute(path.read_text())
                    conn.execute(
                        "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)", (version, name)
                    )
                applied.append(f"{version:04d}_{name}")
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_ID,))
    return applied
