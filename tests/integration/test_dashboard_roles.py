"""The role matrix: every operation of the OpenAPI document and every page, called by an admin, a
member of team alpha and a viewer of team alpha, signed in through the login form like people (and
as a service token like automation), against one dashboard served over HTTP on a real database
holding both teams' traffic.

What must hold: a member or viewer of alpha never sees bravo's data (no list, total, page or id
lookup shows it: another team's conversation is a 404 like an unknown one); a viewer changes nothing;
the admin areas answer 403 to everyone else, in the API's error JSON under /api/ and as an error page
elsewhere; the admin sees both teams (so the markers would be caught if they leaked)."""

from __future__ import annotations

import csv
import io
import json
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlencode

import psycopg
import pytest
from nexus import accounts
from nexus.secret_store import LocalSecretStore
from nexus_dashboard.app import create_app
from starlette.routing import Route

from tests.integration.http import request
from tests.support import dashboard

KEY = "nxd_roles_" + "k" * 30
PASSWORD = "correct horse battery staple"
ROLES = ("admin", "member", "viewer")
USERS = {
    "admin": ("root", "admin", []),
    "member": ("ann", "member", ["alpha"]),
    "viewer": ("vic", "viewer", ["alpha"]),
}
BRAVO = ("BRAVO-MARKER", "bravo", "bob", "acct-bravo")


@dataclass
class Caller:
    role: str
    headers: dict[str, str]
    csrf: str | None


@pytest.fixture(scope="module")
def served(pg_server, tmp_path_factory) -> Iterator[dashboard.Served]:
    url = dashboard.database(pg_server)
    ids = dashboard.seed(url)
    with psycopg.connect(url) as conn:
        for name, role, teams in USERS.values():
            accounts.add(conn, "cli:test", name, role, teams, PASSWORD)
    store = LocalSecretStore(tmp_path_factory.mktemp("secrets") / "secrets.json")
    app = create_app(url, KEY, store)
    with dashboard.serve(app) as base:
        yield dashboard.Served(base, url, KEY, app, ids)


def login(served: dashboard.Served, user: str, password: str = PASSWORD):
    body = urlencode({"user": user, "password": password}).encode()
    return request(served.url, "POST", "/login", body, {"content-type": "application/x-www-form-urlencoded"})


def session_of(served: dashboard.Served, user: str) -> tuple[str, str]:
    resp = login(served, user)
    assert resp.status == 303, (user, resp.status, resp.body[:300])
    cookie = next(v for k, v in resp.headers if k.lower() == "set-cookie").split(";")[0]
    me = request(served.url, "GET", "/api/session", headers={"cookie": cookie}).json()
    return cookie, me["csrf_token"]


@pytest.fixture(scope="module")
def callers(served) -> dict[str, Caller]:
    out = {}
    for role, (user, _, _) in USERS.items():
        cookie, csrf = session_of(served, user)
        out[role] = Caller(role, {"cookie": cookie, "x-csrf-token": csrf}, csrf)
    return out


def _fill(path: str, served: dashboard.Served) -> str:
    """Path parameters filled with bravo's rows (and harmless values for the rest)."""
    bravo = served.ids["bravo"]
    values = {
        "conversation_id": bravo["conversation"],
        "request_id": bravo["request"],
        "name": "nobody",
        "key_id": "nokey",
        "kind": "team",
        "team": "bravo",
        "session_id": "0" * 64,
        "token_id": "ab",
    }
    return re.sub(r"\{(\w+)(:\w+)?\}", lambda m: values[m.group(1)], path)


def _routes(routes: list) -> Iterator:
    """Every route, including those of included routers (FastAPI keeps them apart)."""
    for r in routes:
        inner = getattr(r, "original_router", None)
        if inner is not None:
            assert not inner.prefix or inner.prefix == "/api", inner.prefix  # paths as they are served
            yield from _routes(inner.routes)
        else:
            yield r


def _operations(served: dashboard.Served) -> list[tuple[str, str, bool]]:
    """(method, path, is_api) of every OpenAPI operation and every page route."""
    doc = request(served.url, "GET", "/api/openapi.json", headers={"authorization": f"Bearer {KEY}"}).json()
    ops = [(m.upper(), p, True) for p, item in doc["paths"].items() for m in item]
    for route in _routes(served.app.routes):
        if not isinstance(route, Route) or route.path.startswith(("/api/", "/static", "/mcp", "/health")):
            continue
        if route.path.startswith(("/login", "/logout")):
            continue
        ops += [(m, route.path, False) for m in sorted(route.methods or ()) if m != "HEAD"]
    return ops


