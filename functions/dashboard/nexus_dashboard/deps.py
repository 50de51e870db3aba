"""Request-scoped dependencies shared by the pages and the API: a pooled connection, the access
store, and ids parsed into rows or a 404."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Annotated

import psycopg
from fastapi import Depends, HTTPException, Request
from nexus.access import AccessStore
from nexus.analysis.launch import Launcher

from nexus_dashboard import conversation_view, queries
from nexus_dashboard.schemas import Conversation, RequestDetail
from nexus_dashboard.scope import Scope


def _conn(request: Request) -> Iterator[psycopg.Connection]:
    with request.app.state.pool.connection() as conn:
        yield conn


def _access(request: Request) -> AccessStore:
    store = request.app.state.secret_store
    if store is None:
        raise HTTPException(503, "key management is not configured for this dashboard (no secret store)")
    return AccessStore(store)


def _launcher(request: Request) -> Launcher:
    launcher: Launcher = request.app.state.launcher
    return launcher


Conn = Annotated[psycopg.Connection, Depends(_conn)]
Access = Annotated[AccessStore, Depends(_access)]
Launch = Annotated[Launcher, Depends(_launcher)]


def _uuid(value: str, what: str) -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise HTTPException(404, f"no {what} {value!r}") from None


def _visible(conn: psycopg.Connection, scope: Scope, table: str, row_id: str, what: str, sent: str) -> str:
    """``row_id`` if the row exists and ``scope`` may read it; 404 otherwise (another team's row does
    not exist for the caller: the answer must not tell it apart from an unknown id)."""
    exists, team = queries.team_of(conn, table, row_id)
    if not exists or not scope.allows(team):
        raise HTTPException(404, f"no {what} {sent!r}")
    return row_id


def conversation_id_or_404(conn: psycopg.Connection, scope: Scope, conversation_id: str) -> str:
    """The id, normalised, of a conversation that exists and the caller may read; 404 otherwise."""
    cid = _uuid(conversation_id, "conversation")
    return _visible(conn, scope, "conversations", cid, "conversation", conversation_id)


def request_id_or_404(conn: psycopg.Connection, scope: Scope, request_id: str) -> str:
    """The id, normalised, of a request that exists and the caller may read; 404 otherwise."""
    return _visible(conn, scope, "requests", _uuid(request_id, "request"), "request", request_id)


def request_or_404(conn: psycopg.Connection, scope: Scope, request_id: str) -> RequestDetail:
    row = queries.get_request(conn, request_id_or_404(conn, scope, request_id))
    if row is None:
        raise HTTPException(404, f"no request {request_id!r}")
    return row


def conversation_or_404(
    conn: psycopg.Connection, scope: Scope, conversation_id: str, branch: str | None
) -> Conversation:
    """The conversation laid out (``conversation_view.layout``), narrowed to ``branch`` if given:
    404 for an unknown conversation or one the caller may not read, 400 for a branch it does not have."""
    conv = queries.get_conversation(conn, conversation_id_or_404(conn, scope, conversation_id))
    if conv is None:
        raise HTTPException(404, f"no conversation {conversation_id!r}")
    branch = branch or None
    if branch is not None and branch not in {b["name"] for b in conv["branches"]}:
        raise HTTPException(400, f"branch={branch!r}: this conversation has no such branch")
    return conversation_view.layout(conv, branch)
