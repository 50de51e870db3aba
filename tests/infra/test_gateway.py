"""The gateway's AWS shape (ADR 0015): front -> router -> worker tasks, what each may reach and do,
how the workers scale and are watched, and the worker image's Dockerfile.

Templates come from the suite's one synth per stage (``conftest.py``); the NAT variant synthesizes
once more.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from aws_cdk.assertions import Template
from nexus import env
from nexus import metrics as m
from nexus_gateway.settings import ENV_PREFIX, GatewaySettings

from infra import gateway as gw
from infra.config import STAGES, StageConfig, load_stage
from infra.layers import requirements
from tests.conftest import strict_skips
from tests.infra.test_stacks import (
    actions_of,
    default_routes,
    function,
    only,
    resources,
    route_tables_of,
    statements,
    subnet_group,
    subnets_in,
)

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / gw.DOCKERFILE
PORT = env.DEFAULT_GATEWAY_WORKER_PORT


def stage_of(t: Template) -> StageConfig:
    names = {s["Properties"]["Name"] for s in resources(t, "AWS::SecretsManager::Secret").values()}
    return load_stage("prod" if "prod/nexus/keys" in names else "staging")


def ref(logical: str) -> dict[str, str]:
    return {"Ref": logical}


def group_id(logical: str) -> dict[str, list[str]]:
    return {"Fn::GetAtt": [logical, "GroupId"]}


def security_group(t: Template, description_start: str) -> tuple[str, dict[str, Any]]:
    found = [
        (k, v)
        for k, v in resources(t, "AWS::EC2::SecurityGroup").items()
        if v["Properties"]["GroupDescription"].startswith(description_start)
    ]
    assert len(found) == 1, description_start
    return found[0]


def ingress(t: Template, sg: str) -> list[dict[str, Any]]:
    """Every ingress rule of a security group: inline and separate resources."""
    inline = resources(t, "AWS::EC2::SecurityGroup")[sg]["Properties"].get("SecurityGroupIngress", [])
    separate = [
        r["Properties"]
        for r in resources(t, "AWS::EC2::SecurityGroupIngress").values()
        if r["Properties"]["GroupId"] == group_id(sg)
    ]
    return [*inline, *separate]


def egress(t: Template, sg: str) -> list[dict[str, Any]]:
    inline = resources(t, "AWS::EC2::SecurityGroup")[sg]["Properties"].get("SecurityGroupEgress", [])
    separate = [
        r["Properties"]
        for r in resources(t, "AWS::EC2::SecurityGroupEgress").values()
        if r["Properties"]["GroupId"] == group_id(sg)
    ]
    return [*inline, *separate]


def container(t: Template) -> dict[str, Any]:
    task = only(t, "AWS::ECS::TaskDefinition")[1]["Properties"]
    (worker,) = task["ContainerDefinitions"]
    return worker


def container_env(t: Template) -> dict[str, Any]:
    return {v["Name"]: v["Value"] for v in container(t)["Environment"]}


# -- front and router ------------------------------------------------------------------------------


def test_front_streams_through_a_public_url_outside_the_vpc(template: Template) -> None:
    logical, fn = function(template, "front.sh")
    props = fn["Properties"]
    variables = props["Environment"]["Variables"]
    assert "VpcConfig" not in props
    assert variables["AWS_LAMBDA_EXEC_WRAPPER"] == "/opt/bootstrap"
    assert variables["AWS_LWA_INVOKE_MODE"] == "response_stream"
    assert variables["POWERTOOLS_SERVICE_NAME"] == m.GATEWAY_SERVICE
    assert variables[env.GATEWAY_ROUTER_FUNCTION] == ref(function(template, "router.sh")[0])
    assert props["Timeout"] == 900
    assert any("LambdaAdapterLayer" in json.dumps(layer) for layer in props["Layers"])
    url = only(template, "AWS::Lambda::Url", TargetFunctionArn={"Fn::GetAtt": [logical, "Arn"]})[1]
    assert url["Properties"]["InvokeMode"] == "RESPONSE_STREAM"
    assert url["Properties"]["AuthType"] == "NONE"  # OpenAI clients cannot sign SigV4: Nexus keys
    output = template.find_outputs("GatewayUrl")["GatewayUrl"]
    assert output["Value"] == {"Fn::GetAtt": [url_logical(template, logical), "FunctionUrl"]}


def url_logical(t: Template, fn_logical: str) -> str:
    return only(t, "AWS::Lambda::Url", TargetFunctionArn={"Fn::GetAtt": [fn_logical, "Arn"]})[0]


def test_router_is_in_the_vpc_without_a_url(template: Template) -> None:
    logical, fn = function(template, "router.sh")
    props = fn["Properties"]
    variables = props["Environment"]["Variables"]
    assert set(s["Ref"] for s in props["VpcConfig"]["SubnetIds"]) == subnets_in(template, "app")
    assert not [
        u
        for u in resources(template, "AWS::Lambda::Url").values()
        if u["Properties"]["TargetFunctionArn"] == {"Fn::GetAtt": [logical, "Arn"]}
    ]
    assert variables["AWS_LWA_INVOKE_MODE"] == "response_stream"
    assert variables[env.GATEWAY_WORKER_PORT] == str(PORT)
    assert props["Timeout"] == 900  # it relays the whole turn
    namespace = only(template, "AWS::ServiceDiscovery::PrivateDnsNamespace")[1]["Properties"]["Name"]
    cloud_map = only(template, "AWS::ServiceDiscovery::Service")[1]["Properties"]
    assert variables[env.GATEWAY_WORKERS] == f"{cloud_map['Name']}.{namespace}"


def test_front_may_invoke_the_router_and_nothing_else(template: Template) -> None:
    router = function(template, "router.sh")[0]
    stmts = [s for s in statements(template, function(template, "front.sh")[1]) if not is_xray(s)]
    assert stmts == [
        {"Action": "lambda:InvokeFunction", "Effect": "Allow", "Resource": {"Fn::GetAtt": [router, "Arn"]}}
    ]
    # Nobody else may: the router has no resource policy (no URL, no permission for a service).
    assert not [
        p
        for p in resources(template, "AWS::Lambda::Permission").values()
        if p["Properties"]["FunctionName"] in (ref(router), {"Fn::GetAtt": [router, "Arn"]})
    ]


def is_xray(statement: dict[str, Any]) -> bool:
    return actions_of([statement]) <= {"xray:PutTraceSegments", "xray:PutTelemetryRecords"}


def test_router_reaches_the_workers_only(template: Template) -> None:
    fn = function(template, "router.sh")[1]
    assert all(is_xray(s) for s in statements(template, fn)), "the router needs no AWS API"
    (router_sg,) = [s["Fn::GetAtt"][0] for s in fn["Properties"]["VpcConfig"]["SecurityGroupIds"]]
    worker_sg = security_group(template, "Nexus gateway workers")[0]
    assert egress(template, router_sg) == [
        {
            "Description": "gateway workers",
            "DestinationSecurityGroupId": group_id(worker_sg),
            "FromPort": PORT,
            "IpProtocol": "tcp",
            "ToPort": PORT,
        }
    ]
    # Not admitted by the database or the Secrets Manager endpoint.
    for sg in (security_group(template, "Nexus PostgreSQL")[0], security_group(template, "Interface")[0]):
        assert group_id(router_sg) not in [r.get("SourceSecurityGroupId") for r in ingress(template, sg)]


# -- workers ---------------------------------------------------------------------------------------


def test_worker_task_runs_the_gateway_image(template: Template) -> None:
    stage = stage_of(template)
    task = only(template, "AWS::ECS::TaskDefinition")[1]["Properties"]
    assert task["RequiresCompatibilities"] == ["FARGATE"] and task["NetworkMode"] == "awsvpc"
    assert task["Cpu"] == str(stage.gateway_worker_cpu) and task["Memory"] == str(
        stage.gateway_worker_memory_mb
    )
    assert task["RuntimePlatform"]["CpuArchitecture"] == "ARM64"
    worker = container(template)
    assert worker["PortMappings"] == [{"ContainerPort": PORT, "Protocol": "tcp"}]
    assert worker["StopTimeout"] == 120  # Fargate's maximum: a stopping worker finishes its turns
    assert f"127.0.0.1:{PORT}/health" in " ".join(worker["HealthCheck"]["Command"])
    assert worker["LogConfiguration"]["LogDriver"] == "awslogs"
    variables = container_env(template)
    assert variables[env.STAGE] == stage.name
    assert variables[env.GATEWAY_WORKER_PORT] == str(PORT)
    assert variables[env.SECRETS_PREFIX] == f"{stage.name}/"
    assert variables[gw.REQUIRE_KEYS] == "1"
    assert variables[gw.MAX_SESSIONS] == str(stage.gateway_sessions_per_task)
    assert variables[gw.PUBLISH_METRICS] == "1"
    assert variables["POWERTOOLS_SERVICE_NAME"] == m.GATEWAY_SERVICE
    assert variables["POWERTOOLS_METRICS_NAMESPACE"] == m.NAMESPACE
    secret = only(template, "AWS::SecretsManager::SecretTargetAttachment")[0]
    assert variables[env.DB_SECRET_ARN] == ref(secret)
    # Claude Code's traffic goes through the Nexus proxy (so it is recorded): its URL's origin.
    proxy_url = url_logical(template, function(template, "run.sh")[0])
    assert proxy_url in json.dumps(variables[gw.PROXY_URL])
    assert '"https://"' in json.dumps(variables[gw.PROXY_URL])


def test_worker_settings_are_names_the_gateway_reads() -> None:
    fields = GatewaySettings.model_fields
    for name in (gw.PROXY_URL, gw.REQUIRE_KEYS, gw.MAX_SESSIONS, gw.PUBLISH_METRICS):
        assert name.startswith(ENV_PREFIX) and name.removeprefix(ENV_PREFIX).lower() in fields, name


def test_worker_service_registers_in_cloud_map_and_rolls_back(template: Template) -> None:
    stage = stage_of(template)
    cluster = only(template, "AWS::ECS::Cluster")[1]["Properties"]
    assert {"Name": "containerInsights", "Value": "enabled"} in cluster["ClusterSettings"]
    service = only(template, "AWS::ECS::Service")[1]["Properties"]
    assert service["LaunchType"] == "FARGATE"
    assert service["DesiredCount"] == stage.gateway_min_tasks
    assert service["DeploymentConfiguration"]["DeploymentCircuitBreaker"] == {
        "Enable": True,
        "Rollback": True,
    }
    assert service["DeploymentConfiguration"]["MinimumHealthyPercent"] == 100
    network = service["NetworkConfiguration"]["AwsvpcConfiguration"]
    assert {s["Ref"] for s in network["Subnets"]} == subnets_in(template, "workers")
    assert network["AssignPublicIp"] == "ENABLED"  # the default egress: public IP, no NAT
    cloud_map_logical, cloud_map = only(template, "AWS::ServiceDiscovery::Service")
    assert service["ServiceRegistries"] == [{"RegistryArn": {"Fn::GetAtt": [cloud_map_logical, "Arn"]}}]
    dns = cloud_map["Properties"]["DnsConfig"]
    assert dns["RoutingPolicy"] == "MULTIVALUE"
    assert dns["DnsRecords"] == [{"TTL": 10, "Type": "A"}]
    namespace = only(template, "AWS::ServiceDiscovery::PrivateDnsNamespace")[1]["Properties"]
    assert namespace["Properties"]["DnsProperties"]["SOA"]["TTL"] == 10  # "no task yet" is not cached long


def test_workers_take_traffic_from_the_router_only(template: Template) -> None:
    worker_sg = security_group(template, "Nexus gateway workers")[0]
    router_sg = security_group(template, "Nexus gateway router")[0]
    rules = ingress(template, worker_sg)
    assert [(r["SourceSecurityGroupId"], r["FromPort"], r["ToPort"]) for r in rules] == [
        (group_id(router_sg), PORT, PORT)
    ]
    assert not any("CidrIp" in r or "CidrIpv6" in r for r in rules)
    # Out: HTTPS (proxy URL, ECR, logs, the Secrets Manager endpoint) and PostgreSQL.
    db_sg = security_group(template, "Nexus PostgreSQL")[0]
    out = egress(template, worker_sg)
    assert {
        (r.get("CidrIp") or r["DestinationSecurityGroupId"]["Fn::GetAtt"][0], r["FromPort"]) for r in out
    } == {
        ("0.0.0.0/0", 443),
        (db_sg, 5432),
    }
    assert (group_id(worker_sg), 5432) in [
        (r.get("SourceSecurityGroupId"), r["FromPort"]) for r in ingress(template, db_sg)
    ]
    endpoint_sg = security_group(template, "Interface endpoints")[0]
    assert group_id(worker_sg) in [r.get("SourceSecurityGroupId") for r in ingress(template, endpoint_sg)]


def test_worker_task_role_reads_only_its_secrets(template: Template) -> None:
    task = only(template, "AWS::ECS::TaskDefinition")[1]["Properties"]
    role = task["TaskRoleArn"]["Fn::GetAtt"][0]
    stmts = [
        s
        for p in resources(template, "AWS::IAM::Policy").values()
        if ref(role) in p["Properties"]["Roles"]
        for s in p["Properties"]["PolicyDocument"]["Statement"]
    ]
    metrics = [s for s in stmts if s["Action"] == "cloudwatch:PutMetricData"]
    assert metrics == [
        {
            "Action": "cloudwatch:PutMetricData",
            "Condition": {"StringEquals": {"cloudwatch:namespace": m.NAMESPACE}},
            "Effect": "Allow",
            "Resource": "*",
        }
    ]
    stmts = [s for s in stmts if s not in metrics]
    assert actions_of(stmts) == {"secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"}
    names = {
        k: v["Properties"]["Name"] for k, v in resources(template, "AWS::SecretsManager::Secret").items()
    }
    attachment = only(template, "AWS::SecretsManager::SecretTargetAttachment")[0]
    read = {s["Resource"]["Ref"] for s in stmts}
    assert attachment in read
    assert {names[r].split("/", 1)[1] for r in read - {attachment}} == {"nexus/keys", "nexus/teams"}
    assert "ManagedPolicyArns" not in resources(template, "AWS::IAM::Role")[role]["Properties"]


# -- network ---------------------------------------------------------------------------------------

# The subnets as they were before the workers' group was appended: a deploy must not replace them.
SUBNETS_BEFORE_GATEWAY = {
    "NetworkVpcappSubnet1SubnetE208FB5D": "10.0.0.0/22",
    "NetworkVpcappSubnet2SubnetC46F4198": "10.0.4.0/22",
    "NetworkVpcdbSubnet1Subnet44EF7127": "10.0.8.0/24",
    "NetworkVpcdbSubnet2Subnet61C338EE": "10.0.9.0/24",
}


def cidrs(t: Template) -> dict[str, str]:
    return {k: v["Properties"]["CidrBlock"] for k, v in resources(t, "AWS::EC2::Subnet").items()}


def test_existing_subnets_keep_their_cidrs(template: Template) -> None:
    found = cidrs(template)
    assert {k: found[k] for k in SUBNETS_BEFORE_GATEWAY} == SUBNETS_BEFORE_GATEWAY


def test_public_ip_egress_has_no_nat_and_no_public_address_by_default(template: Template) -> None:
    assert not resources(template, "AWS::EC2::NatGateway")
    workers = subnets_in(template, "workers")
    assert len(workers) == 2
    for logical, subnet in resources(template, "AWS::EC2::Subnet").items():
        if logical in workers:
            assert subnet["Properties"]["MapPublicIpOnLaunch"] is False  # only tasks that ask get one
    for table in route_tables_of(template, workers):
        assert [r.get("GatewayId") for r in default_routes(template, table)] == [
            ref(only(template, "AWS::EC2::InternetGateway")[0])
        ]


def test_nat_egress_puts_the_workers_in_private_subnets(options_template: Template) -> None:
    t = options_template  # gateway_egress="nat"
    stage = load_stage("staging")
    assert len(resources(t, "AWS::EC2::NatGateway")) == stage.max_azs
    found = cidrs(t)
    assert {k: found[k] for k in SUBNETS_BEFORE_GATEWAY} == SUBNETS_BEFORE_GATEWAY
    service = only(t, "AWS::ECS::Service")[1]["Properties"]["NetworkConfiguration"]["AwsvpcConfiguration"]
    assert service["AssignPublicIp"] == "DISABLED"
    for table in route_tables_of(t, {s["Ref"] for s in service["Subnets"]}):
        routes = default_routes(t, table)
        assert len(routes) == 1 and "NatGatewayId" in routes[0]
    for logical, subnet in resources(t, "AWS::EC2::Subnet").items():
        if logical in {s["Ref"] for s in service["Subnets"]}:
            assert subnet_group(subnet) == "workers"


# -- scaling ---------------------------------------------------------------------------------------


def test_workers_scale_on_busy_sessions_within_the_stage_bounds(template: Template) -> None:
    stage = stage_of(template)
    target = only(template, "AWS::ApplicationAutoScaling::ScalableTarget")[1]
    assert target["Properties"]["MinCapacity"] == stage.gateway_min_tasks
    assert target["Properties"]["MaxCapacity"] == stage.gateway_max_tasks
    policies = resources(template, "AWS::ApplicationAutoScaling::ScalingPolicy")
    tracking = [
        p["Properties"]["TargetTrackingScalingPolicyConfiguration"]
        for p in policies.values()
        if p["Properties"]["PolicyType"] == "TargetTrackingScaling"
    ]
    assert len(tracking) == 1
    (config,) = tracking
    assert config["CustomizedMetricSpecification"] == {
        "Dimensions": [{"Name": "service", "Value": m.GATEWAY_SERVICE}],
        "MetricName": m.GATEWAY_BUSY_SESSIONS,
        "Namespace": m.NAMESPACE,
        "Statistic": "Average",
    }
    assert config["TargetValue"] == stage.gateway_busy_target < stage.gateway_sessions_per_task
    assert config["ScaleInCooldown"] > config["ScaleOutCooldown"]
    steps = [p for p in policies.values() if p["Properties"]["PolicyType"] == "StepScaling"]
    if stage.gateway_min_tasks == 0:
        # From zero nobody publishes the busy metric: a router invocation with no task running wakes one.
        (step,) = steps
        assert step["Properties"]["StepScalingPolicyConfiguration"]["StepAdjustments"] == [
            {"MetricIntervalLowerBound": 0, "ScalingAdjustment": 1}
        ]
        alarm = next(
            a["Properties"]
            for a in resources(template, "AWS::CloudWatch::Alarm").values()
            if a["Properties"].get("AlarmActions") == [ref(next(k for k, v in policies.items() if v is step))]
        )
        used = json.dumps(alarm["Metrics"])
        assert '"Invocations"' in used and json.dumps(ref(function(template, "router.sh")[0])) in used
        assert '"RunningTaskCount"' in used
    else:
        assert not steps, "a warm minimum needs no wake-up policy"
        assert stage.gateway_min_tasks >= 1


def test_staging_may_scale_to_zero_and_prod_stays_warm() -> None:
    assert STAGES["staging"].gateway_min_tasks == 0
    assert STAGES["prod"].gateway_min_tasks >= 1


@pytest.mark.parametrize(
    "overrides",
    [{"gateway_max_tasks": 9}, {"gateway_min_tasks": 3, "gateway_max_tasks": 2}, {"gateway_busy_target": 9}],
)
def test_settings_that_cannot_work_are_refused(overrides: dict[str, Any]) -> None:
    with pytest.raises(SystemExit):
        load_stage("prod", **overrides)


# -- observability ---------------------------------------------------------------------------------


def test_gateway_alarms_watch_the_metrics_workers_publish(template: Template) -> None:
    alarms = {
        a["Properties"]["AlarmName"].split("-", 2)[2]: a["Properties"]
        for a in resources(template, "AWS::CloudWatch::Alarm").values()
        if "AlarmName" in a["Properties"]
    }
    gateway = {k: v for k, v in alarms.items() if k.startswith("gateway-")}
    assert set(gateway) == {
        "gateway-5xx",
        "gateway-rejected",
        "gateway-first-delta",
        "gateway-busy",
        "gateway-workers-missing",
    }
    assert gateway["gateway-rejected"]["MetricName"] == m.GATEWAY_REJECTED
    assert gateway["gateway-first-delta"]["MetricName"] == m.GATEWAY_FIRST_DELTA
    assert gateway["gateway-first-delta"]["ExtendedStatistic"] == "p95"
    assert gateway["gateway-busy"]["MetricName"] == m.GATEWAY_BUSY_SESSIONS
    for alarm in gateway.values():
        assert m.GATEWAY_SERVICE in json.dumps(alarm) or "ContainerInsights" in json.dumps(alarm)
    errors = json.dumps(gateway["gateway-5xx"]["Metrics"])
    assert m.GATEWAY_ERRORS in errors
    for handler in ("front.sh", "router.sh"):
        assert json.dumps(ref(function(template, handler)[0])) in errors
    body = json.dumps(only(template, "AWS::CloudWatch::Dashboard")[1]["Properties"]["DashboardBody"])
    for name in (m.GATEWAY_WARM_SESSIONS, m.GATEWAY_BUSY_SESSIONS, m.GATEWAY_WORKER_STARTS):
        assert name in body


# -- the worker image ------------------------------------------------------------------------------


def instructions() -> list[tuple[str, str]]:
    """The Dockerfile as (INSTRUCTION, arguments), continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def test_the_image_runs_as_an_unprivileged_user_with_a_home() -> None:
    steps = instructions()
    users = [args for op, args in steps if op == "USER"]
    assert users and users[-1] not in ("root", "0", "0:0"), "Claude Code refuses some modes as root"
    last_user = max(i for i, (op, _) in enumerate(steps) if op == "USER")
    assert last_user < next(i for i, (op, _) in enumerate(steps) if op == "CMD")
    assert any(op == "ENV" and "HOME=/home/" in args for op, args in steps)


