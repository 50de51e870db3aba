"""Budgets through `nexus dev`: a team with a small monthly cap spends past it through the proxy; once
the crossing request is ingested the proxy refuses the team (429, Anthropic's error JSON naming the
budget, no retry) without calling the upstream, records the refusal, leaves other teams alone, and lets
the team through again once the cap is raised. The CLI's set/list/clear round trip and its errors."""

from __future__ import annotations

import json
import time

import anthropic
import pytest

from tests.integration.http import CLAUDE_HEADERS, post, request
from tests.support.fake_upstream import Usage
from tests.support.stack import Stack, running_stack

MODEL = "claude-opus-5-5"
# Each answer costs $0.30: 15,000 output tokens at $20 per million (and a short prompt, $0.00004).
COST = Usage(input_tokens=10, output_tokens=15_000)
CAP = 0.5
REFRESH_S = 1.0  # the proxy's NEXUS_ACCESS_REFRESH_S in `nexus dev`


def body(stream: bool = True) -> bytes:
    return json.dumps(
        {"model": MODEL, "max_tokens": 5, "stream": stream, "messages": [{"role": "user", "content": "hi"}]}
    ).encode()


@pytest.fixture(scope="module")
def teams(pg_server, fake_upstream, tmp_path_factory):
    """Keys required; team `capped` (a $0.50 monthly cap) and team `free` (no cap), one key each."""

    def configure(s: Stack) -> None:
        s.client_keys = {}
        for team in ("capped", "free"):
            out = s.nexus("keys", "create", "--team", team, "--user", f"{team}-user")
            assert out.returncode == 0, out.stderr
            s.client_keys[team] = out.stdout.strip()
        out = s.nexus("budgets", "set", "--team", "capped", "--monthly-usd", str(CAP))
        assert out.returncode == 0, out.stderr

    with running_stack(
        pg_server, fake_upstream, tmp_path_factory.mktemp("budgets"), keys="required", before_start=configure
    ) as s:
        yield s


def send(stack: Stack, team: str, session: str, path: str = "/v1/messages"):
    headers = {**CLAUDE_HEADERS, "x-nexus-key": stack.client_keys[team], "x-claude-code-session-id": session}
    return post(stack.proxy_url, path, body(), headers)


def budgets(stack: Stack) -> list[dict]:
    out = stack.nexus("budgets", "list", "--json")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def wait_refused(stack: Stack, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(r["refused"] for r in budgets(stack)):
            return
        time.sleep(0.1)
    raise AssertionError(f"no budget refusal after {timeout}s: {budgets(stack)}\n{stack.log()[-3000:]}")


def test_over_the_cap_the_proxy_refuses_until_the_cap_is_raised(teams, upstream):
    upstream.usage = COST
    assert send(teams, "capped", "b-1").status == 200  # $0.30: under the cap
    teams.wait_count(1, session_id="b-1")
    assert send(teams, "capped", "b-2").status == 200  # $0.60: crosses it
    teams.wait_count(1, session_id="b-2")
    wait_refused(teams)
    time.sleep(REFRESH_S + 0.2)  # the proxy's next look at the state document

    forwarded = len(upstream.messages_requests())
    r = send(teams, "capped", "b-3")
    assert r.status == 429
    assert r.header("x-should-retry") == "false"
    doc = r.json()
    assert doc["type"] == "error" and doc["error"]["type"] == "rate_limit_error"
    message = doc["error"]["message"]
    assert "team 'capped' has spent $0.60 of its monthly budget of $0.50" in message, message
    assert "until it resets at " in message and message.split("resets at ")[1][:20].endswith("T00:00:00Z")
    assert len(upstream.messages_requests()) == forwarded, "a refused request must not reach the upstream"

    # The official SDK reads it as a rate-limit error and, told not to retry, does not.
    client = anthropic.Anthropic(
        base_url=teams.proxy_url,
        api_key="sk-ant-test-sdk",
        default_headers={"x-nexus-key": teams.client_keys["capped"]},
        max_retries=3,
    )
    with pytest.raises(anthropic.RateLimitError) as exc:
        client.messages.create(model=MODEL, max_tokens=5, messages=[{"role": "user", "content": "hi"}])
    assert "monthly budget" in str(exc.value)
    assert len(upstream.messages_requests()) == forwarded

    # Counting tokens costs nothing and stays allowed; another team is not affected.
    assert send(teams, "capped", "b-4", "/v1/messages/count_tokens").status == 200
    assert send(teams, "free", "b-free").status == 200

    # The refusal is recorded and visible like the proxy's other refusals.
    (refused,) = teams.wait_count(1, session_id="b-3")
    assert refused["status"] == 429 and refused["team"] == "capped"
    assert "budget" in refused["error"]

    listed = {(r["kind"], r["name"], r["period"]): r for r in budgets(teams)}
    row = listed[("team", "capped", "monthly")]
    assert row["spend_usd"] == pytest.approx(0.6, abs=0.01) and row["state"] == "over" and row["refused"]

    # The dashboard shows the same: spend against the cap, over and refused.
    status, doc = teams.api("/api/budgets")
    assert status == 200, doc
    (monthly,) = [b for b in doc["budgets"] if b["subject"] == "team:capped"]
    assert monthly["period"] == "monthly" and monthly["cap_usd"] == CAP
    assert monthly["spend_usd"] == pytest.approx(0.6, abs=0.01) and monthly["share"] > 1
    assert monthly["state"] == "over" and monthly["refused"] is True
    assert monthly["resets_at"].endswith("T00:00:00Z") and monthly["resets_at"][8:10] == "01"
    page = request(
        teams.dashboard_url, "GET", "/budgets", headers={"authorization": f"Bearer {teams.dashboard_key}"}
    )
    assert page.status == 200 and b'id="budget-team-capped-monthly"' in page.body and b"refused" in page.body

    # Raising the cap lets the team through within the proxy's refresh interval.
    out = teams.nexus("budgets", "set", "--team", "capped", "--monthly-usd", "5")
    assert out.returncode == 0, out.stderr
    raised = time.monotonic()
    while send(teams, "capped", "b-5").status == 429:
        assert time.monotonic() - raised < REFRESH_S + 1.0, "still refused after the refresh interval"
        time.sleep(0.05)
    assert send(teams, "capped", "b-6").status == 200


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--team", "nobody", "--monthly-usd", "5"], "no team 'nobody'"),
        (["--key", "0000000000", "--monthly-usd", "5"], "no key with id '0000000000'"),
        (["--team", "free", "--monthly-usd", "0"], "must be a positive number"),
        (["--team", "free", "--monthly-usd", "ten"], "not a number of US dollars: 'ten'"),
        (["--team", "free", "--monthly-usd", "5", "--daily-usd", "9"], "larger than the monthly cap"),
        (["--team", "free", "--monthly-usd", "5", "--warn-at", "120%"], "between 0 and 1"),
        (["--team", "free"], "--monthly-usd"),
        (["--monthly-usd", "5"], "one of the arguments --team --key is required"),
    ],
)
def test_bad_budget_input_is_refused_readably(teams, args, says):
    out = teams.nexus("budgets", "set", *args)
    assert out.returncode == 2
    assert says in out.stderr and "Traceback" not in out.stderr, out.stderr


