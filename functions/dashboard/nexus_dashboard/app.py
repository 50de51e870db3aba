"""Dashboard ASGI app (FastAPI). Locally served by uvicorn; in AWS wrapped by Mangum."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Annotated

import psycopg
from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from psycopg_pool import ConnectionPool
from starlette.exceptions import HTTPException as StarletteHTTPException

from nexus_dashboard import queries
from nexus_dashboard.auth import Authenticated


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


def create_from_env() -> FastAPI:
    """uvicorn factory: DATABASE_URL and NEXUS_DASHBOARD_KEY from the environment (required)."""
    import os

    missing = [v for v in ("DATABASE_URL", "NEXUS_DASHBOARD_KEY") if not os.environ.get(v)]
    if missing:
        raise SystemExit(f"dashboard: set {' and '.join(missing)}")
    return create_app(os.environ["DATABASE_URL"], os.environ["NEXUS_DASHBOARD_KEY"])
