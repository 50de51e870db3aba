"""Alert decisions on fixed data: thresholds, rejections, error rates, what a message says (and never
says), and the per-team configuration as the store keeps it."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from nexus.alert_events import ERROR_RATE, RATE_LIMIT, AlertEvent
from nexus.alerts import message, rules
from nexus.alerts.channels import event_json, parse_event
from nexus.alerts.config import ALERTS_SECRET, AlertSettings, TeamAlerts, fingerprint
from nexus.secret_store import LocalSecretStore

P = "anthropic-ratelimit-unified-"
AT = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
WEBHOOK = "https://hooks.slack.com/services/T0001/B0001/abcdefSECRET"


def row(team="web", account="acct1", http=200, headers='[["content-type","application/json"]]', **rl):
    return {
        "id": "r1",
        "team": team,
        "account": account,
        "status": http,
        "received_at": AT,
        "response_headers": headers,
        "ratelimit": json.dumps({P + k.replace("_", "-"): v for k, v in rl.items()}) if rl else None,
    }


def conf_for(**kw):
    conf = TeamAlerts(**kw)
    return lambda team: conf


def test_utilisation_under_the_threshold_raises_nothing():
    rows = [row(**{"status": "allowed", "5h_utilization": "0.89", "7d_utilization": "0.5"})]
    assert rules.rate_limit_events(rows, conf_for(rate_limit_threshold=0.9)) == []


def test_utilisation_over_the_threshold_raises_one_warning_per_window_and_reset():
    rows = [
        row(**{"status": "allowed_warning", "5h_utilization": "0.91", "5h_reset": "1800000000"}),
        row(**{"status": "allowed_warning", "5h_utilization": "0.95", "5h_reset": "1800000000"}),
    ]
    (event,) = rules.rate_limit_events(rows, conf_for(rate_limit_threshold=0.9))
    assert (event.kind, event.level, event.team, event.subject) == (RATE_LIMIT, "warning", "web", "team:web")
    assert event.facts["utilization"] == 0.95  # the highest reading of the batch
    assert event.dedup_key == "rate_limit:web:acct1:5h:1800000000"
    assert "95%" in event.message and "5-hour" in event.message and "2027-01-15" in event.message
    # The next 5-hour window is a new crossing: a different key.
    later = [row(**{"5h_utilization": "0.92", "5h_reset": "1800018000"})]
    assert rules.rate_limit_events(later, conf_for())[0].dedup_key != event.dedup_key


def test_rejected_is_critical_and_keyed_by_its_reset():
    rows = [row(http=429, **{"status": "rejected", "reset": "1800000000", "5h_utilization": "1.0"})]
    (event,) = rules.rate_limit_events(rows, conf_for())
    assert event.level == "critical" and "rejecting" in event.message
    assert event.dedup_key == "rate_limit:web:acct1:rejected:1800000000"


def test_a_team_can_turn_rate_limit_alerts_off_and_rows_without_unified_headers_are_ignored():
    rows = [row(**{"5h_utilization": "0.99"})]
    assert rules.rate_limit_events(rows, conf_for(off=(RATE_LIMIT,))) == []
    assert rules.rate_limit_events([row()], conf_for()) == []


def test_requests_without_a_team_go_to_the_operators():
    (event,) = rules.rate_limit_events([row(team=None, **{"7d_utilization": "0.97"})], conf_for())
    assert event.team is None and event.subject == "account:acct1"


def test_failures_are_5xx_and_upstream_429_not_the_proxys_own_429():
    assert rules.is_failure(row(http=529)) and rules.is_failure(row(http=500, headers="[]"))
    assert rules.is_failure(row(http=429))
    assert not rules.is_failure(row(http=429, headers="[]"))  # e.g. a budget refusal by the proxy
    assert not rules.is_failure(row(http=400)) and not rules.is_failure(row(http=200))


def test_error_rate_needs_a_failure_in_the_batch_to_be_counted_at_all():
    assert rules.error_rate_window([row(http=200)], conf_for()) is None
    window = rules.error_rate_window([row(http=200), row(http=529)], conf_for(error_rate_window_s=600))
    assert window is not None and window.teams == {"web": 600} and window.until == AT


@pytest.mark.parametrize(
    ("requests", "failures", "level"),
    [(19, 19, None), (20, 4, None), (20, 5, "warning"), (40, 20, "critical")],
)
def test_error_rate_threshold_and_minimum_volume(requests, failures, level):
    conf = TeamAlerts(error_rate_share=0.25, error_rate_min_requests=20)
    event = rules.error_rate_event("web", requests, failures, conf, AT)
    assert (event.level if event else None) == level
    if event:
        assert event.kind == ERROR_RATE and event.dedup_key == "error_rate:web"
        assert event.window_s == conf.error_rate_window_s


def test_messages_never_carry_a_secret():
    event = AlertEvent(
        kind=RATE_LIMIT,
        level="critical",
        team="web",
        subject="team:web",
        message=f"leaked {WEBHOOK} and sk-ant-oat01-abcdef and nxk_ab12_secret",
        dedup_key="k",
        facts={"token": "sk-ant-api03-xyz", "hook": WEBHOOK, "n": 0.912345},
    )
    slack = json.dumps(message.slack(event, "staging"))
    subject, text = message.email(event, "staging")
    machine = event_json(event, 7, "staging")
    for out in (slack, subject, text, machine):
        for secret in ("abcdefSECRET", "sk-ant-", "nxk_ab12", "hooks.slack.com"):
            assert secret not in out
    assert subject == "[Nexus staging] critical: rate limit (team web)" and len(subject) <= 100
    assert "n: 0.9123" in text and ":rotating_light:" in slack
    parsed, alert_id, stage = parse_event(machine)
    assert (parsed.kind, parsed.team, parsed.level, alert_id, stage) == (
        RATE_LIMIT,
        "web",
        "critical",
        7,
        "staging",
    )


def test_team_settings_round_trip_and_the_webhook_is_its_own_secret(tmp_path):
    store = LocalSecretStore(tmp_path / "secrets.json")
    settings = AlertSettings(store)
    settings.update("web", rate_limit_threshold=0.8, email=("ops@example.com",), off=(ERROR_RATE,))
    conf = settings.set_slack_webhook("web", WEBHOOK)
    assert conf.slack_fingerprint == fingerprint(WEBHOOK) and conf.rate_limit_threshold == 0.8
    assert WEBHOOK not in (store.get(ALERTS_SECRET) or "")  # the document has the fingerprint only
    assert settings.slack_webhook("web") == WEBHOOK
    assert settings.team("web").off == (ERROR_RATE,) and settings.team("other") == TeamAlerts()
    with pytest.raises(ValueError, match="https"):
        settings.set_slack_webhook("web", "http://example.com/hook")
    with pytest.raises(ValueError, match="threshold"):
        settings.update("web", rate_limit_threshold=1.5)
    with pytest.raises(ValueError, match="unknown kind"):
        settings.update("web", off=("nope",))
    assert not settings.remove_slack_webhook("web").slack and settings.slack_webhook("web") is None


def test_the_slack_client_never_logs_the_webhook_even_at_debug(caplog):
    import logging

    from nexus.alerts.channels import SlackChannel

    event = AlertEvent(kind=RATE_LIMIT, level="info", team="web", subject="s", message="m", dedup_key="k")
    with caplog.at_level(logging.DEBUG):
        error = SlackChannel(timeout_s=1).send("http://127.0.0.1:9/services/T/B/SECRETPART", event)
    assert error is not None and "SECRETPART" not in error
    assert "SECRETPART" not in caplog.text
