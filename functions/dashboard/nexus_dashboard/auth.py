"""Dashboard authentication, declared once and used by every route: a Bearer credential (the
dashboard key, or a service token, ``service_tokens.py``) or a session cookie (browsers,
``sessions.py``) with CSRF on state changes. Each resolves to a ``Principal`` (``scope.py``), which
``scope.authorize`` then lets through or refuses for the route. Credential attempts, from the login
form or a Bearer header, go through the failure throttle (``throttle.py``)."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import parse_qs

import psycopg
from fastapi import Depends, HTTPException, Request

from nexus_dashboard import scope, service_tokens, sessions, throttle
from nexus_dashboard.deps import Conn
from nexus_dashboard.scope import Principal, Scope

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


def check(request: Request, conn: psycopg.Connection, account: str, correct: bool) -> throttle.Verdict:
    """A credential attempt for ``account``, throttled: whether to let it in, or how long to wait."""
    return throttle.attempt(
        conn, request.app.state.throttle, throttle.client_address(request), account, correct
    )


def check_key(request: Request, conn: psycopg.Connection, candidate: str) -> throttle.Verdict:
    """A dashboard key attempt, throttled: the verdict says whether to let it in, or how long to wait."""
    return check(request, conn, throttle.ACCOUNT, key_matches(request, candidate))


def bearer(
    request: Request, conn: psycopg.Connection, token: str
) -> tuple[throttle.Verdict, Principal | None]:
    """A Bearer credential: a service token (``nxt_``) or the dashboard key."""
    if token.startswith(service_tokens.PREFIX):
        who = service_tokens.resolve(conn, token)
        return check(request, conn, service_tokens.account(token), who is not None), who
    verdict = check_key(request, conn, token)
    return verdict, scope.DASHBOARD_KEY if verdict.ok else None


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
    """One indexed query on success: the throttle state for a key (and the token's row for a service
    token), the session for a cookie. Sets ``request.state.principal``."""
    if creds.bearer is not None:
        verdict, who = bearer(request, conn, creds.bearer)
        if verdict.retry_after is not None:
            raise too_many(verdict.retry_after)
        if not verdict.ok or who is None:
            raise HTTPException(
                401, "missing or wrong dashboard key or service token: send Authorization: Bearer <key>"
            )
        request.state.principal = who
        return
    assert creds.cookie is not None
    session = sessions.lookup(conn, creds.cookie, request.app.state.dashboard_key)
    if session is None:
        raise HTTPException(
            401, "not logged in (or logged out, or expired): log in at /login, or send a Bearer key"
        )
    request.state.session = session  # set first: a refused state change still renders as logged in
    request.state.principal = session.who


async def require_auth(request: Request, _: Annotated[None, Depends(authenticate)]) -> None:
    """Authenticated, allowed by the role (``scope.authorize``), and for a browser's state change
    carrying its session's CSRF token."""
    session = getattr(request.state, "session", None)
    if session is not None and request.method not in SAFE_METHODS:
        sent = request.headers.get("x-csrf-token")
        if sent is None:
            sent = (await form_fields(request)).get("csrf_token")
        if not sent or not hmac.compare_digest(sent.encode(), session.csrf.encode()):
            raise HTTPException(403, "missing or wrong CSRF token for this session")
    scope.authorize(request.state.principal, request.method, request.url.path)


Authenticated = Annotated[None, Depends(require_auth)]


def caller(request: Request, _: Authenticated) -> Principal:
    """Who is asking (after ``require_auth``, which FastAPI runs once per request)."""
    who: Principal = request.state.principal
    return who


def _scope(who: Annotated[Principal, Depends(caller)]) -> Scope:
    return who.scope


Caller = Annotated[Principal, Depends(caller)]
Scoped = Annotated[Scope, Depends(_scope)]
