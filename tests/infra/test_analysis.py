"""The analysis pipeline as deployed: the synthesized state machine's shape (CDK assertions), and the
same definition executed by moto's Step Functions with its Lambda tasks dispatched to the real
handlers in-process, against a real PostgreSQL and the scripted upstream: the happy path, chunks
combined, a 429 retried, invalid output retried once then failed with a recorded reason, an unchanged
conversation not analysed again."""

from __future__ import annotations

import json
import time
import zipfile
from io import BytesIO
from typing import Any

import boto3
import psycopg
import pytest
from aws_cdk.assertions import Match, Template
from moto import mock_aws
from moto.awslambda.models import LambdaFunction
from nexus.analysis import pipeline, store
from nexus.analysis.launch import StepFunctionsLauncher
from nexus.db.migrate import migrate

from tests.support.aws import lambda_in_process
from tests.support.conversations import record_conversation
from tests.support.fake_upstream import error_reply

REGION, ACCOUNT = "us-east-1", "123456789012"


def definition(t: Template) -> tuple[Any, dict[str, dict[str, Any]]]:
    ((_, sm),) = t.find_resources("AWS::StepFunctions::StateMachine").items()
    return sm["Properties"]["DefinitionString"], t.find_resources("AWS::Lambda::Function")


def rendered(t: Template) -> dict[str, Any]:
    """The definition with its references resolved to placeholder ARNs (for shape checks)."""
    raw, fns = definition(t)
    return json.loads(resolve(raw, {k: f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{k}" for k in fns}))


def resolve(node: Any, arns: dict[str, str]) -> str:
    if isinstance(node, str):
        return node
    if "Fn::Join" in node:
        sep, items = node["Fn::Join"]
        return sep.join(resolve(i, arns) for i in items)
    if "Fn::GetAtt" in node:
        return arns[node["Fn::GetAtt"][0]]
    if "Ref" in node:
        return {
            "AWS::Partition": "aws",
            "AWS::Region": REGION,
            "AWS::AccountId": ACCOUNT,
            "AWS::URLSuffix": "amazonaws.com",
        }[node["Ref"]]
    raise ValueError(node)


def states(d: dict[str, Any]) -> dict[str, Any]:
    """Every state, Map iterators included, by name."""
    out: dict[str, Any] = {}
    for name, s in d["States"].items():
        out[name] = s
        if s["Type"] == "Map":
            out.update(states(s.get("ItemProcessor") or s["Iterator"]))
    return out


# -- the template -------------------------------------------------------------------------------------


def test_the_state_machine_retries_model_errors_and_records_every_failure(template: Template) -> None:
    s = states(rendered(template))
    call = s["Chunk: call model"]
    (model_retry,) = [r for r in call["Retry"] if "ModelThrottled" in r["ErrorEquals"]]
    assert set(model_retry["ErrorEquals"]) == {*pipeline.RETRYABLE, "States.Timeout"}
    assert model_retry["IntervalSeconds"] == pipeline.RETRY_INTERVAL_S
    assert model_retry["BackoffRate"] == pipeline.RETRY_BACKOFF
    assert model_retry["MaxAttempts"] == pipeline.RETRY_MAX_ATTEMPTS
    assert call["TimeoutSeconds"] == pipeline.CALL_STEP_TIMEOUT_S
    for name in ("Load and condense", "Analyse chunks", "Combine chunks", "Store"):
        assert s[name]["Catch"] == [
            {"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Record the failure"}
        ], name
    assert s["Record the failure"]["Next"] == "Analysis failed"
    assert s["Analyse chunks"]["MaxConcurrency"] == pipeline.MAP_CONCURRENCY
    assert s["Chunk: still invalid"] == {
        "Type": "Fail",
        "Error": "InvalidAnalysis",
        "CausePath": "States.JsonToString($.validation)",  # the error and the spent usage
    }
    assert s["Notify"]["Resource"].endswith(":states:::events:putEvents")


def test_pipeline_resources(template: Template) -> None:
    template.has_resource_properties(
        "AWS::StepFunctions::StateMachine",
        {
            "TracingConfiguration": {"Enabled": True},
            "LoggingConfiguration": Match.object_like({"Level": "ALL"}),
        },
    )
    raw, fns = definition(template)
    assert (
        json.loads(resolve(raw, dict.fromkeys(fns, "arn")))["TimeoutSeconds"] == pipeline.EXECUTION_TIMEOUT_S
    )
    data = next(f for f in fns.values() if f["Properties"]["Handler"] == "nexus_analysis.handler.data")
    model = next(f for f in fns.values() if f["Properties"]["Handler"] == "nexus_analysis.handler.model")
    assert "VpcConfig" in data["Properties"] and "VpcConfig" not in model["Properties"]
    assert "NEXUS_ANALYSIS_PROXY_URL" in model["Properties"]["Environment"]["Variables"]
    template.has_resource_properties(
        "AWS::Events::Rule", {"ScheduleExpression": "rate(5 minutes)", "State": "ENABLED"}
    )
    endpoints = template.find_resources("AWS::EC2::VPCEndpoint")
    assert any(".states" in json.dumps(e["Properties"]["ServiceName"]) for e in endpoints.values())
    template.has_resource_properties(
        "AWS::CloudWatch::Alarm", {"AlarmName": Match.string_like_regexp("-analysis-failed$")}
    )
    dashboard = next(
        f for f in fns.values() if f["Properties"]["Handler"] == "nexus_dashboard.handler.handle"
    )
    assert "NEXUS_ANALYSIS_STATE_MACHINE" in dashboard["Properties"]["Environment"]["Variables"]


# -- executed by moto ---------------------------------------------------------------------------------


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch, templates: dict[str, Template], database_url: str, upstream) -> Any:
    from nexus_analysis import handler

    migrate(database_url)
    for k, v in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "DATABASE_URL": database_url,
        "NEXUS_SECRETS_PREFIX": "staging/",
        "NEXUS_ANALYSIS_PROXY_URL": upstream.url,  # the proxy is the local tests' business
    }.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setattr(handler, "_cached", {})
    monkeypatch.setattr(LambdaFunction, "_invoke_lambda", lambda_in_process)
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        iam = boto3.client("iam")
        role = iam.create_role(RoleName="pipeline", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        lam, sfn = boto3.client("lambda"), boto3.client("stepfunctions")
        raw, fns = definition(templates["staging"])
        zipped = BytesIO()
        with zipfile.ZipFile(zipped, "w") as z:
            z.writestr("placeholder.py", "")
        arns = {}
        for logical, fn in fns.items():
            arns[logical] = lam.create_function(
                FunctionName=logical,
                Runtime="python3.12",
                Role=role,
                Handler=fn["Properties"]["Handler"],
                Code={"ZipFile": zipped.getvalue()},
            )["FunctionArn"]
        arn = sfn.create_state_machine(name="pipeline", definition=resolve(raw, arns), roleArn=role)[
            "stateMachineArn"
        ]
        boto3.client("secretsmanager").create_secret(
            Name="staging/nexus/analysis",
            SecretString=json.dumps({"team": "ops", "key": "nxk_analysis_test", "budget_tokens": 1000}),
        )
        with psycopg.connect(database_url, autocommit=True) as conn:
            yield Pipeline(conn, sfn, arn)


class Pipeline:
    def __init__(self, conn: psycopg.Connection, sfn: Any, arn: str) -> None:
        self.conn, self.sfn, self.arn = conn, sfn, arn

    def run(self, cid: str) -> dict[str, Any]:
        """Queue a run as the dashboard does, start it as the dashboard does, wait for its end."""
        queued = store.enqueue(self.conn, cid, "manual")
        assert queued is not None and queued.created
        StepFunctionsLauncher(self.arn, self.sfn).start(queued.id, cid)
        execution = f"{self.arn.replace(':stateMachine:', ':execution:')}:{queued.id}"
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            d = self.sfn.describe_execution(executionArn=execution)
            if d["status"] != "RUNNING":
                history = self.sfn.get_execution_history(executionArn=execution, maxResults=1000)["events"]
                entered = [
                    e["stateEnteredEventDetails"]["name"] for e in history if "stateEnteredEventDetails" in e
                ]
                return {"status": d["status"], "entered": entered, "id": queued.id}
            time.sleep(0.2)
        raise AssertionError("the execution did not finish")

    def row(self, analysis_id: str) -> dict[str, Any] | None:
        from psycopg.rows import dict_row

        with self.conn.cursor(row_factory=dict_row) as cur:
            return cur.execute("SELECT * FROM analyses WHERE id = %s", (analysis_id,)).fetchone()


def test_a_conversation_is_analysed_by_the_deployed_definition(aws: Pipeline, upstream) -> None:
    cid = record_conversation(aws.conn, ["Add a --verbose flag to the CLI", "now make it the default"])
    run = aws.run(cid)
    assert run["status"] == "SUCCEEDED", run
    assert run["entered"][:2] == ["Load and condense", "Already analysed?"]
    assert {"Chunk: read chunk", "Chunk: call model", "Chunk: validate", "Store", "Notify"} <= set(
        run["entered"]
    )
    row = aws.row(run["id"])
    assert row is not None and row["status"] == "done" and row["outcome"] == "resolved"
    assert row["analysis"]["tips"][0]["quote"] == "Add a --verbose flag"
    assert row["analysis"]["tips"][0]["request_id"] is not None
    seen = [s for s in upstream.messages_requests() if "You review Claude Code" in s.body.decode()]
    assert len(seen) == 1
    assert "nxk_analysis_test" in (seen[0].header("x-api-key") or seen[0].header("authorization") or "")

    # unchanged: the skip branch, no model call
    again = aws.run(cid)
    assert again["status"] == "SUCCEEDED" and "Unchanged: not analysed again" in again["entered"]
    assert upstream.analysis_calls == 1 and aws.row(again["id"]) is None


def test_a_long_conversation_is_analysed_in_chunks_and_combined(aws: Pipeline, upstream) -> None:
    prompts = [f"step {i}: " + "please refactor the parser module carefully " * 40 for i in range(8)]
    cid = record_conversation(aws.conn, prompts)
    run = aws.run(cid)
    assert run["status"] == "SUCCEEDED", run
    row = aws.row(run["id"])
    assert row is not None
    facts = row["analysis"]["facts"]
    assert facts["chunks"] > 1 and facts["calls"] == facts["chunks"] + 1
    assert "Combine: call model" in run["entered"]
    assert row["analysis"]["tips"][0]["request"] == 1  # carried through the combine step


def test_a_rate_limited_call_is_retried_by_the_state_machine(aws: Pipeline, upstream) -> None:
    cid = record_conversation(aws.conn, ["rename the module"])
    upstream.enqueue(error_reply(429, "rate_limit_error", "slow down"))
    run = aws.run(cid)
    assert run["status"] == "SUCCEEDED", run
    assert run["entered"].count("Chunk: call model") == 1  # one state, two attempts (Retry)
    assert len(upstream.messages_requests()) == 2
    assert aws.row(run["id"])["status"] == "done"  # type: ignore[index]


def test_invalid_output_twice_fails_with_the_reason_recorded(aws: Pipeline, upstream) -> None:
    cid = record_conversation(aws.conn, ["fix the flaky test"])
    upstream.analysis_invalid = -1
    run = aws.run(cid)
    assert run["status"] == "FAILED"
    assert (
        run["entered"].count("Chunk: call model") == 2 and "Chunk: try again with the error" in run["entered"]
    )
    assert run["entered"][-2:] == ["Record the failure", "Analysis failed"]
    row = aws.row(run["id"])
    assert row is not None and row["status"] == "failed"
    assert row["reason"].startswith("InvalidAnalysis: the answer holds no JSON object")
    # the tokens of both invalid answers are recorded with the failure
    assert row["calls"] == 2 and row["input_tokens"] > 0 and row["output_tokens"] > 0
    assert row["cost_usd"] is not None and row["cost_usd"] > 0


# -- Bedrock as the stage's model provider ------------------------------------------------------------


def test_a_stage_on_bedrock_grants_the_model_function_invoke_model(options_template: Template) -> None:
    t = options_template  # analysis_bedrock_region="eu-west-1"
    _, fns = definition(t)
    logical, model = next(
        (k, f) for k, f in fns.items() if f["Properties"]["Handler"] == "nexus_analysis.handler.model"
    )
    assert model["Properties"]["Environment"]["Variables"]["NEXUS_ANALYSIS_BEDROCK_REGION"] == "eu-west-1"
    role = model["Properties"]["Role"]["Fn::GetAtt"][0]
    policies = [
        p for p in t.find_resources("AWS::IAM::Policy").values() if {"Ref": role} in p["Properties"]["Roles"]
    ]
    granted = [
        s
        for p in policies
        for s in p["Properties"]["PolicyDocument"]["Statement"]
        if s["Action"] == "bedrock:InvokeModel"
    ]
    assert len(granted) == 1
    resources = json.dumps(granted[0]["Resource"])
    assert "foundation-model/anthropic.*" in resources and "inference-profile/*anthropic.*" in resources
    # no other function may call Bedrock, and a stage without the setting grants nothing
    assert sum("bedrock:" in json.dumps(p) for p in t.find_resources("AWS::IAM::Policy").values()) == 1
    assert logical  # the model function, found by its handler


def test_the_default_stages_grant_no_bedrock(template: Template) -> None:
    assert "bedrock:" not in json.dumps(template.find_resources("AWS::IAM::Policy"))


def test_a_conversation_is_analysed_on_bedrock(aws: Pipeline, upstream, monkeypatch) -> None:
    """The stage sends model calls to Bedrock: SigV4-signed InvokeModel on the configured inference
    profile, never the proxy, and the run is costed at the model's price."""
    from nexus_analysis import handler

    profile = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
    monkeypatch.setenv("NEXUS_ANALYSIS_BEDROCK_REGION", REGION)
    monkeypatch.setenv("ANTHROPIC_BEDROCK_BASE_URL", upstream.url)  # Bedrock's endpoint, scripted
    monkeypatch.setattr(handler, "_cached", {})
    boto3.client("secretsmanager").put_secret_value(
        SecretId="staging/nexus/analysis",
        SecretString=json.dumps({"team": "ops", "key": "nxk_analysis_test", "model": profile}),
    )
    cid = record_conversation(aws.conn, ["Add a --verbose flag to the CLI"])
    run = aws.run(cid)
    assert run["status"] == "SUCCEEDED", run
    assert upstream.messages_requests() == []  # not through the proxy
    [call] = upstream.bedrock_requests()
    assert call.path == f"/model/{profile}/invoke"
    assert f"/{REGION}/bedrock/aws4_request" in (call.header("authorization") or "")
    row = aws.row(run["id"])
    assert row is not None and row["status"] == "done"
    facts = row["analysis"]["facts"]
    # Sonnet 4.5: $3 in, $15 out per million tokens
    expected = (facts["input_tokens"] * 3 + facts["output_tokens"] * 15) / 1_000_000
    assert facts["cost_usd"] == pytest.approx(expected) and expected > 0


def test_the_stage_dashboard_graphs_the_pipeline(template: Template) -> None:
    """The stage's CloudWatch dashboard shows the pipeline's runs (started, succeeded, failed, timed
    out) and their run time, of this stage's state machine."""
    (dashboard,) = template.find_resources("AWS::CloudWatch::Dashboard").values()
    body = json.dumps(dashboard["Properties"]["DashboardBody"])
    (machine,) = template.find_resources("AWS::StepFunctions::StateMachine")
    for title in ("AI analysis runs", "AI analysis run time (ms)"):
        assert title in body
    for metric in ("ExecutionsStarted", "ExecutionsSucceeded", "ExecutionsFailed", "ExecutionsTimedOut"):
        assert metric in body
    assert "ExecutionTime" in body and machine in body
