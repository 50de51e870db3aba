"""cdk-nag AwsSolutions findings that were reviewed and accepted, each with its reason.

Kept in one place so the exceptions to the rules are easy to audit. Everything not acknowledged here
fails ``cdk synth`` (cdk-nag runs as a policy-validation plugin), and the infrastructure tests check
that both stages synthesize.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import aws_cdk as cdk
from aws_cdk import aws_lambda as lambda_
from constructs import IConstruct
from nexus.sqs_queue import RECORD_PREFIX

if TYPE_CHECKING:
    from infra.stack import NexusStack

BASIC_ROLE = "Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"
VPC_ROLE = "Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole"


def _ack(scope: IConstruct, rule: str, reason: str) -> None:
    ack = cdk.Acknowledgment(id=f"AwsSolutions::AwsSolutions-{rule}", reason=reason)
    cdk.Validations.of(scope).acknowledge(ack)


def _logical_id(construct: IConstruct) -> str:
    """The CloudFormation logical id cdk-nag names a resource by in its findings."""
    stack = cdk.Stack.of(construct)
    return stack.resolve(stack.get_logical_id(construct.node.default_child))


def _function(fn: lambda_.Function, in_vpc: bool) -> None:
    assert fn.role is not None
    _ack(
        fn.role,
        f"IAM4[{BASIC_ROLE}]",
        "AWSLambdaBasicExecutionRole only allows writing the function's own CloudWatch logs.",
    )
    if in_vpc:
        _ack(
            fn.role,
            f"IAM4[{VPC_ROLE}]",
            "AWSLambdaVPCAccessExecutionRole only holds the ENI actions Lambda needs to attach to the VPC.",
        )
    _ack(
        fn.role,
        "IAM5[Resource::*]",
        "Active tracing: xray:PutTraceSegments and PutTelemetryRecords support no resource-level scoping.",
    )


def acknowledge_reviewed(stack: NexusStack) -> None:
    stage = stack.stage
    db = stack.database.instance
    if not stage.db_multi_az:
        _ack(db, "RDS3", f"{stage.name} runs single-AZ to halve its database cost; prod is multi-AZ.")
    if not stage.deletion_protection:
        _ack(
            db, "RDS10", f"{stage.name} is disposable (cdk destroy must work); prod has deletion protection."
        )
    _ack(
        db,
        "RDS11",
        "The database sits in isolated subnets behind a security group that admits only Nexus functions; "
        "a non-default port would add nothing against a network nobody else can reach.",
    )

    _function(stack.proxy.function, in_vpc=False)
    for fn in (stack.ingest.function, stack.dashboard.function, stack.migrations.function):
        _function(fn, in_vpc=True)
    objects = f"Resource::<{_logical_id(stack.queue.bucket)}.Arn>/{RECORD_PREFIX}*"
    for fn, verb in ((stack.proxy.function, "writes"), (stack.ingest.function, "reads")):
        assert fn.role is not None
        _ack(
            fn.role,
            f"IAM5[{objects}]",
            f"Objects are named by record id at run time; the function only {verb} under records/.",
        )
    team_keys = (
        "Resource::arn:<AWS::Partition>:secretsmanager:<AWS::Region>:<AWS::AccountId>:"
        f"secret:{stack.secrets.prefix}nexus/team/*"
    )
    for fn in (stack.proxy.function, stack.dashboard.function):
        assert fn.role is not None
        _ack(
            fn.role,
            f"IAM5[{team_keys}]",
            "Team API keys are created per team at run time (nexus teams set-api-key); read-only access "
            "is limited to this stage's team-key secrets.",
        )

    framework = stack.migrations.provider.node.find_child("framework-onEvent")
    assert isinstance(framework, lambda_.Function) and framework.role is not None
    _ack(
        framework.role,
        f"IAM4[{BASIC_ROLE}]",
        "CDK's custom-resource framework function writes only its logs.",
    )
    _ack(
        framework.role,
        f"IAM5[Resource::<{_logical_id(stack.migrations.function)}.Arn>:*]",
        "The CDK provider framework may invoke any version of the migration function, nothing else.",
    )

    _ack(
        stack.queue.bucket,
        "S1",
        "Holds only transient copies of oversized records, written by the proxy role and read by ingest; "
        "an access-log bucket would cost more than the data. CloudTrail data events can audit it.",
    )
    for secret in stack.secrets.all:
        _ack(
            secret,
            "SMG4",
            "Application-managed value, not a database credential: rotated with nexus keys / the dashboard "
            "key procedure in docs/deploy.md, which no rotation Lambda could do safely.",
        )
