"""OpenAI-shaped errors: the one place that knows the protocol's error JSON.

Every failure the gateway reports, from a bad parameter to a worker that died, leaves as
``{"error": {"message", "type", "param", "code"}}`` with the status OpenAI's own API would use,
so SDK clients raise the exception class their users expect (``BadRequestError``,
``NotFoundError``, ``RateLimitError``...).
"""

from __future__ import annotations

from typing import Any

import orjson

TYPES: dict[int, str] = {
    400: "invalid_request_error",
    401: "invalid_request_error",  # OpenAI answers a bad key with this type and code invalid_api_key
    403: "permission_error",
    404: "invalid_request_error",
    408: "timeout_error",
    409: "invalid_request_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
    500: "server_error",
    502: "server_error",
    503: "server_error",
    504: "timeout_error",
}


class GatewayError(Exception):
    """An error for the client, with everything its JSON needs."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        type: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.type = type or TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}

    def json(self) -> bytes:
        return orjson.dumps(self.body())


def bad_request(message: str, param: str | None = None, code: str | None = None) -> GatewayError:
    return GatewayError(400, message, param=param, code=code)


def unsupported(param: str, why: str) -> GatewayError:
    """A parameter Claude Code cannot honour: refused, never silently ignored."""
    return GatewayError(400, f"{param}: {why}", param=param, code="unsupported_parameter")


def invalid(exc: Any, unknown: str = "Unrecognized request argument supplied: {param}") -> GatewayError:
    """A pydantic ValidationError of a request body as OpenAI words it: the first problem, with the
    parameter's path (``unknown`` words an unknown parameter; the two APIs word it differently)."""
    first = exc.errors()[0]
    param = ".".join(str(p) for p in first["loc"])
    if first["type"] == "extra_forbidden":
        return GatewayError(400, unknown.format(param=param), param=param, code="unknown_parameter")
    if first["type"] == "missing":
        return GatewayError(
            400, f"Missing required parameter: '{param}'.", param=param, code="missing_required_parameter"
        )
    return bad_request(f"Invalid value for '{param}': {first['msg']}", param, "invalid_value")
