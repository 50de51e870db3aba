"""Access for people (ADR 0025), as JSON under ``/api/`` and as pages: a person's own sessions,
the users and everyone's sign-ins (admins), service tokens (admins) and the audit log (admins).
``scope.authorize`` keeps the admin areas (``/users``, ``/sign-ins``, ``/tokens``, ``/audit``) to
admins; ``/sessions`` is each caller's own."""

from __future__ import annotations

from typing import Annotated, Any, cast

import psycopg
from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from nexus import accounts, audit
from pydantic import BaseModel, ConfigDict, Field

from nexus_dashboard import audit_log, schemas, service_tokens, sessions
from nexus_dashboard.audit_log import AuditTrail
from nexus_dashboard.auth import Caller, form_fields
from nexus_dashboard.deps import Conn
from nexus_dashboard.filters import Name, Timestamp
from nexus_dashboard.keys import KeyName
from nexus_dashboard.pages import page
from nexus_dashboard.scope import Principal
from nexus_dashboard.throttle import client_address

api = APIRouter(prefix="/api")
pages = APIRouter(include_in_schema=False)

# Path parameters are plain text: an id or name of the wrong form names nothing (404), as elsewhere.
_CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {
        "description": "The fields contradict each other: a member or viewer token without teams.",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }
}


class NewToken(BaseModel):
    """The JSON body that creates a service token."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"name": "ci", "role": "viewer", "teams": ["web"], "days": 90}]},
    )
    name: KeyName
    role: schemas.RoleName
    teams: list[KeyName] = Field(
        default_factory=list, max_length=50, description="the teams it may read (ignored for admin tokens)"
    )
    days: int = Field(90, ge=1, le=service_tokens.MAX_DAYS, description="it expires this many days from now")


def _sessions(request: Request, conn: psycopg.Connection, name: str | None) -> list[schemas.SessionRow]:
    mine = getattr(request.state, "session", None)
    current = mine.token_hash.hex() if mine else None
    return [
        cast(schemas.SessionRow, {**r, "current": r["id"] == current}) for r in sessions.listed(conn, name)
    ]


def _users(conn: psycopg.Connection) -> list[schemas.UserRow]:
    live: dict[str, int] = dict(
        conn.execute(
            "SELECT principal, count(*)::int FROM dashboard_sessions WHERE revoked_at IS NULL"
            " AND expires_at > now() AND principal LIKE 'user:%' GROUP BY principal"
        ).fetchall()
    )
    return [
        {
            "name": u.name,
            "principal": u.principal,
            "role": cast(schemas.RoleName, u.role),
            "teams": u.teams,
            "created_at": u.created_at,
            "updated_at": u.updated_at,
            "live_sessions": live.get(u.principal, 0),
        }
        for u in accounts.listed(conn)
    ]


def _sign_ins(request: Request, conn: psycopg.Connection) -> list[schemas.SessionRow]:
    """Every live session: local users, people signed in through OIDC, the dashboard key's."""
    return [s for s in _sessions(request, conn, None) if s["live"]]


def _end_sign_in(conn: psycopg.Connection, log: audit_log.Auditor, session_id: str) -> None:
    whose = sessions.revoke_id(conn, session_id, None)
    if whose is None:
        raise HTTPException(404, f"no live session {session_id!r}")
    log("session.end", whose, {"session": session_id[:16]})


def _tokens(conn: psycopg.Connection) -> list[schemas.TokenRow]:
    return [cast(schemas.TokenRow, r) for r in service_tokens.listed(conn)]


def _end_user_sessions(conn: psycopg.Connection, log: audit_log.Auditor, name: str) -> int:
    if accounts.get(conn, name) is None:
        raise HTTPException(404, f"no user {name!r}")
    ended = sessions.revoke_all(conn, accounts.principal_name(name))
    conn.commit()
    log("user.sessions-end", name, {"sessions_ended": ended})
    return ended


def _create_token(
    conn: psycopg.Connection, request: Request, who: Principal, fields: dict[str, Any]
) -> tuple[str, schemas.TokenRow]:
    token, row = service_tokens.create(
        conn,
        who.name,
        str(fields.get("name") or ""),
        str(fields.get("role") or ""),
        list(fields.get("teams") or []),
        int(fields.get("days") or 90),
        client_address(request),
    )
    return token, cast(schemas.TokenRow, row)


# JSON


@api.get("/sessions", summary="The caller's own sign-in sessions, live first")
def list_own_sessions(request: Request, conn: Conn, who: Caller) -> schemas.SessionList:
    return {"sessions": _sessions(request, conn, who.name)}


@api.post("/sessions/{session_id}/revoke", summary="End one of the caller's own sessions")
def revoke_own_session(conn: Conn, who: Caller, session_id: str) -> schemas.EndedSessions:
    if not sessions.revoke_id(conn, session_id, who.name):
        raise HTTPException(404, f"no live session {session_id!r} of {who.name}")
    return {"ended": 1}


@api.get("/users", summary="Local users (nexus users add), their roles, teams and live sessions")
def list_users(conn: Conn) -> schemas.UserList:
    return {"users": _users(conn)}


@api.get("/users/{name}/sessions", summary="A user's sessions, live first")
def list_user_sessions(request: Request, conn: Conn, name: str) -> schemas.SessionList:
    if accounts.get(conn, name) is None:
        raise HTTPException(404, f"no user {name!r}")
    return {"sessions": _sessions(request, conn, accounts.principal_name(name))}


@api.post("/users/{name}/sessions/revoke", summary="End every session of a user (they sign in again)")
def end_user_sessions(conn: Conn, log: AuditTrail, name: str) -> schemas.EndedSessions:
    return {"ended": _end_user_sessions(conn, log, name)}