def test_the_image_starts_the_worker_module_in_exec_form() -> None:
    (cmd,) = [args for op, args in instructions() if op == "CMD"]
    # One line, exec form: the local tests start workers with this same command.
    assert [line for line in DOCKERFILE.read_text().splitlines() if line.startswith("CMD")] == [f"CMD {cmd}"]
    argv = json.loads(cmd)
    assert argv[:2] == ["python", "-m"]
    module = ROOT / "functions" / "gateway" / Path(*argv[2].split("."))
    if not module.with_suffix(".py").exists():
        if strict_skips():
            pytest.fail(f"{argv[2]} is missing")
        pytest.skip(f"{argv[2]} (the worker entry) is not in this checkout yet")
    (expose,) = [args for op, args in instructions() if op == "EXPOSE"]
    assert expose == str(PORT)


def test_the_image_installs_the_locked_dependencies_and_fetches_nothing_at_start() -> None:
    steps = instructions()
    text = DOCKERFILE.read_text()
    python = [args for op, args in steps if op == "ARG" and args.startswith("PYTHON_VERSION=")]
    assert python == [f"PYTHON_VERSION={StageConfig(name='x').python_version}"]
    assert any(op == "FROM" and args.startswith("python:${PYTHON_VERSION}-slim") for op, args in steps)
    assert any(op == "COPY" and "uv.lock" in args for op, args in steps)
    install = " ".join(args for op, args in steps if op == "RUN")
    assert "--frozen" in install and "--no-dev" in install and "--extra gateway" in install
    assert "--require-hashes" in install
    # The Agent SDK's wheel carries the CLI: no npm, no installer script, no download at start.
    for fetch in ("npm ", "npx ", "curl ", "wget ", "claude.ai/install", "@anthropic-ai/claude-code"):
        assert fetch not in text, fetch
    for op, _ in steps:
        assert op not in ("ENTRYPOINT", "ADD"), op


