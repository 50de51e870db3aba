"""A deployed stage's alerts topic as the CLI manages it: found in the stack's outputs, with one email
subscription per address and team (a filter policy on the message attribute ``team``)."""

from __future__ import annotations

import json
from typing import Any

from nexus_cli.common import CLIError


def stack_output(stage: str, key: str) -> str | None:
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        stacks = boto3.client("cloudformation").describe_stacks(StackName=f"Nexus-{stage}")["Stacks"]
    except (BotoCoreError, ClientError) as exc:
        raise CLIError(f"cannot read the stack of stage {stage!r}: {exc}") from None
    for out in stacks[0].get("Outputs", []) if stacks else []:
        if out.get("OutputKey") == key:
            return str(out["OutputValue"])
    return None


def filter_policy(team: str) -> str:
    return json.dumps({"team": [team]})


def team_subscriptions(sns: Any, topic_arn: str, team: str) -> dict[str, str]:
    """The team's email subscriptions: address -> subscription ARN (or "PendingConfirmation")."""
    found: dict[str, str] = {}
    for page in sns.get_paginator("list_subscriptions_by_topic").paginate(TopicArn=topic_arn):
        for s in page.get("Subscriptions", []):
            if s.get("Protocol") != "email":
                continue
            arn = s["SubscriptionArn"]
            if arn.startswith("arn:"):
                attrs = sns.get_subscription_attributes(SubscriptionArn=arn)["Attributes"]
                if json.loads(attrs.get("FilterPolicy") or "{}").get("team") != [team]:
                    continue
            found[s["Endpoint"]] = arn
    return found


def sync_email(sns: Any, topic_arn: str, team: str, emails: tuple[str, ...]) -> tuple[list[str], list[str]]:
    """Subscribe the team's new addresses and unsubscribe the ones it no longer lists."""
    have = team_subscriptions(sns, topic_arn, team)
    added = [e for e in emails if e not in have]
    for addr in added:
        sns.subscribe(
            TopicArn=topic_arn,
            Protocol="email",
            Endpoint=addr,
            Attributes={"FilterPolicy": filter_policy(team)},
            ReturnSubscriptionArn=True,
        )
    removed = []
    for addr, arn in have.items():
        if addr not in emails and arn.startswith("arn:"):  # a pending one cannot be removed; it expires
            sns.unsubscribe(SubscriptionArn=arn)
            removed.append(addr)
    return added, removed
