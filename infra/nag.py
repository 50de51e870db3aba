"""How a reviewed cdk-nag AwsSolutions finding is accepted: ``acknowledge``, with its reason.

cdk-nag v3 runs as a policy-validation plugin (``infra/stack.py``): any finding not acknowledged fails
``cdk synth`` and ``cdk deploy``. Each acknowledgment is made by the code that creates the resource it
is about, next to that resource, so the exception and its cause are read (and deleted) together.
"""

from __future__ import annotations

import aws_cdk as cdk
from constructs import IConstruct

# How cdk-nag names the AWS-managed policies Lambda roles get (AwsSolutions-IAM4 findings).
BASIC_ROLE = "Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"
VPC_ROLE = "Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole"


def acknowledge(scope: IConstruct, rule: str, reason: str) -> None:
    """Accept the AwsSolutions finding ``rule`` (``"RDS3"``, ``"IAM5[Resource::*]"``, ...) on ``scope``
    and everything under it, for ``reason``."""
    ack = cdk.Acknowledgment(id=f"AwsSolutions::AwsSolutions-{rule}", reason=reason)
    cdk.Validations.of(scope).acknowledge(ack)


def arn(resource: IConstruct) -> str:
    """How cdk-nag writes the ARN of a resource we created in a finding: ``<LogicalId.Arn>``."""
    stack = cdk.Stack.of(resource)
    default_child = resource.node.default_child
    assert isinstance(default_child, cdk.CfnElement), f"{resource.node.path} has no CloudFormation resource"
    return f"<{stack.resolve(stack.get_logical_id(default_child))}.Arn>"
