"""Errors in the caller's shape: JSON ``{"error": {"status", "message"}}`` under ``/api/`` and for
``/health``, an HTML page elsewhere (a page without a session sends the browser to log in instead).
Headers a status needs travel with it: ``Allow`` on 405, ``Retry-After`` on 429 and 503."""

from __future__ import annotations

from http import HTTPStatus

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from nexus_dashboard import db, pages


def wants_json(request: Request) -> bool:
    return request.url.path.startswith("/api/") or request.url.path == "/health"


def error_response(
    request: Request, status: int, message: str, headers: dict[str, str] | None = None
) -> Response:
    if wants_json(request):
        return JSONResponse({"error": {"status": status, "message": message}}, status, headers)
    if status == 401:
        return RedirectResponse("/login", 303)
    reason = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Error"
    resp = pages.page(request, "error.html", status=status, code=status, reason=reason, message=message)
    resp.headers.update(headers or {})
    return resp


METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def allowed_methods(request: Request) -> str:
    """Every method some route takes at this path. Starlette's 405 names only the first matching
    route's, and GET and POST of one path (/keys, /api/keys) are separate routes here."""
    routes = request.app.router.routes
    return ", ".join(
        m for m in METHODS if any(r.matches({**request.scope, "method": m})[0] == Match.FULL for r in routes)
    )


def install(app: FastAPI) -> None:
    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = allowed_methods(request)
        return error_response(request, exc.status_code, str(exc.detail), headers)

    async def database_unavailable(request: Request, exc: Exception) -> Response:
        message = f"database unavailable: {db.describe(exc)}"
        return error_response(request, 503, message, {"Retry-After": str(db.RETRY_AFTER_S)})

    for unavailable in db.UNAVAILABLE:
        app.add_exception_handler(unavailable, database_unavailable)

    @app.exception_handler(RequestValidationError)
    async def bad_input(request: Request, exc: RequestValidationError) -> Response:
        msgs = [f"{'.'.join(str(p) for p in e['loc'][1:]) or e['loc'][0]}: {e['msg']}" for e in exc.errors()]
        return error_response(request, 400, "; ".join(msgs))
