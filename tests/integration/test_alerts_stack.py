"""Alerts through `nexus dev`: the scripted upstream answers with real unified rate-limit headers (or
fails), the stack ingests, and a real HTTP server standing in for Slack receives the alerts; the log
shows in the dashboard and in `nexus alerts log`. Teams are configured with the CLI before the start."""

from __future__ import annotations

import json
import time
import uuid

import pytest

from tests.integration.http import CLAUDE_HEADERS, post, request
from tests.support.fake_upstream import Usage, error_reply, text_reply
from tests.support.stack import Stack, running_stack
from tests.support.webhook import WebhookReceiver

TEAMS = ("web", "mobile", "batch", "broken", "spend")
RESET = "1800000000"


@pytest.fixture(scope="module")
def receiver():
    r = WebhookReceiver().start()
    yield r
    r.stop()


@pytest.fixture(scope="module")
def keys() -> dict[str, str]:
    return {}


@pytest.fixture(scope="module")
def alert_stack(pg_server, fake_upstream, tmp_path_factory, receiver, keys):
    def configure(s: Stack) -> None:
        for team in TEAMS:
            made = s.nexus("keys", "create", "--team", team, "--user", "ann")
            assert made.returncode == 0, made.stderr
            keys[team] = made.stdout.strip()
            extra = ["--error-rate", "0.5", "--error-rate-min-requests", "3"] if team == "batch" else []
            done = s.nexus(
                "alerts", "set", team, "--slack-webhook-stdin", *extra, input=receiver.url(f"/hook/{team}")
            )
            assert done.returncode == 0, done.stderr
        capped = s.nexus("budgets", "set", "--team", "spend", "--monthly-usd", "0.001")
        assert capped.returncode == 0, capped.stderr

    with running_stack(
        pg_server, fake_upstream, tmp_path_factory.mktemp("alerts"), before_start=configure
    ) as s:
        yield s


def _send(stack: Stack, key: str, upstream, session: str | None = None):
    """One streamed request of the key's team (its reply is already enqueued on ``upstream``)."""
    session = session or str(uuid.uuid4())
    body = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 64,
        "stream": True,
        "messages": [{"role": "user", "content": "hello"}],
    }
    headers = {**CLAUDE_HEADERS, "x-claude-code-session-id": session, "x-nexus-key": key}
    return post(stack.proxy_url, "/v1/messages?beta=true", body, headers)


def _usage_headers(util_5h: str, status: str = "allowed_warning") -> dict[str, str]:
    return {
        "anthropic-ratelimit-unified-status": status,
        "anthropic-ratelimit-unified-5h-utilization": util_5h,
        "anthropic-ratelimit-unified-5h-reset": RESET,
        "anthropic-ratelimit-unified-7d-utilization": "0.40",
        "anthropic-ratelimit-unified-reset": RESET,
    }


def _alerts(stack: Stack, team: str) -> list[dict]:
    status, body = stack.api(f"/api/alerts?team={team}")
    assert status == 200, body
    return body["alerts"]


def _wait_alerts(stack: Stack, team: str, predicate, timeout: float = 20) -> list[dict]:
    deadline = time.monotonic() + timeout
    rows: list[dict] = []
    while time.monotonic() < deadline:
        rows = _alerts(stack, team)
        if predicate(rows):
            return rows
        time.sleep(0.1)
    raise AssertionError(f"alerts of {team} never matched: {rows}")


def test_utilisation_over_the_threshold_posts_once_per_crossing(alert_stack, upstream, receiver, keys):
    session = str(uuid.uuid4())
    upstream.enqueue(text_reply("one", headers=_usage_headers("0.95")))
    assert _send(alert_stack, keys["web"], upstream, session).status == 200
    (post_,) = receiver.wait(1, "/hook/web")
    text = post_["json"]["text"]
    assert "[Nexus] warning: rate limit (team web)" in text and "95%" in text and "5-hour" in text
    (row,) = _wait_alerts(alert_stack, "web", lambda r: len(r) == 1 and r[0]["delivered"] == ["slack"])
    assert (row["kind"], row["level"], row["repeats"], row["errors"]) == ("rate_limit", "warning", 0, {})
    assert row["facts"]["utilization"] == 0.95 and row["facts"]["reset"] == RESET

    # The same window crosses again (a later request, a later batch): counted, not re-sent.
    upstream.enqueue(text_reply("two", headers=_usage_headers("0.97")))
    assert _send(alert_stack, keys["web"], upstream, session).status == 200
    _wait_alerts(alert_stack, "web", lambda r: len(r) == 1 and r[0]["repeats"] == 1)
    assert len(receiver.received("/hook/web")) == 1


def test_rejected_status_is_a_critical_alert(alert_stack, upstream, receiver, keys):
    upstream.enqueue(
        error_reply(
            429,
            "rate_limit_error",
            "Number of requests has exceeded your rate limit",
            headers=_usage_headers("1.0", status="rejected"),
        )
    )
    assert _send(alert_stack, keys["mobile"], upstream).status == 429
    (post_,) = receiver.wait(1, "/hook/mobile")
    assert post_["json"]["text"].startswith("[Nexus] critical: rate limit (team mobile)")
    assert ":rotating_light:" in post_["json"]["blocks"][0]["text"]["text"]
    (row,) = _wait_alerts(alert_stack, "mobile", lambda r: len(r) == 1)
    assert row["level"] == "critical" and "rejecting" in row["message"]


