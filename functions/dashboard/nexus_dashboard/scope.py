"""Who may see and do what on the dashboard, decided here and nowhere else (ADR 0025).

A request is made by a ``Principal``: a name, a role and the teams it may read (``None``: every team).
The auth dependency (``auth.py``) resolves it from the credential and then asks ``authorize`` whether
the role may call the route at all; read models take the principal's ``Scope`` and narrow every query
with ``Scope.sql`` (lists and totals) or ``Scope.allows`` (one row looked up by id, which is then a 404:
another team's conversation does not exist for you).

Roles:
- **admin**: everything, including keys, credentials, budgets, users, service tokens, the audit log;
- **member**: their teams' conversations, requests, usage, alerts and analyses; may ask for an analysis;
- **viewer**: the same reads for the teams chosen for them; no state change at all.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal, get_args

from fastapi import HTTPException, Request

Role = Literal["admin", "member", "viewer"]
ROLES: tuple[Role, ...] = get_args(Role)
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

# Admin-only areas, as the first path segment of a page or of an /api/ route.
ADMIN_AREAS = frozenset({"keys", "credentials", "budgets", "users", "sign-ins", "tokens", "audit"})
# The only state changes a member may make (on their own teams' data: the route checks the scope).
MEMBER_WRITES = (re.compile(r"^(/api)?/conversations/[^/]+/analysis$"),)
# State changes open to every role: a person's own sessions, and logging out.
OWN_WRITES = (
    re.compile(r"^(/api)?/sessions/[^/]+/revoke$"),
    re.compile(r"^/logout$"),
)


@dataclass(frozen=True, slots=True)
class Scope:
    """The teams whose data a principal may read: ``None`` for every team."""

    teams: frozenset[str] | None

    @property
    def everything(self) -> bool:
        return self.teams is None

    def allows(self, team: str | None) -> bool:
        """Whether a row of ``team`` is visible (rows without a team are for admins only)."""
        return self.teams is None or (team is not None and team in self.teams)

    def sql(self, column: str = "team") -> tuple[str, list[Any]]:
        """A condition on ``column`` (one ``%s`` or none) and its arguments: TRUE for every team, and
        for no team at all a condition nothing meets."""
        if self.teams is None:
            return "TRUE", []
        return f"{column} = ANY(%s)", [sorted(self.teams)]

    def key(self) -> str:
        """A cache key for results computed under this scope."""
        return "*" if self.teams is None else "\x1f".join(sorted(self.teams))


EVERYTHING = Scope(None)


@dataclass(frozen=True, slots=True)
class Principal:
    name: str  # dashboard-key, user:ann, oidc:ann@example.com, token:<id>
    role: Role
    teams: frozenset[str] | None  # None: every team; only admins have it

    @property
    def scope(self) -> Scope:
        return Scope(None if self.role == "admin" else (self.teams or frozenset()))


DASHBOARD_KEY = Principal("dashboard-key", "admin", None)


def principal(name: str, role: str, teams: list[str] | None) -> Principal:
    """A principal from stored columns (a session, a token): admins read every team."""
    if role not in ROLES:
        role = "viewer"  # never wider than asked: an unknown role reads as the narrowest
    r: Role = role  # type: ignore[assignment]
    return Principal(name, r, None if r == "admin" else frozenset(teams or ()))


def area(path: str) -> str:
    if path.startswith("/api/"):
        path = path[4:]
    return re.split(r"[/.]", path.strip("/"))[0]  # /api/audit.csv is in the audit area


def authorize(who: Principal, method: str, path: str) -> None:
    """403 unless ``who``'s role may call ``method`` on ``path`` (the route's, as requested)."""
    if who.role == "admin":
        return
    if area(path) in ADMIN_AREAS:
        raise HTTPException(403, f"this needs the admin role; {who.name} is a {who.role}")
    if method in SAFE_METHODS or any(p.match(path) for p in OWN_WRITES):
        return
    if who.role == "member" and any(p.match(path) for p in MEMBER_WRITES):
        return
    raise HTTPException(403, f"a {who.role} may not change anything here; {who.name} is a {who.role}")


def caller_scope(request: Request) -> Scope:
    """The scope of the request's principal, which the auth dependency (``auth.require_auth``, on
    every router, solved before a route's own parameters) has set; fails closed without one."""
    who: Principal | None = getattr(request.state, "principal", None)
    if who is None:
        raise HTTPException(401, "not logged in: log in at /login, or send Authorization: Bearer <key>")
    return who.scope
