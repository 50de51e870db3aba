"""After every other test: no client secret the suite used was kept by Nexus in its data
directories (spools, logs, embedded databases), in any database of the session's PostgreSQL, in
any other log, or in what the tests printed. What is scanned, what may hold a secret and why:
tests/support/secret_scan.py."""

from __future__ import annotations

import uuid
from pathlib import Path

import psycopg
import pytest

from tests.support import pg, secret_scan
from tests.support.secret_scan import Scanner

pytestmark = pytest.mark.after_everything


def test_the_scan_finds_a_secret_planted_where_it_looks(pg_server, tmp_path: Path) -> None:
    """The scan can fail: a secret planted in a database (in a large, compressed value and in
    bytes) and in a spool file is found; the same secret in the secret store is not reported."""
    secret = f"sk-ant-api03-planted-{uuid.uuid4().hex}"
    url = pg.create_database(pg_server.get_uri())
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE planted (note text, raw bytea)")
        conn.execute(
            "INSERT INTO planted VALUES (%s, %s)", ("x" * 100_000 + secret + "y" * 100_000, secret.encode())
        )
    (tmp_path / "spool" / "segments").mkdir(parents=True)
    (tmp_path / "spool" / "segments" / "1-2-3.seg").write_bytes(b"NXS1\x00" + secret.encode() + b"\x00")
    (tmp_path / "secrets.json").write_text(f'{{"nexus/team/t/anthropic-api-key": "{secret}"}}')
    try:
        scanner = Scanner({secret})
        in_db = [f.where for f in scanner.one_database(url)]
        assert in_db == [f"database {url.split('?')[0].rsplit('/', 1)[1]}, table public.planted"], in_db
        assert [f.where for f in scanner.tree(tmp_path)] == [
            str(tmp_path / "spool" / "segments" / "1-2-3.seg")
        ]
        assert secret in secret_scan.store_credentials(tmp_path)
    finally:
        with psycopg.connect(pg_server.get_uri(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE "{url.split("?")[0].rsplit("/", 1)[1]}" WITH (FORCE)')


def test_no_client_secret_was_kept(pg_server, tmp_path_factory: pytest.TempPathFactory) -> None:
    dirs = [d for d in secret_scan.data_dirs() if d.exists()]
    secrets = secret_scan.known()
    for d in dirs:
        secrets |= secret_scan.store_credentials(d)
    scanner = Scanner(secrets)
    found = secret_scan.findings() + secret_scan.output_findings(secrets)
    for d in dirs:
        found += scanner.tree(d)
    base = tmp_path_factory.getbasetemp()
    logs = [p for p in base.rglob("*.log") if not any(p.is_relative_to(d) for d in dirs)]
    for log in logs:
        found += scanner.file(log)
    found += scanner.database(pg_server.get_uri())
    print(
        f"scanned for {len(secrets)} client secrets: {scanner.files} files ({len(dirs)} data directories, "
        f"{len(logs)} other logs), {scanner.databases} databases, the output of every test"
    )
    assert not found, "client secrets kept where they must not be:\n" + "\n".join(map(str, found))