@api.get("/sign-ins", summary="Every live sign-in session (local users, OIDC, the dashboard key)")
def list_sign_ins(request: Request, conn: Conn) -> schemas.SessionList:
    return {"sessions": _sign_ins(request, conn)}


@api.post("/sign-ins/{session_id}/revoke", summary="End anyone's session (they sign in again)")
def end_sign_in(conn: Conn, log: AuditTrail, session_id: str) -> schemas.EndedSessions:
    _end_sign_in(conn, log, session_id)
    return {"ended": 1}


@api.get("/tokens", summary="Service tokens: role, teams, expiry; never the token")
def list_tokens(conn: Conn) -> schemas.TokenList:
    return {"tokens": _tokens(conn)}


@api.post(
    "/tokens",
    status_code=201,
    summary="Create a service token; the response is the only time it is shown",
    responses=_CONFLICT,
)
def create_token(request: Request, conn: Conn, who: Caller, body: NewToken) -> schemas.CreatedToken:
    try:
        token, row = _create_token(conn, request, who, body.model_dump())
    except service_tokens.TokenInputError as exc:
        raise HTTPException(409, str(exc)) from None
    return {"token": token, "record": row}


@api.post("/tokens/{token_id}/revoke", summary="Revoke a service token: refused from the next request")
def revoke_token(request: Request, conn: Conn, who: Caller, token_id: str) -> schemas.RevokedToken:
    revoked = service_tokens.revoke(conn, who.name, token_id, client_address(request))
    if revoked is None:
        raise HTTPException(404, f"no token {token_id!r}")
    return {"id": token_id, "revoked_at": revoked}


AuditLimit = Annotated[int, Query(ge=1, le=10_000)]
AuditSince = Annotated[Timestamp | None, Query(description="only actions at or after this time")]


@api.get("/audit", summary="The audit log of admin actions, newest first")
def get_audit(
    conn: Conn,
    limit: AuditLimit = 200,
    actor: Annotated[Name | None, Query()] = None,
    action: Annotated[Name | None, Query()] = None,
    since: AuditSince = None,
) -> schemas.AuditLog:
    return {"entries": audit_log.entries(conn, limit, actor or None, action or None, since)}


@api.get(
    "/audit.csv",
    summary="The audit log as CSV",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}}}},
)
def get_audit_csv(
    conn: Conn,
    limit: AuditLimit = 10_000,
    actor: Annotated[Name | None, Query()] = None,
    action: Annotated[Name | None, Query()] = None,
    since: AuditSince = None,
) -> Response:
    rows = audit.recent(conn, limit, actor or None, action or None, since)
    return Response(
        audit.to_csv(rows),
        media_type="text/csv; charset=utf-8",
        headers={"content-disposition": 'attachment; filename="nexus-audit.csv"'},
    )


# Pages


@pages.get("/sessions")
def sessions_page(request: Request, conn: Conn, who: Caller) -> HTMLResponse:
    return page(request, "sessions.html", "/sessions", rows=_sessions(request, conn, who.name))


@pages.post("/sessions/{session_id}/revoke")
def revoke_own_session_page(conn: Conn, who: Caller, session_id: str) -> Response:
    if not sessions.revoke_id(conn, session_id, who.name):
        raise HTTPException(404, f"no live session {session_id!r} of {who.name}")
    return RedirectResponse("/sessions", 303)


@pages.get("/users")
def users_page(request: Request, conn: Conn) -> HTMLResponse:
    return page(request, "users.html", "/users", users=_users(conn), sign_ins=_sign_ins(request, conn))


@pages.post("/sign-ins/{session_id}/revoke")
def end_sign_in_page(conn: Conn, log: AuditTrail, session_id: str) -> Response:
    _end_sign_in(conn, log, session_id)
    return RedirectResponse("/users#sign-ins", 303)


@pages.post("/users/{name}/sessions/revoke")
def end_user_sessions_page(conn: Conn, log: AuditTrail, name: str) -> Response:
    _end_user_sessions(conn, log, name)
    return RedirectResponse(f"/users#user-{name}", 303)


def _tokens_page(request: Request, conn: psycopg.Connection, status: int = 200, **ctx: Any) -> HTMLResponse:
    ctx.setdefault("form", {})
    return page(request, "tokens.html", "/tokens", status, tokens=_tokens(conn), **ctx)


@pages.get("/tokens")
def tokens_page(request: Request, conn: Conn) -> HTMLResponse:
    return _tokens_page(request, conn)


@pages.post("/tokens")
async def create_token_page(request: Request, conn: Conn, who: Caller) -> HTMLResponse:
    fields = await form_fields(request)
    teams = [t for t in (fields.get("teams") or "").split(",") if t.strip()]
    try:
        days = int(fields.get("days") or 90)
        token, row = _create_token(conn, request, who, {**fields, "teams": teams, "days": days})
    except ValueError as exc:  # TokenInputError, or days not a number
        return _tokens_page(request, conn, 400, error=str(exc), form=fields)
    # Rendered, not redirected: the token must not travel in a URL or survive a reload.
    return _tokens_page(request, conn, 201, created={"token": token, "record": row})


@pages.post("/tokens/{token_id}/revoke")
def revoke_token_page(request: Request, conn: Conn, who: Caller, token_id: str) -> Response:
    revoke_token(request, conn, who, token_id)
    return RedirectResponse(f"/tokens#token-{token_id}", 303)


@pages.get("/audit")
def audit_page(
    request: Request,
    conn: Conn,
    actor: Annotated[Name | None, Query()] = None,
    action: Annotated[Name | None, Query()] = None,
) -> HTMLResponse:
    rows = audit_log.entries(conn, 500, actor or None, action or None)
    return page(request, "audit.html", "/audit", rows=rows, actor=actor or "", action=action or "")