def test_budgets_cli_round_trip(teams):
    key_id = teams.client_keys["free"].split("_")[1]
    out = teams.nexus(
        "budgets", "set", "--key", key_id, "--monthly-usd", "20", "--daily-usd", "2", "--warn-at", "90%"
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"key {key_id}: $20 a month, $2 a day; warning at 90%"
    rows = [r for r in budgets(teams) if r["name"] == key_id]
    assert [(r["period"], r["cap_usd"], r["warn_at"], r["team"]) for r in rows] == [
        ("monthly", 20.0, 0.9, "free"),
        ("daily", 2.0, 0.9, "free"),
    ]
    assert all(r["spend_usd"] is not None and r["state"] in ("ok", "warning", "over") for r in rows)
    table = teams.nexus("budgets", "list").stdout
    assert f"key {key_id}" in table and "$20.00" in table and "90%" in table
    assert teams.nexus("budgets", "clear", "--key", key_id).returncode == 0
    assert not [r for r in budgets(teams) if r["name"] == key_id]
    again = teams.nexus("budgets", "clear", "--key", key_id)
    assert again.returncode == 2 and "has no budget" in again.stderr


def test_the_dashboard_sets_and_clears_caps_as_the_cli_does(teams):
    auth = {"authorization": f"Bearer {teams.dashboard_key}", "content-type": "application/json"}
    made = post(teams.dashboard_url, "/api/budgets/team/free", {"monthly_usd": 100}, auth)
    assert made.status == 201, made.body
    assert made.json() == {
        "kind": "team",
        "name": "free",
        "monthly_usd": 100,
        "daily_usd": None,
        "warn_at": 0.8,
        "team": None,
    }
    assert ("team", "free", "monthly") in {(r["kind"], r["name"], r["period"]) for r in budgets(teams)}
    nobody = post(teams.dashboard_url, "/api/budgets/team/nobody", {"monthly_usd": 5}, auth)
    assert nobody.status == 404 and "no team 'nobody'" in nobody.json()["error"]["message"]
    contradiction = post(
        teams.dashboard_url, "/api/budgets/team/free", {"monthly_usd": 5, "daily_usd": 6}, auth
    )
    assert contradiction.status == 409
    assert "larger than the monthly cap" in contradiction.json()["error"]["message"]
    for bad, says in [
        ({"monthly_usd": 5, "kind": "team"}, "kind"),
    ]:
        r = post(teams.dashboard_url, "/api/budgets/team/free", bad, auth)
        assert r.status == 400 and says in r.json()["error"]["message"], r.body
    form = {"authorization": auth["authorization"], "content-type": "application/x-www-form-urlencoded"}
    r = request(teams.dashboard_url, "POST", "/budgets", b"kind=team&name=free&monthly_usd=abc", form)
    assert r.status == 400 and b"monthly_usd must be a number" in r.body
    r = request(
        teams.dashboard_url, "POST", "/budgets", b"kind=team&name=free&monthly_usd=70&warn_at=0.5", form
    )
    assert r.status == 303
    assert {(r["name"], r["cap_usd"]) for r in budgets(teams) if r["period"] == "monthly"} >= {("free", 70)}
    cleared = post(teams.dashboard_url, "/api/budgets/team/free/clear", b"", auth)
    assert cleared.status == 200
    assert "free" not in {r["name"] for r in budgets(teams)}
    assert post(teams.dashboard_url, "/api/budgets/team/free/clear", b"", auth).status == 404
