"""Bearer-key authentication for the dashboard API: declared once, used by every route."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, HTTPException, Request


def require_key(request: Request) -> None:
    expected: str = request.app.state.dashboard_key
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token or not hmac.compare_digest(token.strip(), expected):
        raise HTTPException(401, "missing or wrong dashboard key: send Authorization: Bearer <key>")


Authenticated = Annotated[None, Depends(require_key)]
