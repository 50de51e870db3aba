"""Dashboard ASGI app (FastAPI). Locally served by uvicorn; in AWS wrapped by Mangum."""

from __future__ import annotations

import html
import uuid
from collections.abc import Iterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Annotated

import psycopg
from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from psycopg_pool import ConnectionPool
from starlette.exceptions import HTTPException as StarletteHTTPException

from nexus_dashboard import queries, sessions
from nexus_dashboard.auth import Authenticated, current_session, form_fields, key_matches
from nexus_dashboard.security import SecurityHeaders, is_https


def _conn(request: Request) -> Iterator[psycopg.Connection]:
    with request.app.state.pool.connection() as conn:
        yield conn


Conn = Annotated[psycopg.Connection, Depends(_conn)]


def _request_id(request_id: str) -> str:
    try:
        return str(uuid.UUID(request_id))
    except ValueError:
        raise HTTPException(404, f"no request {request_id!r}") from None


def create_app(conninfo: str, dashboard_key: str) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI):
        app.state.pool = ConnectionPool(conninfo, min_size=1, max_size=8, open=True)
        yield
        app.state.pool.close()

    app = FastAPI(title="Nexus dashboard", version="0.1.0", lifespan=lifespan)
    app.state.dashboard_key = dashboard_key

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"error": {"status": exc.status_code, "message": exc.detail}}, exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def bad_input(_: Request, exc: RequestValidationError) -> JSONResponse:
        msgs = [f"{'.'.join(str(p) for p in e['loc'][1:])}: {e['msg']}" for e in exc.errors()]
        return JSONResponse({"error": {"status": 400, "message": "; ".join(msgs)}}, 400)

    app.add_middleware(SecurityHeaders)

    @app.get("/login", include_in_schema=False)
    def login_page(error: str | None = None) -> HTMLResponse:
        return HTMLResponse(_login_html(error), 401 if error else 200)

    @app.post("/login", include_in_schema=False)
    async def login(request: Request) -> Response:
        origin = request.headers.get("origin")
        if origin and origin.split("://", 1)[-1] != request.headers.get("host"):
            raise HTTPException(403, "cross-site login refused")
        if not key_matches(request, (await form_fields(request)).get("key", "")):
            return HTMLResponse(_login_html("That is not the dashboard key."), 401)
        cookie, _ = sessions.issue(request.app.state.dashboard_key)
        resp = RedirectResponse("/", 303)
        resp.set_cookie(
            sessions.COOKIE,
            cookie,
            max_age=sessions.MAX_AGE_S,
            httponly=True,
            samesite="lax",
            secure=is_https(request.scope),
            path="/",
        )
        return resp

    @app.post("/logout", include_in_schema=False)
    def logout(_: Authenticated) -> Response:
        resp = RedirectResponse("/login", 303)
        resp.delete_cookie(sessions.COOKIE, path="/")
        return resp

    @app.get("/api/session")
    def session(_: Authenticated, request: Request) -> dict:
        """Who is asking: a browser session (with its CSRF token for state changes) or a Bearer key."""
        s = getattr(request.state, "session", None)
        if s is None:
            return {"auth": "bearer"}
        return {"auth": "session", "csrf_token": s.csrf, "expires_at": s.issued_at + sessions.MAX_AGE_S}

    @app.get("/", include_in_schema=False)
    def home(request: Request) -> Response:
        s = current_session(request)
        if s is None:
            return RedirectResponse("/login", 303)
        return HTMLResponse(_home_html(s.csrf))

    @app.get("/health")
    def health(conn: Conn) -> dict:
        conn.execute("SELECT 1")
        return {"status": "ok"}

    @app.get("/api/requests")
    def list_requests(
        _: Authenticated,
        conn: Conn,
        limit: Annotated[int, Query(ge=1, le=1000)] = 50,
        session_id: str | None = None,
        since: datetime | None = None,
    ) -> dict:
        return {"requests": queries.list_requests(conn, limit, session_id, since)}

    @app.get("/api/requests/{request_id}")
    def get_request(_: Authenticated, conn: Conn, request_id: str) -> dict:
        row = queries.get_request(conn, _request_id(request_id))
        if row is None:
            raise HTTPException(404, f"no request {request_id!r}")
        return row

    @app.get("/api/conversations")
    def list_conversations(
        _: Authenticated,
        conn: Conn,
        team: str | None = None,
        user: str | None = None,
        model: str | None = None,
        since: datetime | None = None,
        q: Annotated[str | None, Query(max_length=500)] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        offset: Annotated[int, Query(ge=0)] = 0,
    ) -> dict:
        rows = queries.list_conversations(
            conn, team=team, user=user, model=model, since=since, q=q, limit=limit, offset=offset
        )
        return {"conversations": rows}

    @app.get("/api/conversations/{conversation_id}")
    def get_conversation(_: Authenticated, conn: Conn, conversation_id: str) -> dict:
        conv = queries.get_conversation(conn, _request_id(conversation_id))
        if conv is None:
            raise HTTPException(404, f"no conversation {conversation_id!r}")
        return conv

    @app.get("/api/requests/{request_id}/raw/request")
    def raw_request(_: Authenticated, conn: Conn, request_id: str) -> Response:
        body = queries.raw_request_body(conn, _request_id(request_id))
        if body is None:
            raise HTTPException(404, f"no request {request_id!r}")
        return Response(body, media_type="application/json")

    @app.get("/api/requests/{request_id}/raw/response")
    def raw_response(_: Authenticated, conn: Conn, request_id: str) -> Response:
        found = queries.raw_response_body(conn, _request_id(request_id))
        if found is None:
            raise HTTPException(404, f"no request {request_id!r}")
        body, headers = found
        return Response(body, headers=headers)

    return app


def _login_html(error: str | None) -> str:
    note = f'<p role="alert">{html.escape(error)}</p>' if error else ""
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8><title>Nexus: log in</title></head>"
        "<body><main><h1>Nexus dashboard</h1>"
        f"{note}"
        '<form method=post action="/login"><label>Dashboard key '
        "<input name=key type=password autocomplete=current-password required autofocus></label> "
        "<button type=submit>Log in</button></form></main></body></html>"
    )


def _home_html(csrf: str) -> str:
    # A placeholder until the web UI (issue 5) lands: the JSON API and a working logout.
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8><title>Nexus</title></head><body><main>"
        "<h1>Nexus dashboard</h1><p>JSON API: <a href=/api/conversations>conversations</a>, "
        "<a href=/api/requests>requests</a>, <a href=/docs>OpenAPI</a>.</p>"
        '<form method=post action="/logout">'
        f'<input type=hidden name=csrf_token value="{html.escape(csrf)}">'
        "<button type=submit>Log out</button></form></main></body></html>"
    )


def create_from_env() -> FastAPI:
    """uvicorn factory: DATABASE_URL and NEXUS_DASHBOARD_KEY from the environment (required)."""
    import os

    missing = [v for v in ("DATABASE_URL", "NEXUS_DASHBOARD_KEY") if not os.environ.get(v)]
    if missing:
        raise SystemExit(f"dashboard: set {' and '.join(missing)}")
    return create_app(os.environ["DATABASE_URL"], os.environ["NEXUS_DASHBOARD_KEY"])