def _body(method: str, path: str) -> bytes:
    if method != "POST":
        return b""
    if path == "/api/tokens":
        return json.dumps({"name": "t", "role": "viewer", "teams": ["alpha"], "days": 1}).encode()
    if path.startswith("/api/budgets/"):
        return json.dumps({"monthly_usd": 10}).encode()
    if path.startswith("/api/credentials/"):
        return json.dumps({"accessToken": "x"}).encode()
    if path == "/api/keys":
        return json.dumps({"team": "alpha", "user": "x"}).encode()
    return b""


def _call(served, caller: Caller, method: str, path: str, is_api: bool):
    headers = dict(caller.headers)
    body = _body(method, path)
    if method == "POST":
        headers["content-type"] = "application/json" if is_api else "application/x-www-form-urlencoded"
        if not is_api:
            body = f"csrf_token={caller.csrf}".encode()
    return request(served.url, method, _fill(path, served), body or None, headers)


ADMIN_AREAS = ("keys", "credentials", "budgets", "users", "sign-ins", "tokens", "audit")


def _area(path: str) -> str:
    return re.split(r"[/.]", path.removeprefix("/api").strip("/"))[0]


def test_every_operation_and_page_keeps_to_the_role(served, callers) -> None:
    ops = _operations(served)
    assert len(ops) > 50, ops  # every API operation and page
    problems: list[str] = []
    for method, path, is_api in ops:
        for role in ROLES:
            r = _call(served, callers[role], method, path, is_api)
            where = f"{role} {method} {path}"
            if r.status >= 500:
                problems.append(f"{where}: {r.status}")
                continue
            admin_area = _area(path) in ADMIN_AREAS
            if role != "admin" and (
                admin_area or (role == "viewer" and method == "POST" and "sessions" not in path)
            ):
                if r.status != 403:
                    problems.append(f"{where}: {r.status}, expected 403")
                elif is_api:
                    err = r.json()["error"]
                    if err["status"] != 403 or not err["message"]:
                        problems.append(f"{where}: error body {r.body[:200]!r}")
                elif b"<html" not in r.body.lower():
                    problems.append(f"{where}: a 403 page was expected")
                continue
            if role != "admin" and any(m.encode() in r.body for m in BRAVO):
                problems.append(f"{where}: {r.status} shows bravo's data: {r.body[:300]!r}")
            if (
                role != "admin"
                and ("{conversation_id}" in path or "{request_id}" in path)
                and r.status != 404
            ):
                problems.append(f"{where}: {r.status} for bravo's row, expected 404")
            by_id = "{conversation_id}" in path or "{request_id}" in path
            if role == "admin" and method == "GET" and by_id and r.status not in (200, 304):
                problems.append(f"{where}: admin got {r.status} for bravo's row")
    assert not problems, "\n".join(problems)


def test_a_member_sees_their_team_and_nothing_else(served, callers) -> None:
    ann = callers["member"].headers
    listed = request(served.url, "GET", "/api/conversations?period=all", headers=ann).json()
    assert [c["team"] for c in listed["conversations"]] == ["alpha"]
    assert (
        request(served.url, "GET", "/api/conversations?period=all&team=bravo", headers=ann).json()["total"]
        == 0
    )
    reqs = request(served.url, "GET", "/api/requests", headers=ann).json()["requests"]
    assert reqs and {r["team"] for r in reqs} == {"alpha"}
    alpha = served.ids["alpha"]
    assert (
        request(served.url, "GET", f"/api/conversations/{alpha['conversation']}", headers=ann).status == 200
    )
    page = request(served.url, "GET", f"/requests/{alpha['request']}", headers=ann)
    assert page.status == 200 and b"ALPHA-MARKER" in page.body
    usage = request(served.url, "GET", "/api/usage?group=team&period=all", headers=ann).json()
    assert [g["key"] for g in usage["groups"]] == ["alpha"]
    # The admin sees both teams: the markers above would be caught.
    root = callers["admin"].headers
    both = request(served.url, "GET", "/api/conversations?period=all", headers=root).json()
    assert sorted(c["team"] for c in both["conversations"]) == ["alpha", "bravo"]


def test_every_role_can_log_out(served) -> None:
    for user in ("root", "ann", "vic"):
        cookie, csrf = session_of(served, user)
        form = {"cookie": cookie, "content-type": "application/x-www-form-urlencoded"}
        out = request(served.url, "POST", "/logout", f"csrf_token={csrf}".encode(), form)
        assert out.status == 303 and out.header("location") == "/login", (user, out.status)
        assert request(served.url, "GET", "/api/session", headers={"cookie": cookie}).status == 401


