"""A deployed stage's alerts topic as the CLI manages it: found in the stack's outputs, with one email
subscription per address and team (a filter policy on the message attribute ``team``)."""

from __future__ import annotations

import json
from typing import Any


def email_targets(teams: dict[str, tuple[str, ...]]) -> dict[str, list[str]]:
    """Address -> the teams that list it (an address is one subscription, whatever its teams)."""
    out: dict[str, list[str]] = {}
    for team, emails in sorted(teams.items()):
        for addr in emails:
            out.setdefault(addr, []).append(team)
    return out


def email_subscriptions(sns: Any, topic_arn: str) -> dict[str, tuple[str, list[str]]]:
    """The topic's team email subscriptions: address -> (subscription ARN, teams of its filter).
    Subscriptions without a team filter (the operators' ``alarm_email``, made by the stack) are not
    the CLI's and are left out; so are those awaiting confirmation (no ARN to read or change yet)."""
    found: dict[str, tuple[str, list[str]]] = {}
    for page in sns.get_paginator("list_subscriptions_by_topic").paginate(TopicArn=topic_arn):
        for s in page.get("Subscriptions", []):
            arn = s["SubscriptionArn"]
            if s.get("Protocol") != "email" or not arn.startswith("arn:"):
                continue
            attrs = sns.get_subscription_attributes(SubscriptionArn=arn)["Attributes"]
            teams = json.loads(attrs.get("FilterPolicy") or "{}").get("team")
            if isinstance(teams, list):
                found[s["Endpoint"]] = (arn, teams)
    return found


def sync_email(sns: Any, topic_arn: str, wanted: dict[str, list[str]]) -> dict[str, str]:
    """Make the topic's team email subscriptions match ``wanted`` (``email_targets``): subscribe new
    addresses, re-filter changed ones, unsubscribe the ones no team lists. Returns address -> what
    was done."""
    have = email_subscriptions(sns, topic_arn)
    done: dict[str, str] = {}
    for addr, teams in wanted.items():
        policy = json.dumps({"team": sorted(teams)})
        if addr not in have:
            sns.subscribe(
                TopicArn=topic_arn,
                Protocol="email",
                Endpoint=addr,
                Attributes={"FilterPolicy": policy},
                ReturnSubscriptionArn=True,
            )
            done[addr] = "subscribed (AWS sends it a confirmation link first)"
        elif sorted(have[addr][1]) != sorted(teams):
            sns.set_subscription_attributes(
                SubscriptionArn=have[addr][0], AttributeName="FilterPolicy", AttributeValue=policy
            )
            done[addr] = f"now gets the alerts of {', '.join(sorted(teams))}"
    for addr, (arn, _) in have.items():
        if addr not in wanted:
            sns.unsubscribe(SubscriptionArn=arn)
            done[addr] = "unsubscribed"
    return done
