"""The client secrets the test suite uses, and the scan that proves Nexus kept none of them.

Registry: the suite's fixed test credentials are defined here (``CLAUDE_CODE_KEY``...) and imported
where they are used; what fixtures create at run time is registered as it is made (``Stack.nexus``
registers the Nexus keys ``nexus keys create`` prints and the credentials given to ``nexus teams``
on stdin); every `nexus dev` data directory is registered by ``Stack``. At scan time the team
credentials found in the registered data directories' secret stores are added, and any string of the
shape of a Nexus key counts even if nobody registered it.

Scanned after the suite (``tests/test_secrets_scan.py``, sorted last):
- the registered data directories, whole: spool (segments, cursors, dead letters), logs, the
  gateway's workspaces, an embedded PostgreSQL's files;
- every ``*.log`` under the session's temporary directory (proxies run on their own, workers);
- every database of the session's PostgreSQL server, every column of every row, read through SQL
  (so compressed values are seen decompressed);
- what every test printed and logged (pytest's captured stdout, stderr and log), as it finishes.
Directories a fixture removes before the end are scanned when it removes them (``scan_now``).

Where a client secret may legitimately be, and so is not scanned:
- the local secret store, ``secrets.json`` in a data directory (with its ``.tmp`` and ``.lock``
  siblings): it is where team credentials are kept, on purpose (mode 0600), as Secrets Manager is in
  AWS (moto keeps that in memory);
- the clients' own machines: the home directories the tests give Claude Code, Codex and the SDKs
  (a client keeps its own credential), and the tests' own source and tracebacks (a failing test's
  report shows its literals; only captured output is scanned);
- the fake upstream's and fake OAuth server's memory (they stand for Anthropic, which receives the
  credential by design).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# --- the registry -----------------------------------------------------------------------------------

# Fixed credentials the suite sends. Every one is at least 10 characters: short enough values would
# match by chance.
CLAUDE_CODE_KEY = "sk-ant-api03-test-secret-value"  # Claude Code's x-api-key (tests.integration.http)
CLI_KEY = "sk-ant-api03-cli-test-key"  # the real Claude Code CLI's ANTHROPIC_API_KEY
GATEWAY_TEAM_KEY = "sk-ant-api03-team-gw-secret"  # the gateway tests' team-key team
ABUSE_KEYS = ("sk-ant-api03-abuse-one", "sk-ant-api03-abuse-two", "sk-ant-oat01-abuse-token")

MIN_LENGTH = 10
SECRET_STORE_FILES = frozenset({"secrets.json", "secrets.tmp", "secrets.lock"})
# A Nexus key as ``nexus.access`` makes them: id (10 hex) and 24 random bytes, base64url.
NEXUS_KEY = re.compile(rb"nxk_[0-9a-f]{10}_[A-Za-z0-9_-]{32}(?![A-Za-z0-9_-])")
_CANDIDATE = re.compile(rb"(?:sk-ant-|nxk_)[A-Za-z0-9_\-]*")

_secrets: set[str] = {CLAUDE_CODE_KEY, CLI_KEY, GATEWAY_TEAM_KEY, *ABUSE_KEYS}
_data_dirs: list[Path] = []
_findings: list[Finding] = []
_outputs: dict[str, set[bytes]] = {}  # where -> secret-shaped tokens printed there
_remove: list[Path] = []


def register(secret: str) -> str:
    """A credential a test made or sent; returns it. Too short ones are not scanned for."""
    secret = secret.strip()
    if len(secret) >= MIN_LENGTH:
        _secrets.add(secret)
    return secret


def register_output(text: str) -> None:
    """Register every Nexus key in ``text`` (what ``nexus keys create`` printed)."""
    for key in NEXUS_KEY.findall(text.encode(errors="replace")):
        register(key.decode())


def register_data_dir(path: Path) -> Path:
    if path not in _data_dirs:
        _data_dirs.append(path)
    return path


def data_dirs() -> list[Path]:
    return list(_data_dirs)


def remove_after_session(path: Path) -> Path:
    """A directory outside pytest's own to delete once the session (and its scan) is over."""
    _remove.append(path)
    return path


def directories_to_remove() -> list[Path]:
    return list(_remove)


def watch_output(where: str, text: str) -> None:
    """Keep what in ``text`` (a test's captured output) could be a credential, for the scan at the
    end (credentials made later in the session are checked too). Secrets of other shapes are
    checked now."""
    data = text.encode(errors="replace")
    tokens = set(_CANDIDATE.findall(data))
    if tokens:
        _outputs.setdefault(where, set()).update(tokens)
    others = [s for s in _secrets if not _CANDIDATE.match(s.encode())]
    if others:
        note(Scanner(others).data(data, where))


def output_findings(secrets: Iterable[str]) -> list[Finding]:
    scanner = Scanner(secrets)
    return [f for where, tokens in _outputs.items() for f in scanner.data(b"\n".join(sorted(tokens)), where)]


def known() -> set[str]:
    return set(_secrets)


def findings() -> list[Finding]:
    return list(_findings)


def note(found: Iterable[Finding]) -> None:
    _findings.extend(found)


