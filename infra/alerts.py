"""Alerts in AWS (ADR 0018): the stage's alerts topic, and the notifier function that posts to Slack.

The ingest function is in a VPC without a route to the internet: it de-duplicates and logs each
alert in PostgreSQL, then publishes it to the topic through the VPC's SNS endpoint (whose policy
allows publishing to this topic only). The OAuth refresher, outside the VPC and without a database,
publishes its credential failures straight to the topic. Subscribed to the topic:
- the notifier function, outside the VPC, for team alerts: it reads the team's webhook secret and
  posts to Slack, one attempt (async retries 0); its errors raise an alarm on the operators' topic;
- email addresses, each with a filter policy on its team (``nexus alerts set --email --stage``), and
  the stage's ``alarm_email`` for the operators' alerts (``audience=operators``).
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subs
from constructs import Construct
from nexus import env

from infra.context import StackContext
from infra.functions import python_function


class Alerts(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        ctx: StackContext,
        *,
        ingest: lambda_.Function,
        dashboard: lambda_.Function,
        credentials: lambda_.Function,
        alarm_topic: sns.ITopic,
    ) -> None:
        super().__init__(scope, construct_id)
        stage, secrets = ctx.stage, ctx.secrets
        key = kms.Key(self, "Key", enable_key_rotation=True, description=f"Nexus {stage.name} alerts topic")
        self.topic = sns.Topic(self, "Topic", display_name=f"Nexus {stage.name} alerts", master_key=key)
        self.topic.add_to_resource_policy(
            iam.PolicyStatement(
                effect=iam.Effect.DENY,
                principals=[iam.AnyPrincipal()],
                actions=["sns:Publish"],
                resources=[self.topic.topic_arn],
                conditions={"Bool": {"aws:SecureTransport": "false"}},
            )
        )
        # The endpoint in the VPC publishes to this topic and nothing else.
        ctx.network.sns_endpoint.add_to_policy(
            iam.PolicyStatement(
                principals=[iam.AnyPrincipal()],
                actions=["sns:Publish"],
                resources=[self.topic.topic_arn],
            )
        )

        # Ingest: the relay (log row in PostgreSQL, then the topic).
        ingest.add_environment(env.ALERTS_TOPIC_ARN, self.topic.topic_arn)
        ingest.add_environment(env.SECRETS_PREFIX, secrets.prefix)
        # What topic.grant_publish grants, without its kms:GenerateDataKey* wildcard: publishing to an
        # encrypted topic needs a data key and the key's decrypt.
        ingest.add_to_role_policy(
            iam.PolicyStatement(actions=["sns:Publish"], resources=[self.topic.topic_arn])
        )
        ingest.add_to_role_policy(
            iam.PolicyStatement(actions=["kms:GenerateDataKey", "kms:Decrypt"], resources=[key.key_arn])
        )
        secrets.grant_alerts_read(ingest)
        secrets.grant_alerts_read(dashboard)  # the alerts page's channel status: no webhooks
        # The OAuth refresher (outside the VPC, no database) publishes credential failures directly.
        credentials.add_environment(env.ALERTS_TOPIC_ARN, self.topic.topic_arn)
        self._grant_publish(credentials, key)
        secrets.grant_alerts_read(credentials)

        self.notifier = python_function(
            self,
            "Notifier",
            ctx,
            code="notifier",
            handler="nexus_notifier.handler.handle",
            service="nexus-notifier",
            memory_mb=256,
            timeout_s=30,
            description="Nexus alerts: posts team alerts from the alerts topic to Slack",
            environment={env.SECRETS_PREFIX: secrets.prefix},
        )
        self.notifier.configure_async_invoke(retry_attempts=0)  # one attempt per alert, no loop
        secrets.grant_alerts_read(self.notifier, webhooks=True)
        self.topic.add_subscription(
            subs.LambdaSubscription(
                self.notifier,
                filter_policy={"audience": sns.SubscriptionFilter.string_filter(allowlist=["team"])},
            )
        )
        if stage.alarm_email:
            self.topic.add_subscription(
                subs.EmailSubscription(
                    stage.alarm_email,
                    filter_policy={"audience": sns.SubscriptionFilter.string_filter(allowlist=["operators"])},
                )
            )

        self.failures = cw.Alarm(
            self,
            "NotifierErrors",
            alarm_name=f"nexus-{stage.name}-alert-delivery",
            alarm_description="Alerts the notifier could not post to Slack (details in its log)",
            metric=self.notifier.metric_errors(period=cdk.Duration.minutes(stage.alarms.period_minutes)),
            threshold=1,
            evaluation_periods=1,
            comparison_operator=cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
        )
        self.failures.add_alarm_action(cw_actions.SnsAction(alarm_topic))

    def _grant_publish(self, fn: lambda_.Function, key: kms.IKey) -> None:
        """What topic.grant_publish grants, without its kms:GenerateDataKey* wildcard: publishing to an
        encrypted topic needs a data key and the key's decrypt."""
        fn.add_to_role_policy(iam.PolicyStatement(actions=["sns:Publish"], resources=[self.topic.topic_arn]))
        fn.add_to_role_policy(
            iam.PolicyStatement(actions=["kms:GenerateDataKey", "kms:Decrypt"], resources=[key.key_arn])
        )
