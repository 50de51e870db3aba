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


def flatten(scope: IConstruct, value: str) -> str:
    """``value`` (an ARN, usually with tokens) as cdk-nag writes it in a finding, as its
    ``flattenCfnReference`` does: resolved, references written ``<LogicalId.Arn>``, ``<AWS::Region>``.
    A literal account or region (``-c account=... -c region=...``) stays literal."""

    def flat(node: object) -> str:
        if isinstance(node, str):
            return node.replace("${", "<").replace("}", ">")
        if isinstance(node, dict) and len(node) == 1:
            ((function, arg),) = node.items()
            if function == "Fn::Join":
                delimiter, items = arg
                return str(delimiter).join(flat(item) for item in items)
            if function == "Fn::GetAtt":
                return f"<{flat(arg[0])}.{flat(arg[1])}>"
            if function == "Ref":
                return f"<{flat(arg)}>"
        raise ValueError(f"cannot write {node!r} as cdk-nag does")

    return flat(cdk.Stack.of(scope).resolve(value))
