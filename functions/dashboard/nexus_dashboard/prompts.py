"""The prompt library's read model (``nexus.db.prompts``): the library with use counts and the last
sync, and one prompt with its versions and recent use. The MCP side is ``mcp_prompts.py``."""

from __future__ import annotations

from typing import cast

import psycopg
from nexus.db import prompts as library

from nexus_dashboard.schemas import (
    PromptDetail,
    PromptLibrary,
    PromptSummary,
    PromptSync,
    PromptUse,
    PromptVersion,
)
from nexus_dashboard.scope import Scope


def library_data(conn: psycopg.Connection, query: str | None = None, removed: bool = False) -> PromptLibrary:
    # Rows from psycopg have the shapes' keys (FastAPI checks them at run time).
    rows = [cast(PromptSummary, r) for r in library.library(conn, query, include_removed=removed)]
    sync = library.last_sync(conn)
    return {"prompts": rows, "last_sync": cast(PromptSync, sync) if sync else None}


def prompt_data(
    conn: psycopg.Connection, name: str, scope: Scope, version: int | None = None
) -> PromptDetail | None:
    """The library is the whole stage's; its recent uses name teams and people, so a caller sees the
    uses of the teams ``scope`` may read (the counts stay the library's)."""
    row = library.version(conn, name, version)
    if row is None:
        return None
    versions = [cast(PromptVersion, v) for v in library.versions(conn, name)]
    return {
        "name": row["name"],
        "version": row["version"],
        "current_version": row["current_version"],
        "description": row["description"],
        "arguments": row["arguments"],
        "body": row["body"],
        "path": row["path"],
        "commit": row["commit"],
        "created_at": row["created_at"],
        "removed_at": row["removed_at"],
        "uses": sum(v["uses"] for v in versions),
        "versions": versions,
        "recent_uses": [cast(PromptUse, u) for u in library.usage(conn, name) if scope.allows(u["team"])],
    }