def test_the_gateway_extra_is_the_only_way_the_sdk_is_installed() -> None:
    """The layer's requirements leave out the Agent SDK (and its CLI binary); the image adds them. The
    mcp SDK is in the layer on its own account: the dashboard serves the prompt library with it."""
    reqs = requirements()
    assert "claude-agent-sdk" not in reqs and "\nmcp==" in reqs


def test_the_front_and_router_load_without_the_sdk() -> None:
    """They run on the Lambda layer, which has no Agent SDK: importing them must not need it."""
    code = (
        "import sys, nexus_gateway.cloud.front, nexus_gateway.cloud.router; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('claude_agent_sdk', 'mcp')))"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert out.stdout.strip() == "[]"


def test_synth_stages_only_what_the_image_copies(outdirs: dict[str, Path]) -> None:
    out = outdirs["staging"]
    manifest = json.loads((out / "Nexus-staging.assets.json").read_text())
    (image,) = manifest["dockerImages"].values()
    source = image["source"]
    assert source["dockerFile"] == gw.DOCKERFILE and source["platform"] == "linux/arm64"
    assert source["dockerBuildArgs"] == {"PYTHON_VERSION": load_stage("staging").python_version}
    staged = out / source["directory"]
    top = {p.name for p in staged.iterdir()}
    assert top == {".dockerignore", "pyproject.toml", "uv.lock", "layers", "functions"}
    assert (staged / gw.DOCKERFILE).is_file()
    assert {p.name for p in (staged / "functions").iterdir()} == {"gateway"}
    assert not list(staged.rglob("__pycache__"))
    size = sum(f.stat().st_size for f in staged.rglob("*") if f.is_file())
    assert size < 5 * 2**20, f"the image's build context is {size / 2**20:.1f} MB"
    for op, args in instructions():
        if op == "COPY" and not args.startswith("--from"):
            for src in shlex.split(args)[:-1]:
                assert (staged / src).exists(), f"COPY {src}: not in the build context"
