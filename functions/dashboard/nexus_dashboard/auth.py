"""Dashboard authentication, declared once and used by every route: a Bearer dashboard key (API
clients) or a signed session cookie (browsers, ``sessions.py``) with CSRF on state changes."""

from __future__ import annotations

import hmac
from typing import Annotated
from urllib.parse import parse_qs

from fastapi import Depends, HTTPException, Request

from nexus_dashboard import sessions

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


async def form_fields(request: Request) -> dict[str, str]:
    """An HTML form's fields (urlencoded), first value each; empty for any other body."""
    if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        return {}
    fields = parse_qs((await request.body()).decode("utf-8", "replace"), max_num_fields=20)
    return {k: v[0] for k, v in fields.items()}


def key_matches(request: Request, candidate: str) -> bool:
    expected: str = request.app.state.dashboard_key
    return bool(candidate) and hmac.compare_digest(candidate.encode(), expected.encode())


def current_session(request: Request) -> sessions.Session | None:
    """The browser session the request's cookie proves, if any."""
    cookie = request.cookies.get(sessions.COOKIE)
    return sessions.verify(cookie, request.app.state.dashboard_key) if cookie else None


async def require_auth(request: Request) -> None:
    header = request.headers.get("authorization", "")
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() == "bearer" and key_matches(request, token.strip()):
            return
        raise HTTPException(401, "missing or wrong dashboard key: send Authorization: Bearer <key>")
    session = current_session(request)
    if session is None:
        raise HTTPException(
            401, "not logged in: log in at /login, or send Authorization: Bearer <dashboard key>"
        )
    request.state.session = session  # set first: a refused state change still renders as logged in
    if request.method not in SAFE_METHODS:
        sent = request.headers.get("x-csrf-token")
        if sent is None:
            sent = (await form_fields(request)).get("csrf_token")
        if not sent or not hmac.compare_digest(sent.encode(), session.csrf.encode()):
            raise HTTPException(403, "missing or wrong CSRF token for this session")


Authenticated = Annotated[None, Depends(require_auth)]
