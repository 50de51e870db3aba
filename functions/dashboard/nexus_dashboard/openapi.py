"""The JSON API's OpenAPI document: FastAPI's, completed with what the app answers beyond each route's
success, so clients (and schemathesis) can rely on every status code it lists.

FastAPI documents a 422 for validation errors; this app answers 400 (``errors.py``), so 422 is
replaced. Every operation can answer 401 (no or wrong key), 429 (too many failed attempts from the
caller's address or to the account, ``throttle.py``) and 503 (database unavailable, or no secret
store for the keys routes); 400 where it takes query parameters or a body, 404 where it looks an id up,
403 everywhere (a role that may not call the route, ``scope.py``; on state changes also a browser
session without its CSRF token).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["status", "message"],
            "properties": {
                "status": {"type": "integer", "description": "the HTTP status again"},
                "message": {"type": "string", "description": "what went wrong, for a person to read"},
            },
        }
    },
}
RETRY_AFTER = {
    "description": "seconds to wait before trying again",
    "schema": {"type": "integer", "minimum": 1},
}
SAFE_METHODS = frozenset({"get", "head", "options"})


def _error(description: str, retry_after: bool | None = None) -> dict[str, Any]:
    """An error response; ``retry_after``: True if the header is always sent, False if sometimes."""
    out: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }
    if retry_after is not None:
        out["headers"] = {"Retry-After": {**RETRY_AFTER, "required": retry_after}}
    return out


def _complete(path: str, method: str, op: dict[str, Any]) -> None:
    responses = op["responses"]
    responses.pop("422", None)
    if op.get("requestBody") or any(p["in"] == "query" for p in op.get("parameters", [])):
        responses["400"] = _error("Bad input: a parameter or the body is not what the operation accepts.")
    responses["401"] = _error("No dashboard key, or a wrong one.")
    if method not in SAFE_METHODS:
        responses["403"] = _error(
            "The caller's role may not do this (scope.py), or a browser session sent no CSRF token "
            "(or another session's)."
        )
    else:
        responses["403"] = _error("The caller's role may not read this (admin-only areas).")
    if "{" in path:
        responses["404"] = _error("Nothing with that id.")
    responses["429"] = _error(
        "Too many failed sign-in attempts from this address or to this account: wait Retry-After "
        "seconds (until then the correct key is refused too).",
        retry_after=True,
    )
    responses["503"] = _error(
        "The database is unavailable (Retry-After is sent), or key management is not configured.",
        retry_after=False,
    )


def document(app: FastAPI) -> dict[str, Any]:
    if app.openapi_schema is None:
        doc = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        components = doc.setdefault("components", {})
        schemas = components.setdefault("schemas", {})
        for unused in ("HTTPValidationError", "ValidationError"):
            schemas.pop(unused, None)
        schemas["Error"] = ERROR_SCHEMA
        components["securitySchemes"] = {
            "dashboardKey": {
                "type": "http",
                "scheme": "bearer",
                "description": "The dashboard key. Browsers use a session cookie from /login instead.",
            }
        }
        doc["security"] = [{"dashboardKey": []}]
        for path, ops in doc.get("paths", {}).items():
            for method, op in ops.items():
                _complete(path, method, op)
        app.openapi_schema = doc
    return app.openapi_schema
