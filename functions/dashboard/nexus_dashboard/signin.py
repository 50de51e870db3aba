"""Signing in and out of the dashboard in a browser: the login form takes a local user's name and
password (``nexus.accounts``) or, with no name, the dashboard key; every attempt is throttled per
address and per account (``throttle.py``). A success issues a server-side session carrying the
principal's role and teams; logging out revokes it."""

from __future__ import annotations

from typing import Any

import psycopg
from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import RedirectResponse, Response
from nexus import accounts
from starlette.concurrency import run_in_threadpool

from nexus_dashboard import oidc, pages, scope, sessions, throttle
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


def _login_page(request: Request, status: int = 200, **ctx: Any) -> Response:
    config: oidc.Config | None = request.app.state.oidc
    return pages.page(request, "login.html", status=status, oidc=config.label if config else None, **ctx)


@router.get("/login")
def login_page(request: Request) -> Response:
    return _login_page(request)


def _redirect_uri(request: Request) -> str:
    scheme = "https" if is_https(request.scope) else "http"
    return f"{scheme}://{request.headers.get('host', 'localhost')}/login/oidc/callback"


def _config(request: Request) -> oidc.Config:
    config: oidc.Config | None = request.app.state.oidc
    if config is None:
        raise HTTPException(404, "sign-in through an identity provider is not configured for this dashboard")
    return config


@router.get("/login/oidc")
def oidc_start(request: Request) -> Response:
    """Off to the identity provider, with the flow's state in a short-lived cookie."""
    config = _config(request)
    try:
        url, cookie = oidc.start(config, request.app.state.dashboard_key, _redirect_uri(request))
    except oidc.SignInError as exc:
        return _login_page(request, exc.status, error=str(exc))
    resp = RedirectResponse(url, 303)
    resp.set_cookie(
        oidc.COOKIE,
        cookie,
        max_age=oidc.FLOW_S,
        httponly=True,
        samesite="lax",  # the provider's redirect back is a top-level GET: the cookie comes along
        secure=is_https(request.scope),
        path="/login/oidc",
    )
    return resp


@router.get("/login/oidc/callback")
def oidc_callback(request: Request, conn: Conn) -> Response:
    """Back from the provider: check everything, then the same server-side session as a password's."""
    config = _config(request)
    params = {k: v[:4000] for k, v in request.query_params.items()}
    try:
        who = oidc.finish(
            config,
            request.app.state.dashboard_key,
            request.cookies.get(oidc.COOKIE),
            params,
            _redirect_uri(request),
        )
    except oidc.SignInError as exc:
        resp = _login_page(request, exc.status, error=str(exc))
        resp.delete_cookie(oidc.COOKIE, path="/login/oidc")
        return resp
    resp = _session_response(request, conn, who)
    resp.delete_cookie(oidc.COOKIE, path="/login/oidc")
    return resp


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
        resp = _login_page(
            request, 429, error=f"Too many failed attempts. Try again in {verdict.retry_after} seconds."
        )
        resp.headers["Retry-After"] = str(verdict.retry_after)
        return resp
    if not verdict.ok or who is None:
        error = "Wrong user name or password." if user else "That is not the dashboard key."
        return _login_page(request, 401, error=error, user=user)
    return _session_response(request, conn, who)


def _session_response(request: Request, conn: psycopg.Connection, who: Principal) -> Response:
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
