"""How every Nexus function is built: runtime, architecture, layers, logs, tracing, Powertools settings.

One place, so the proxy, ingest, dashboard and migration functions cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct
from nexus import env

from infra import nag
from infra.config import StageConfig
from infra.context import StackContext
from infra.layers import PY_JUNK, ROOT, architecture, python_runtime

METRICS_NAMESPACE = "Nexus"


@dataclass(frozen=True)
class Placement:
    """Where a function in the VPC runs."""

    vpc: ec2.IVpc
    subnets: ec2.SubnetSelection
    security_group: ec2.ISecurityGroup


def log_retention(stage: StageConfig) -> logs.RetentionDays:
    try:
        days: logs.RetentionDays = getattr(logs.RetentionDays, _RETENTION[stage.log_retention_days])
        return days
    except KeyError:
        raise ValueError(f"log_retention_days must be one of {sorted(_RETENTION)}") from None


_RETENTION = {
    1: "ONE_DAY",
    3: "THREE_DAYS",
    7: "ONE_WEEK",
    14: "TWO_WEEKS",
    30: "ONE_MONTH",
    90: "THREE_MONTHS",
    180: "SIX_MONTHS",
    365: "ONE_YEAR",
}


def python_function(
    scope: Construct,
    construct_id: str,
    ctx: StackContext,
    *,
    code: str,
    handler: str,
    service: str,
    memory_mb: int,
    timeout_s: int,
    environment: dict[str, str] | None = None,
    placement: Placement | None = None,
    reserved_concurrency: int | None = None,
    extra_layers: tuple[lambda_.ILayerVersion, ...] = (),
    description: str = "",
) -> lambda_.Function:
    """A Python function from ``functions/<code>`` with the shared and dependency layers."""
    stage, layers = ctx.stage, ctx.layers
    log_group = logs.LogGroup(
        scope,
        f"{construct_id}Logs",
        retention=log_retention(stage),
        removal_policy=cdk.RemovalPolicy.DESTROY,
    )
    variables = {
        env.STAGE: stage.name,
        "POWERTOOLS_SERVICE_NAME": service,
        "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE,
        "POWERTOOLS_LOG_LEVEL": "INFO",
        **(environment or {}),
    }
    fn = lambda_.Function(
        scope,
        construct_id,
        description=description,
        runtime=python_runtime(stage.python_version),
        architecture=architecture(stage),
        handler=handler,
        code=lambda_.Code.from_asset(str(ROOT / "functions" / code), exclude=PY_JUNK),
        layers=[layers.dependencies, layers.shared, *extra_layers],
        memory_size=memory_mb,
        timeout=cdk.Duration.seconds(timeout_s),
        environment=variables,
        tracing=lambda_.Tracing.ACTIVE,
        log_group=log_group,
        reserved_concurrent_executions=reserved_concurrency,
        vpc=placement.vpc if placement else None,
        vpc_subnets=placement.subnets if placement else None,
        security_groups=[placement.security_group] if placement else None,
    )
    assert fn.role is not None
    nag.acknowledge(
        fn.role,
        f"IAM4[{nag.BASIC_ROLE}]",
        "AWSLambdaBasicExecutionRole only allows writing the function's own CloudWatch logs.",
    )
    if placement:
        nag.acknowledge(
            fn.role,
            f"IAM4[{nag.VPC_ROLE}]",
            "AWSLambdaVPCAccessExecutionRole only holds the ENI actions Lambda needs to attach to the VPC.",
        )
    nag.acknowledge(
        fn.role,
        "IAM5[Resource::*]",
        "Active tracing: xray:PutTraceSegments and PutTelemetryRecords support no resource-level scoping.",
    )
    return fn


def database_function(
    scope: Construct,
    construct_id: str,
    ctx: StackContext,
    *,
    name: str,
    environment: dict[str, str] | None = None,
    **kwargs: Any,
) -> lambda_.Function:
    """A ``python_function`` in the VPC that uses the database: its own security group, admitted by
    the database's; the database secret readable and named in ``NEXUS_DB_SECRET_ARN``."""
    network, database = ctx.network, ctx.database
    sg = network.function_security_group(name)
    database.allow_from(sg, name.lower())
    fn = python_function(
        scope,
        construct_id,
        ctx,
        placement=Placement(network.vpc, network.app_subnets, sg),
        environment={env.DB_SECRET_ARN: database.secret.secret_arn, **(environment or {})},
        **kwargs,
    )
    database.secret.grant_read(fn)
    return fn