def test_an_error_rate_spike_raises_an_error_rate_alert(alert_stack, upstream, receiver, keys):
    for _ in range(3):  # team batch: alert at 50% failed of at least 3 requests
        upstream.enqueue(error_reply(529, "overloaded_error", "Overloaded"))
        assert _send(alert_stack, keys["batch"], upstream).status == 529
    (post_,) = receiver.wait(1, "/hook/batch")
    assert "error rate (team batch)" in post_["json"]["text"]
    (row,) = _wait_alerts(alert_stack, "batch", lambda r: len(r) == 1)
    assert row["kind"] == "error_rate" and row["level"] == "critical"
    assert (row["facts"]["requests"], row["facts"]["failures"]) == (3, 3)


def test_a_failing_webhook_is_logged_in_the_row_and_ingest_goes_on(alert_stack, upstream, receiver, keys):
    receiver.failing["/hook/broken"] = 500
    session = str(uuid.uuid4())
    upstream.enqueue(text_reply("over", headers=_usage_headers("0.99")))
    assert _send(alert_stack, keys["broken"], upstream, session).status == 200
    (row,) = _wait_alerts(alert_stack, "broken", lambda r: len(r) == 1 and r[0]["delivered_at"])
    assert row["delivered"] == [] and row["errors"] == {"slack": "HTTP 500: internal_error"}
    assert len(receiver.received("/hook/broken")) == 1  # one attempt
    upstream.enqueue(text_reply("still recorded"))
    assert _send(alert_stack, keys["broken"], upstream, session).status == 200
    assert len(alert_stack.wait_count(2, session_id=session)) == 2


def test_budgets_raise_their_alerts_through_the_same_notifier(alert_stack, upstream, receiver, keys):
    upstream.enqueue(text_reply("costly", usage=Usage(input_tokens=1000)))  # $0.00318 > the $0.001 cap
    assert _send(alert_stack, keys["spend"], upstream).status == 200
    (post_,) = receiver.wait(1, "/hook/spend")
    assert post_["json"]["text"].startswith("[Nexus] critical: budget exceeded (team spend)")
    (row,) = _wait_alerts(alert_stack, "spend", lambda r: len(r) == 1 and r[0]["delivered"])
    assert (row["kind"], row["delivered"]) == ("budget_exceeded", ["slack"])


def test_the_dashboard_shows_the_log_and_channels_without_webhooks(alert_stack, upstream, receiver, keys):
    upstream.enqueue(text_reply("dash", headers=_usage_headers("0.93")))
    team = "web"
    _send(alert_stack, keys[team], upstream)
    _wait_alerts(alert_stack, team, lambda r: len(r) >= 1)
    status, body = alert_stack.api("/api/alerts")
    assert status == 200
    assert [t["team"] for t in body["teams"]] == sorted(TEAMS)
    assert all(t["slack"] and t["slack_fingerprint"].startswith("sha256:") for t in body["teams"])
    assert "rate_limit" in body["kinds"]
    created = [a["created_at"] for a in body["alerts"]]
    assert created == sorted(created, reverse=True)
    status, only = alert_stack.api("/api/alerts?kind=error_rate")
    assert status == 200 and {a["kind"] for a in only["alerts"]} <= {"error_rate"}
    page = request(
        alert_stack.dashboard_url,
        "GET",
        "/alerts?team=web",
        headers={"authorization": f"Bearer {alert_stack.dashboard_key}"},
    )
    html = page.body.decode()
    assert page.status == 200 and "of the 5-hour rate limit" in html, html
    assert "sha256:" in html and "/hook/" not in html and str(receiver.server.server_address[1]) not in html
    assert request(alert_stack.dashboard_url, "GET", "/alerts").status == 303  # to the login page
    assert request(alert_stack.dashboard_url, "GET", "/api/alerts").status == 401


def test_cli_show_test_and_log(alert_stack, receiver):
    shown = alert_stack.nexus("alerts", "show", "web", "--json")
    assert shown.returncode == 0, shown.stderr
    doc = json.loads(shown.stdout)
    assert doc["slack"].startswith("sha256:") and doc["rate_limit_threshold"] == 0.9
    assert "/hook/web" not in shown.stdout

    changed = alert_stack.nexus(
        "alerts", "set", "web", "--rate-limit-threshold", "0.8", "--off", "error_rate"
    )
    assert changed.returncode == 0, changed.stderr
    assert (
        "alert at 80%" in changed.stdout and "error_rate" in changed.stdout and "/hook/" not in changed.stdout
    )
    bad = alert_stack.nexus("alerts", "set", "web", "--rate-limit-threshold", "2")
    assert bad.returncode == 2 and "threshold" in bad.stderr

    before = len(receiver.received("/hook/web"))
    tested = alert_stack.nexus("alerts", "test", "web")
    assert tested.returncode == 0, tested.stderr
    assert "sent: Slack" in tested.stdout
    posts = receiver.wait(before + 1, "/hook/web")
    assert "A test alert for team web" in posts[-1]["json"]["text"]

    logged = alert_stack.nexus("alerts", "log", "--team", "web", "--json")
    assert logged.returncode == 0, logged.stderr
    rows = json.loads(logged.stdout)
    assert rows and all(r["team"] == "web" for r in rows) and rows[-1]["kind"] == "rate_limit"
    table = alert_stack.nexus("alerts", "log")
    assert table.returncode == 0 and "rate_limit" in table.stdout and "HTTP 500" in table.stdout
