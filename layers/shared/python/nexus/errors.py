"""Anthropic-shaped error bodies: the one place that knows the protocol's error JSON."""

from __future__ import annotations

import orjson

# Status -> Anthropic error type, as documented for the Messages API.
ERROR_TYPES: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    408: "invalid_request_error",
    413: "request_too_large",
    415: "invalid_request_error",
    429: "rate_limit_error",
    500: "api_error",
    502: "api_error",
    503: "api_error",
    504: "api_error",
    529: "overloaded_error",
}


def anthropic_error(status: int, message: str) -> bytes:
    """JSON body of an Anthropic error response for ``status``."""
    return orjson.dumps(
        {"type": "error", "error": {"type": ERROR_TYPES.get(status, "api_error"), "message": message}}
    )
