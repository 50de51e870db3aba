"""One sync of the library: read the repository at its ref (``source``), apply it (``nexus.db.prompts``).
Used by ``nexus prompts sync`` and ``nexus dev``'s timer; in AWS the two halves run in two functions
(the fetch outside the VPC, the write inside it: ADR 0023)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

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
# Bitbucket take a token this way). In AWS: the secret named in the stage config.
TOKEN = "NEXUS_PROMPTS_TOKEN"


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


def sync(
    conninfo: str, source: Source, cache_base: Path, token: str | None = None, actor: str = "prompts-sync"
) -> library.SyncResult:
    """Raises SourceError when the repository cannot be read (nothing is changed then). The sync is
    written to the audit log as done by ``actor``."""
    token = token if token is not None else os.environ.get(TOKEN) or None
    snap = read(source.repo, source.ref, source.path, cache_base, "x-access-token" if token else None, token)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        result = library.apply(conn, snap)
        where = f"{source.repo}@{source.ref or 'default'}:{source.path or '/'}"
        audit.record(conn, actor, "prompts.sync", where, result.summary())
        return result