def test_a_member_may_ask_for_an_analysis_of_their_team_only(served, callers) -> None:
    ann = callers["member"].headers
    alpha, bravo = served.ids["alpha"]["conversation"], served.ids["bravo"]["conversation"]
    assert request(served.url, "POST", f"/api/conversations/{alpha}/analysis", None, ann).status == 202
    assert request(served.url, "POST", f"/api/conversations/{bravo}/analysis", None, ann).status == 404
    vic = callers["viewer"].headers
    refused = request(served.url, "POST", f"/api/conversations/{alpha}/analysis", None, vic)
    assert refused.status == 403 and refused.json()["error"]["status"] == 403


def test_a_service_token_carries_its_own_role_and_teams(served) -> None:
    root = {"authorization": f"Bearer {KEY}", "content-type": "application/json"}
    made = request(
        served.url,
        "POST",
        "/api/tokens",
        json.dumps({"name": "ci", "role": "viewer", "teams": ["alpha"], "days": 1}).encode(),
        root,
    )
    assert made.status == 201, made.body
    token, record = made.json()["token"], made.json()["record"]
    assert token.startswith("nxt_") and token not in json.dumps(record)
    bot = {"authorization": f"Bearer {token}"}
    me = request(served.url, "GET", "/api/session", headers=bot).json()
    assert me == {
        "auth": "bearer",
        "principal": f"token:{record['id']}",
        "role": "viewer",
        "teams": ["alpha"],
    }
    listed = request(served.url, "GET", "/api/conversations?period=all", headers=bot).json()
    assert [c["team"] for c in listed["conversations"]] == ["alpha"]
    assert request(served.url, "GET", "/api/tokens", headers=bot).status == 403
    revoked = request(served.url, "POST", f"/api/tokens/{record['id']}/revoke", None, root)
    assert revoked.status == 200
    assert request(served.url, "GET", "/api/conversations", headers=bot).status == 401
    audit = request(served.url, "GET", "/api/audit?limit=50", headers=root).json()["entries"]
    actions = [(e["actor"], e["action"], e["target"]) for e in audit]
    assert ("dashboard-key", "token.revoke", record["id"]) in actions
    assert ("dashboard-key", "token.create", record["id"]) in actions


def test_admin_actions_are_audited_shown_exported_and_logged(served, callers, caplog) -> None:
    root = {"authorization": f"Bearer {KEY}", "content-type": "application/json"}
    with caplog.at_level(logging.INFO, logger="nexus.audit"):
        made = request(
            served.url, "POST", "/api/keys", json.dumps({"team": "alpha", "user": "ann"}).encode(), root
        )
        assert made.status == 201
        key_id = made.json()["record"]["id"]
        cap = json.dumps({"monthly_usd": 25}).encode()
        assert request(served.url, "POST", "/api/budgets/team/alpha", cap, root).status == 201
        # From a browser: the admin's session, through the page's form.
        admin = callers["admin"]
        form = {"cookie": admin.headers["cookie"], "content-type": "application/x-www-form-urlencoded"}
        revoked = request(
            served.url, "POST", f"/keys/{key_id}/revoke", f"csrf_token={admin.csrf}".encode(), form
        )
        assert revoked.status == 303
    entries = request(served.url, "GET", "/api/audit?limit=20", headers=root).json()["entries"]
    seen = [(e["actor"], e["action"], e["target"]) for e in entries]
    assert ("dashboard-key", "key.create", key_id) in seen
    assert ("dashboard-key", "budget.set", "team:alpha") in seen
    assert ("user:root", "key.revoke", key_id) in seen
    assert seen.index(("user:root", "key.revoke", key_id)) < seen.index(
        ("dashboard-key", "key.create", key_id)
    )
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "nexus.audit"]
    assert {(line["actor"], line["action"]) for line in lines} >= {
        ("dashboard-key", "key.create"),
        ("dashboard-key", "budget.set"),
        ("user:root", "key.revoke"),
    }
    csv_resp = request(served.url, "GET", "/api/audit.csv?action=key.revoke", headers=root)
    assert csv_resp.status == 200 and csv_resp.header("content-type").startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(csv_resp.body.decode())))
    assert [(r["actor"], r["target"]) for r in rows] == [("user:root", key_id)]
    page = request(served.url, "GET", "/audit", headers={"cookie": admin.headers["cookie"]})
    assert page.status == 200 and key_id.encode() in page.body and b"key.revoke" in page.body