# --- the scan ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Finding:
    where: str
    secret: str  # masked: the scan's own report must not leak it

    def __str__(self) -> str:
        return f"{self.where}: {self.secret}"


def mask(secret: str) -> str:
    return secret[:14] + "..." + f"({len(secret)} chars)"


class Scanner:
    """Finds ``secrets`` (and anything shaped like a Nexus key) in bytes, files, trees, databases."""

    def __init__(self, secrets: Iterable[str]) -> None:
        wanted = {s.encode() for s in secrets if len(s) >= MIN_LENGTH}
        self.prefixed = {s for s in wanted if _CANDIDATE.match(s)}
        self.others = sorted(wanted - self.prefixed)
        self.lengths = sorted({len(s) for s in self.prefixed})
        self.files = 0
        self.databases = 0

    def data(self, data: bytes, where: str) -> list[Finding]:
        hits: set[bytes] = set()
        for m in _CANDIDATE.finditer(data):
            token = m.group()
            hits.update(token[:n] for n in self.lengths if token[:n] in self.prefixed)
            if NEXUS_KEY.fullmatch(token):
                hits.add(token)
        hits.update(s for s in self.others if s in data)
        return [Finding(where, mask(h.decode(errors="replace"))) for h in sorted(hits)]

    def file(self, path: Path) -> list[Finding]:
        try:
            data = path.read_bytes()
        except OSError:
            return []  # gone meanwhile, or a socket
        self.files += 1
        return self.data(data, str(path))

    def tree(self, root: Path) -> list[Finding]:
        """Every regular file under ``root`` but the secret store's."""
        out: list[Finding] = []
        for path in _files(root):
            if path.name not in SECRET_STORE_FILES:
                out += self.file(path)
        return out

    def database(self, conninfo: str) -> list[Finding]:
        """Every column of every row of every user table of every database on the server."""
        import psycopg

        out: list[Finding] = []
        with psycopg.connect(conninfo, autocommit=True) as conn:
            names = [
                r[0]
                for r in conn.execute(
                    "SELECT datname FROM pg_database"
                    " WHERE datallowconn AND datname NOT IN ('template0', 'template1')"
                )
            ]
        for name in names:
            out += self.one_database(_with_database(conninfo, name))
        return out

    def one_database(self, conninfo: str) -> list[Finding]:
        """Every column of every row of every user table of the database ``conninfo`` names."""
        import psycopg
        from psycopg import sql

        name = conninfo.partition("?")[0].rsplit("/", 1)[1]
        out: list[Finding] = []
        try:
            conn = psycopg.connect(conninfo, autocommit=True)
        except psycopg.OperationalError:
            return []  # dropped meanwhile
        self.databases += 1
        with conn:
            tables = conn.execute(
                "SELECT table_schema, table_name,"
                " array_agg(column_name::text ORDER BY ordinal_position),"
                " array_agg(data_type::text ORDER BY ordinal_position)"
                " FROM information_schema.columns"
                " WHERE table_schema NOT IN ('pg_catalog', 'information_schema') GROUP BY 1, 2"
            ).fetchall()
            for schema, table, columns, types in tables:
                cols = [
                    sql.Identifier(c) if t == "bytea" else sql.SQL("{}::text").format(sql.Identifier(c))
                    for c, t in zip(columns, types, strict=True)
                ]
                query = sql.SQL("SELECT {} FROM {}.{}").format(
                    sql.SQL(", ").join(cols), sql.Identifier(schema), sql.Identifier(table)
                )
                with conn.cursor() as cur:
                    cur.execute(query)
                    while rows := cur.fetchmany(500):
                        chunk = b"\n".join(_as_bytes(v) for row in rows for v in row)
                        for f in self.data(chunk, f"database {name}, table {schema}.{table}"):
                            if f not in out:
                                out.append(f)
        return out


def _as_bytes(value: Any) -> bytes:
    if value is None:
        return b""
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    return str(value).encode(errors="replace")


def _with_database(conninfo: str, name: str) -> str:
    head, sep, tail = conninfo.partition("?")
    return head.rsplit("/", 1)[0] + "/" + name + sep + tail


def _files(root: Path) -> Iterator[Path]:
    if not root.exists():
        return
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.is_symlink():
            yield path


def store_credentials(root: Path) -> set[str]:
    """Team credentials in the secret stores under ``root``: Anthropic API keys and OAuth tokens."""
    out: set[str] = set()
    for store in root.rglob("secrets.json"):
        try:
            doc = json.loads(store.read_text())
        except (OSError, ValueError):
            continue
        for name, value in doc.items():
            if not isinstance(value, str) or not name.startswith("nexus/team/"):
                continue
            if name.endswith("/anthropic-api-key"):
                out.add(value)
            elif name.endswith("/oauth"):
                try:
                    tokens = json.loads(value)
                except ValueError:
                    continue
                out.update(str(tokens.get(k, "")) for k in ("access_token", "refresh_token"))
    return {s for s in out if len(s) >= MIN_LENGTH}


def scan_now(root: Path) -> None:
    """Scan a data directory about to be removed; what it finds is reported with the rest."""
    secrets = known() | store_credentials(root)
    note(Scanner(secrets).tree(root))
