"""Dashboard authentication, declared once and used by every route: a Bearer dashboard key (API
clients) or a session cookie (browsers, ``sessions.py``) with CSRF on state changes. Key attempts,
from the login form or a Bearer header, go through the failure throttle (``throttle.py``)."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import parse_qs

import psycopg
from fastapi import Depends, HTTPException, Request

from nexus_dashboard import sessions, throttle
from nexus_dashboard.deps import Conn

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


def too_many(retry_after: int) -> HTTPException:
    return HTTPException(
        429,
        f"Too many failed attempts to sign in from this address or to this account: try again in "
        f"{retry_after} s (until then the correct key is refused too)",
        headers={"Retry-After": str(retry_after)},
    )


def check_key(request: Request, conn: psycopg.Connection, candidate: str) -> throttle.Verdict:
    """A dashboard key attempt, throttled: the verdict says whether to let it in, or how long to wait."""
    return throttle.attempt(
        conn,
        request.app.state.throttle,
        throttle.client_address(request),
        throttle.ACCOUNT,
        key_matches(request, candidate),
    )


@dataclass(frozen=True, slots=True)
class Credentials:
    bearer: str | None = None
    cookie: str | None = None


def credentials(request: Request) -> Credentials:
    """What the request presents; none at all is a 401 before any database work."""
    header = request.headers.get("authorization", "")
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer":
            raise HTTPException(401, "missing or wrong dashboard key: send Authorization: Bearer <key>")
        return Credentials(bearer=token.strip())
    cookie = request.cookies.get(sessions.COOKIE)
    if not cookie:
        raise HTTPException(
            401, "not logged in: log in at /login, or send Authorization: Bearer <dashboard key>"
        )
    return Credentials(cookie=cookie)


def authenticate(request: Request, creds: Annotated[Credentials, Depends(credentials)], conn: Conn) -> None:
    """One indexed query on success: the throttle state for a key, the session for a cookie."""
    if creds.bearer is not None:
        verdict = check_key(request, conn, creds.bearer)
        if verdict.retry_after is not None:
            raise too_many(verdict.retry_after)
        if not verdict.ok:
            raise HTTPException(401, "missing or wrong dashboard key: send Authorization: Bearer <key>")
        return
    assert creds.cookie is not None
    session = sessions.lookup(conn, creds.cookie, request.app.state.dashboard_key)
    if session is None:
        raise HTTPException(
            401, "not logged in (or logged out, or expired): log in at /login, or send a Bearer key"
        )
    request.state.session = session  # set first: a refused state change still renders as logged in


async def require_auth(request: Request, _: Annotated[None, Depends(authenticate)]) -> None:
    session = getattr(request.state, "session", None)
    if session is None or request.method in SAFE_METHODS:
        return
    sent = request.headers.get("x-csrf-token")
    if sent is None:
        sent = (await form_fields(request)).get("csrf_token")
    if not sent or not hmac.compare_digest(sent.encode(), session.csrf.encode()):
        raise HTTPException(403, "missing or wrong CSRF token for this session")


Authenticated = Annotated[None, Depends(require_auth)]
