"""Local accounts end to end: `nexus users add|list|set-role|remove` (the real CLI, on the database
the dashboard reads), signing in with a name and password, sessions listed and ended by their owner,
and a role change or removal ending the person's sessions at once. Sign-in failures are throttled per
account as well as per address; the dashboard key keeps working as an admin API credential."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from urllib.parse import urlencode

import psycopg
import pytest
from nexus import accounts
from nexus.secret_store import LocalSecretStore
from nexus_dashboard import throttle
from nexus_dashboard.app import create_app

from tests.integration.http import request
from tests.support import dashboard
from tests.support.stack import NEXUS

KEY = "nxd_users_" + "k" * 30
PASSWORD = "a long enough passphrase"
# The address limit is out of the way, so the account's limit shows.
POLICY = throttle.Policy(
    address=throttle.Limit(failures=1000, window_s=900, lockout_s=60, max_lockout_s=60),
    account=throttle.Limit(failures=3, window_s=900, lockout_s=60, max_lockout_s=60),
)


@pytest.fixture(scope="module")
def served(pg_server, tmp_path_factory) -> Iterator[dashboard.Served]:
    url = dashboard.database(pg_server)
    ids = dashboard.seed(url)
    store = LocalSecretStore(tmp_path_factory.mktemp("secrets") / "secrets.json")
    app = create_app(url, KEY, store, throttle_policy=POLICY)
    with dashboard.serve(app) as base:
        yield dashboard.Served(base, url, KEY, app, ids)


def nexus(served, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": served.database_url}
    return subprocess.run(
        [str(NEXUS), "users", *args], input=stdin, capture_output=True, text=True, env=env, timeout=60
    )


def add(served, name: str, role: str, teams: list[str]) -> None:
    """A user added as `nexus users add` does (the CLI itself is the first test's)."""
    with psycopg.connect(served.database_url) as conn:
        accounts.add(conn, "cli:test", name, role, teams, PASSWORD)


def login(served, user: str, password: str):
    body = urlencode({"user": user, "password": password}).encode()
    return request(served.url, "POST", "/login", body, {"content-type": "application/x-www-form-urlencoded"})


def session(served, user: str, password: str = PASSWORD) -> dict[str, str]:
    resp = login(served, user, password)
    assert resp.status == 303, (resp.status, resp.body[:300])
    cookie = next(v for k, v in resp.headers if k.lower() == "set-cookie").split(";")[0]
    csrf = request(served.url, "GET", "/api/session", headers={"cookie": cookie}).json()["csrf_token"]
    return {"cookie": cookie, "x-csrf-token": csrf}


def me(served, headers: dict[str, str]) -> int:
    return request(served.url, "GET", "/api/session", headers=headers).status


def test_users_are_managed_from_the_cli_and_sign_in_with_their_password(served) -> None:
    added = nexus(
        served, "add", "carol", "--role", "member", "--team", "alpha", "--password-stdin", stdin=PASSWORD
    )
    assert added.returncode == 0, added.stderr
    assert "carol: member (alpha)" in added.stdout
    short = nexus(
        served, "add", "dave", "--role", "viewer", "--team", "alpha", "--password-stdin", stdin="short"
    )
    assert short.returncode == 2 and "at least 12 characters" in short.stderr
    no_team = nexus(served, "add", "erin", "--role", "viewer", "--password-stdin", stdin=PASSWORD)
    assert no_team.returncode == 2 and "needs at least one team" in no_team.stderr
    assert "carol" in nexus(served, "list").stdout

    with psycopg.connect(served.database_url) as conn:
        stored = conn.execute("SELECT password_hash FROM dashboard_users WHERE name = 'carol'").fetchone()[0]
    assert stored.startswith("$argon2id$") and PASSWORD not in stored

    wrong = login(served, "carol", "not the password!")
    assert wrong.status == 401 and b"Wrong user name or password" in wrong.body
    carol = session(served, "carol")
    who = request(served.url, "GET", "/api/session", headers=carol).json()
    assert (who["principal"], who["role"], who["teams"]) == ("user:carol", "member", ["alpha"])
    page = request(served.url, "GET", "/", headers={"cookie": carol["cookie"]})
    assert b"user:carol (member)" in page.body and b'href="/keys"' not in page.body


def test_a_person_lists_and_ends_their_own_sessions(served) -> None:
    add(served, "frank", "viewer", ["alpha"])
    laptop, phone = session(served, "frank"), session(served, "frank")
    listed = request(served.url, "GET", "/api/sessions", headers=laptop).json()["sessions"]
    assert len([s for s in listed if s["live"]]) == 2 and {s["principal"] for s in listed} == {"user:frank"}
    assert [s["current"] for s in listed].count(True) == 1
    phone_id = next(s["id"] for s in listed if not s["current"])
    # End the other session (from the laptop): it is refused from then on, this one goes on.
    ended = request(served.url, "POST", f"/api/sessions/{phone_id}/revoke", None, laptop)
    assert ended.status == 200 and ended.json() == {"ended": 1}
    assert sorted([me(served, laptop), me(served, phone)]) == [200, 401]
    # Someone else's session is not yours to end: 404, as for an unknown one.
    carol = session(served, "carol")
    carol_id = request(served.url, "GET", "/api/sessions", headers=carol).json()["sessions"][0]["id"]
    assert request(served.url, "POST", f"/api/sessions/{carol_id}/revoke", None, laptop).status == 404
    assert me(served, carol) == 200


def test_a_role_change_or_removal_ends_the_persons_sessions(served) -> None:
    add(served, "gina", "member", ["alpha"])
    before = session(served, "gina")
    changed = nexus(served, "set-role", "gina", "viewer")
    assert changed.returncode == 0 and "1 session(s) ended" in changed.stdout, changed.stderr
    assert me(served, before) == 401
    after = session(served, "gina")
    assert request(served.url, "GET", "/api/session", headers=after).json()["role"] == "viewer"
    admin = {"authorization": f"Bearer {KEY}"}
    users = request(served.url, "GET", "/api/users", headers=admin).json()["users"]
    assert next(u for u in users if u["name"] == "gina")["live_sessions"] == 1
    removed = nexus(served, "remove", "gina")
    assert removed.returncode == 0 and "1 session(s) ended" in removed.stdout
    assert me(served, after) == 401
    assert login(served, "gina", PASSWORD).status == 401
    audit = request(served.url, "GET", "/api/audit?actor=&action=", headers=admin).json()["entries"]
    assert [e["action"] for e in audit if e["target"] == "gina"][:3] == [
        "user.remove",
        "user.set-role",
        "user.add",
    ]
    assert all(e["actor"].startswith("cli:") for e in audit if e["target"] == "gina")
    assert next(e for e in audit if e["action"] == "user.set-role")["detail"]["was"]["role"] == "member"


def test_failed_sign_ins_lock_the_account_and_the_key_still_works(served) -> None:
    add(served, "hank", "viewer", ["alpha"])
    statuses = [login(served, "hank", f"guess number {i}").status for i in range(3)]
    assert statuses == [401, 401, 429]
    locked = login(served, "hank", PASSWORD)  # the right password is refused too while locked
    assert locked.status == 429 and locked.header("retry-after")
    assert login(served, "carol", PASSWORD).status == 303  # another account is not locked
    key = request(served.url, "GET", "/api/session", headers={"authorization": f"Bearer {KEY}"}).json()
    assert key == {"auth": "bearer", "principal": "dashboard-key", "role": "admin", "teams": None}
