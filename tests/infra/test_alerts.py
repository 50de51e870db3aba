"""The alerts shape in AWS (ADR 0018): ingest (in the VPC) publishes to an encrypted alerts topic
through an SNS endpoint limited to that topic; the notifier function, outside the VPC, is subscribed
for team alerts, reads only the webhook secrets, and makes one attempt per alert."""

from __future__ import annotations

import json

from aws_cdk.assertions import Match, Template

from tests.infra.test_stacks import function, only, resources, statements


def _alerts_topic(t: Template) -> tuple[str, dict]:
    return only(t, "AWS::SNS::Topic", DisplayName=Match.string_like_regexp("alerts$"))


def _resources_of(stmts: list[dict], action: str) -> list[str]:
    out = []
    for s in stmts:
        actions = s["Action"] if isinstance(s["Action"], list) else [s["Action"]]
        if action in actions:
            out.append(json.dumps(s["Resource"]))
    return out


def test_the_alerts_topic_is_encrypted_and_refuses_plain_http(template: Template) -> None:
    logical, topic = _alerts_topic(template)
    assert "KmsMasterKeyId" in topic["Properties"]
    (policy,) = [
        p
        for p in resources(template, "AWS::SNS::TopicPolicy").values()
        if {"Ref": logical} in p["Properties"]["Topics"]
    ]
    (deny,) = policy["Properties"]["PolicyDocument"]["Statement"]
    assert deny["Effect"] == "Deny" and deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_the_vpc_reaches_sns_through_an_endpoint_that_publishes_to_the_alerts_topic_only(
    template: Template,
) -> None:
    logical, _ = _alerts_topic(template)
    endpoints = resources(template, "AWS::EC2::VPCEndpoint")
    (sns,) = [e for e in endpoints.values() if "sns" in json.dumps(e["Properties"]["ServiceName"])]
    assert sns["Properties"]["VpcEndpointType"] == "Interface" and sns["Properties"]["PrivateDnsEnabled"]
    (stmt,) = sns["Properties"]["PolicyDocument"]["Statement"]
    assert (stmt["Action"], stmt["Resource"]) == ("sns:Publish", {"Ref": logical})


def test_ingest_logs_then_publishes_to_the_topic(template: Template) -> None:
    logical, _ = _alerts_topic(template)
    _, ingest = function(template, "nexus_ingest.handler.handle")
    variables = ingest["Properties"]["Environment"]["Variables"]
    assert variables["NEXUS_ALERTS_TOPIC_ARN"] == {"Ref": logical}
    assert variables["NEXUS_SECRETS_PREFIX"]
    stmts = statements(template, ingest)
    assert _resources_of(stmts, "sns:Publish") == [json.dumps({"Ref": logical})]
    assert not any("slack-webhook" in json.dumps(s) for s in stmts)  # it never delivers to Slack


def test_the_notifier_runs_outside_the_vpc_once_per_alert_for_team_alerts(template: Template) -> None:
    logical, _ = _alerts_topic(template)
    fn_logical, fn = function(template, "nexus_notifier.handler.handle")
    assert "VpcConfig" not in fn["Properties"]
    assert fn["Properties"]["Environment"]["Variables"]["NEXUS_SECRETS_PREFIX"]
    (invoke,) = resources(template, "AWS::Lambda::EventInvokeConfig").values()
    assert invoke["Properties"]["MaximumRetryAttempts"] == 0
    assert invoke["Properties"]["FunctionName"] == {"Ref": fn_logical}
    sub = only(template, "AWS::SNS::Subscription", Protocol="lambda")[1]["Properties"]
    assert sub["TopicArn"] == {"Ref": logical} and sub["FilterPolicy"] == {"audience": ["team"]}
    reads = json.dumps(_resources_of(statements(template, fn), "secretsmanager:GetSecretValue"))
    assert "nexus/team/*/slack-webhook*" in reads and "anthropic-api-key" not in reads
    assert not _resources_of(statements(template, fn), "sns:Publish")


def test_only_the_proxy_reads_team_api_keys(template: Template) -> None:
    for handler, expected in (
        ("run.sh", True),
        ("nexus_ingest.handler.handle", False),
        ("nexus_dashboard.handler.handle", False),
        ("nexus_notifier.handler.handle", False),
    ):
        stmts = json.dumps(statements(template, function(template, handler)[1]))
        assert ("nexus/team/*/anthropic-api-key*" in stmts) is expected, handler
        assert 'nexus/team/*"' not in stmts and "nexus/team/\\u002a" not in stmts


def test_operators_alerts_go_to_the_alarm_email_and_the_topic_is_an_output(
    templates, options_template
) -> None:
    t = options_template  # alarm_email="ops@example.com"
    logical, _ = _alerts_topic(t)
    email = [
        s["Properties"]
        for s in resources(t, "AWS::SNS::Subscription").values()
        if s["Properties"]["Protocol"] == "email" and s["Properties"]["TopicArn"] == {"Ref": logical}
    ]
    assert email == [
        {
            "Protocol": "email",
            "TopicArn": {"Ref": logical},
            "Endpoint": "ops@example.com",
            "FilterPolicy": {"audience": ["operators"]},
        }
    ]
    assert templates["prod"].find_outputs("AlertsTopic")


def test_the_oauth_refresher_publishes_credential_failures_to_the_topic(template: Template) -> None:
    logical, _ = _alerts_topic(template)
    _, fn = function(template, "nexus_credentials.handler.handle")
    assert fn["Properties"]["Environment"]["Variables"]["NEXUS_ALERTS_TOPIC_ARN"] == {"Ref": logical}
    assert _resources_of(statements(template, fn), "sns:Publish") == [json.dumps({"Ref": logical})]
