"""One sync of the library: read the repository at its ref (``source``), apply it (``nexus.db.prompts``).
Used by ``nexus prompts sync`` and ``nexus dev``'s timer; in AWS the two halves run in two functions
(the fetch outside the VPC, the write inside it: ADR 0023)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import psycopg

from nexus import audit
from nexus.db import prompts as library
from nexus.prompts.source import read

# The library's source, for `nexus dev`'s timer and the CLI's defaults.
REPO = "NEXUS_PROMPTS_REPO"
REF = "NEXUS_PROMPTS_REF"
PATH = "NEXUS_PROMPTS_PATH"
INTERVAL_MIN = "NEXUS_PROMPTS_SYNC_MINUTES"
# A token for a private HTTPS repository (sent as the password of basic auth; GitHub, GitLab and
# Bitbucket take a token this way). In AWS: the stage's secret TOKEN_SECRET (under its prefix).
TOKEN = "NEXUS_PROMPTS_TOKEN"
TOKEN_SECRET = "nexus/prompts/token"
TOKEN_USER = "x-access-token"  # the user name sent with a token (GitHub's; the others ignore it)


@dataclass(frozen=True, slots=True)
class Source:
    repo: str
    ref: str | None = None
    path: str = ""

    @classmethod
    def from_env(cls) -> Source | None:
        repo = os.environ.get(REPO)
        if not repo:
            return None
        return cls(repo, os.environ.get(REF) or None, os.environ.get(PATH) or "")


def token_from_secret(value: str | None) -> tuple[str | None, str | None]:
    """(user name, token) from the token secret's value: the token itself, or a JSON object
    ``{"token": ..., "username": ...}`` (``{}``, as the stack creates it: no token, a public repository).
    Raises ValueError for JSON that is not such an object."""
    text = (value or "").strip()
    if not text:
        return None, None
    if not text.startswith("{"):
        return TOKEN_USER, text
    try:
        doc: Any = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise ValueError("the prompts token secret is not valid JSON (or a plain token)") from None
    token = doc.get("token") if isinstance(doc, dict) else None
    username = doc.get("username") if isinstance(doc, dict) else None
    if not isinstance(doc, dict) or not isinstance(token or "", str) or not isinstance(username or "", str):
        raise ValueError('the prompts token secret must be a token or {"token": "...", "username": "..."}')
    return (username or TOKEN_USER, token) if token else (None, None)


def sync(
    conninfo: str, source: Source, cache_base: Path, token: str | None = None, actor: str = "prompts-sync"
) -> library.SyncResult:
    """Raises SourceError when the repository cannot be read (nothing is changed then). The sync is
    written to the audit log as done by ``actor``."""
    token = token if token is not None else os.environ.get(TOKEN) or None
    snap = read(source.repo, source.ref, source.path, cache_base, TOKEN_USER if token else None, token)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        result = library.apply(conn, snap)
        where = f"{source.repo}@{source.ref or 'default'}:{source.path or '/'}"
        audit.record(conn, actor, "prompts.sync", where, result.summary())
        return result
