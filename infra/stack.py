"""The Nexus stack of one stage: wires the constructs together and exports what operators need."""

from __future__ import annotations

from typing import Any

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks
from constructs import Construct

from infra.alerts import Alerts
from infra.analysis import Analysis
from infra.config import StageConfig
from infra.context import StackContext
from infra.credentials import Credentials
from infra.dashboard import Dashboard
from infra.database import Database
from infra.functions import log_retention
from infra.gateway import Gateway
from infra.ingest import Ingest
from infra.layers import Layers
from infra.migrations import Migrations
from infra.network import Network
from infra.observability import Observability, Watched
from infra.prompts import PromptSync
from infra.proxy import Proxy
from infra.queue import RecordQueue
from infra.secrets import AccessSecrets


class NexusStack(cdk.Stack):
    def __init__(self, scope: Construct, construct_id: str, *, stage: StageConfig, **kwargs: Any) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.stage = stage
        cdk.Tags.of(self).add("nexus:stage", stage.name)

        layers = Layers(self, "Layers", stage=stage)
        network = Network(
            self,
            "Network",
            max_azs=stage.max_azs,
            log_retention=log_retention(stage),
            gateway_egress=stage.gateway_egress,
        )
        database = Database(
            self, "Database", stage=stage, network=network, log_retention=log_retention(stage)
        )
        queue = RecordQueue(self, "Queue", stage=stage)
        secrets = AccessSecrets(self, "Secrets", stage=stage)
        ctx = StackContext(
            stage=stage, layers=layers, network=network, database=database, queue=queue, secrets=secrets
        )

        self.migrations = migrations = Migrations(self, "Migrations", ctx)
        self.proxy = Proxy(self, "Proxy", ctx)
        self.ingest = Ingest(self, "Ingest", ctx)
        self.dashboard = Dashboard(self, "Dashboard", ctx)
        self.gateway = Gateway(self, "Gateway", ctx, proxy_url=self.proxy.url.url)
        self.credentials = Credentials(self, "Credentials", ctx)
        self.analysis = Analysis(self, "Analysis", ctx, proxy_url=self.proxy.url.url)
        self.analysis.grant_start(self.dashboard.function)
        # The prompt library's sync, when the stage names a repository.
        self.prompts = PromptSync(self, "PromptSync", ctx) if stage.prompts_repo else None
        # New code never meets an old schema: consumers of the database wait for the migrations.
        for consumer in (
            self.ingest.function,
            self.dashboard.function,
            self.gateway.service,
            self.analysis.data,
            self.analysis.sweep,
            *([self.prompts.applier] if self.prompts else []),
        ):
            consumer.node.add_dependency(migrations.resource)

        self.observability = Observability(
            self,
            "Observability",
            ctx,
            watched=Watched(
                proxy=self.proxy.function,
                ingest=self.ingest.function,
                dashboard=self.dashboard.function,
                gateway=self.gateway,
                analysis=self.analysis.state_machine,
                prompts=self.prompts.fetcher if self.prompts else None,
            ),
        )

        self.alerts = Alerts(
            self,
            "Alerts",
            ctx,
            ingest=self.ingest.function,
            dashboard=self.dashboard.function,
            credentials=self.credentials.function,
            alarm_topic=self.observability.topic,
        )

        cdk.CfnOutput(
            self, "ProxyUrl", value=self.proxy.url.url, description="ANTHROPIC_BASE_URL for Claude Code"
        )
        cdk.CfnOutput(self, "DashboardUrl", value=self.dashboard.url.url)
        cdk.CfnOutput(
            self,
            "GatewayUrl",
            value=self.gateway.url.url,
            description="OpenAI-compatible gateway: OPENAI_BASE_URL is this URL + v1",
        )
        cdk.CfnOutput(
            self, "SecretsPrefix", value=secrets.prefix, description="NEXUS_SECRETS_PREFIX for nexus keys"
        )
        cdk.CfnOutput(self, "DashboardKeySecret", value=secrets.dashboard_key.secret_name)
        cdk.CfnOutput(self, "DatabaseSecret", value=database.secret.secret_name)
        cdk.CfnOutput(self, "DeadLetterQueueUrl", value=queue.dead_letters.queue_url)
        cdk.CfnOutput(
            self,
            "RecordBucket",
            value=queue.bucket.bucket_name,
            description="Large and unsent records (nexus records replay-log puts records back here)",
        )
        cdk.CfnOutput(self, "AlarmTopic", value=self.observability.topic.topic_arn)
        cdk.CfnOutput(
            self,
            "AlertsTopic",
            value=self.alerts.topic.topic_arn,
            description="Team and operator alerts (nexus alerts); email subscribers filter on team",
        )
        if self.prompts and secrets.prompts_token:
            cdk.CfnOutput(
                self,
                "PromptSyncFunction",
                value=self.prompts.fetcher.function_name,
                description="The prompt library's sync: nexus prompts sync --stage invokes it",
            )
            cdk.CfnOutput(
                self,
                "PromptsTokenSecret",
                value=secrets.prompts_token.secret_name,
                description="Token for a private prompt repository (docs/deploy.md)",
            )


def create_stack(app: cdk.App, stage: StageConfig) -> NexusStack:
    """The stage's stack, with cdk-nag as a policy-validation plugin: any unacknowledged AwsSolutions
    finding fails ``app.synth()`` (and so ``cdk synth`` and ``cdk deploy``)."""
    stack = NexusStack(
        app,
        f"Nexus-{stage.name}",
        stage=stage,
        env=cdk.Environment(account=stage.account, region=stage.region),
        description=f"Nexus gateway and observability for Claude Code ({stage.name})",
    )
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app, verbose=True))
    return stack
