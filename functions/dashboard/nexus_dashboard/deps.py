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


def conversation_id_or_404(conn: psycopg.Connection, conversation_id: str) -> str:
    """The id, normalised, of a conversation that exists; 404 otherwise."""
    cid = _uuid(conversation_id, "conversation")
    if conn.execute("SELECT 1 FROM conversations WHERE id = %s", (cid,)).fetchone() is None:
        raise HTTPException(404, f"no conversation {conversation_id!r}")
    return cid


def request_id_or_404(request_id: str) -> str:
    return _uuid(request_id, "request")


def request_or_404(conn: psycopg.Connection, request_id: str) -> RequestDetail:
    row = queries.get_request(conn, request_id_or_404(request_id))
    if row is None:
        raise HTTPException(404, f"no request {request_id!r}")
    return row


def conversation_or_404(conn: psycopg.Connection, conversation_id: str, branch: str | None) -> Conversation:
    """The conversation laid out (``conversation_view.layout``), narrowed to ``branch`` if given:
    404 for an unknown conversation, 400 for a branch it does not have."""
    conv = queries.get_conversation(conn, _uuid(conversation_id, "conversation"))
    if conv is None:
        raise HTTPException(404, f"no conversation {conversation_id!r}")
    branch = branch or None
    if branch is not None and branch not in {b["name"] for b in conv["branches"]}:
        raise HTTPException(400, f"branch={branch!r}: this conversation has no such branch")
    return conversation_view.layout(conv, branch)
