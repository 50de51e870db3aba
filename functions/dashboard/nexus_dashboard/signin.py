"""Signing in and out of the dashboard in a browser: the login form takes a local user's name and
password (``nexus.accounts``) or, with no name, the dashboard key; every attempt is throttled per
address and per account (``throttle.py``). A success issues a server-side session carrying the
principal's role and teams; logging out revokes it."""

from __future__ import annotations

import psycopg
from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import RedirectResponse, Response
from nexus import accounts
from starlette.concurrency import run_in_threadpool

from nexus_dashboard import pages, scope, sessions, throttle
from nexus_dashboard.auth import check, check_key, form_fields, require_auth
from nexus_dashboard.deps import Conn
from nexus_dashboard.scope import Principal
from nexus_dashboard.security import is_https

router = APIRouter(include_in_schema=False)


def _same_origin(request: Request) -> bool:
    """A login form posted from this site: its Origin names this host, or (for browsers that send
    ``Origin: null``, e.g. under a strict referrer policy) Fetch Metadata says so. Clients that send
    neither (curl, tests) are not browsers and cannot be the target of a cross-site login."""
    origin = request.headers.get("origin")
    if origin and origin != "null":
        return origin.split("://", 1)[-1] == request.headers.get("host")
    site = request.headers.get("sec-fetch-site")
    return site in (None, "same-origin", "none") if origin is None else site == "same-origin"


@router.get("/login")
def login_page(request: Request) -> Response:
    return pages.page(request, "login.html")


@router.post("/login")
async def login(request: Request, conn: Conn) -> Response:
    if not _same_origin(request):
        raise HTTPException(403, "cross-site login refused")
    fields = await form_fields(request)
    user = fields.get("user", "").strip()
    secret = fields.get("password") or fields.get("key", "")
    return await run_in_threadpool(_sign_in, request, conn, user, secret)


def _attempt(
    request: Request, conn: psycopg.Connection, user: str, secret: str
) -> tuple[throttle.Verdict, Principal | None]:
    if not user:
        verdict = check_key(request, conn, secret)
        return verdict, scope.DASHBOARD_KEY if verdict.ok else None
    account = accounts.principal_name(user[:100])
    # The lock is looked at before the password is (a locked account is refused, right or wrong).
    waiting = throttle.attempt(
        conn, request.app.state.throttle, throttle.client_address(request), account, True, dry_run=True
    )
    if waiting.retry_after is not None:
        return waiting, None
    found = accounts.verify(conn, user, secret) if secret else None
    verdict = check(request, conn, account, found is not None)
    if found is None or not verdict.ok:
        return verdict, None
    return verdict, scope.principal(found.principal, found.role, found.teams)


def _sign_in(request: Request, conn: psycopg.Connection, user: str, secret: str) -> Response:
    verdict, who = _attempt(request, conn, user, secret)
    resp: Response
    if verdict.retry_after is not None:
        resp = pages.page(
            request,
            "login.html",
            status=429,
            error=f"Too many failed attempts. Try again in {verdict.retry_after} seconds.",
        )
        resp.headers["Retry-After"] = str(verdict.retry_after)
        return resp
    if not verdict.ok or who is None:
        error = "Wrong user name or password." if user else "That is not the dashboard key."
        return pages.page(request, "login.html", status=401, error=error, user=user)
    # Housekeeping rides on sign-ins (rare, and the only time rows are added to these tables).
    sessions.forget_old(conn)
    throttle.forget_old(conn, request.app.state.throttle)
    token, _ = sessions.issue(
        conn,
        request.app.state.dashboard_key,
        who,
        throttle.client_address(request),
        request.headers.get("user-agent"),
    )
    resp = RedirectResponse("/", 303)
    resp.set_cookie(
        sessions.COOKIE,
        token,
        max_age=sessions.MAX_AGE_S,
        httponly=True,
        samesite="lax",
        secure=is_https(request.scope),
        path="/",
    )
    return resp


@router.post("/logout", dependencies=[Depends(require_auth)])
def logout(request: Request, conn: Conn) -> Response:
    session = getattr(request.state, "session", None)
    if session is not None:  # a Bearer client has none to end
        sessions.revoke(conn, session)
    resp = RedirectResponse("/login", 303)
    resp.delete_cookie(sessions.COOKIE, path="/")
    return resp
