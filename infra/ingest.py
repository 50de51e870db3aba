"""Ingest: the queue consumer that derives usage, cost and conversation links and writes PostgreSQL.

In the VPC (it talks to the database). Batches from the FIFO queue with partial-batch failure
reporting: a poison record is retried, then dead-lettered, while the rest of its batch is stored.
After each stored batch it evaluates budgets (ADR 0017): it reads the caps and writes the proxy's
budget state in Secrets Manager, through the VPC's interface endpoint.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_lambda_event_sources as sources
from constructs import Construct
from nexus import env
from nexus.sqs_queue import REPLAY_EVENT

from infra.context import StackContext
from infra.functions import database_function

REPLAY_EVERY_MINUTES = 5


class Ingest(Construct):
    def __init__(self, scope: Construct, construct_id: str, ctx: StackContext) -> None:
        super().__init__(scope, construct_id)
        stage, queue, secrets = ctx.stage, ctx.queue, ctx.secrets
        self.function = database_function(
            self,
            "Function",
            ctx,
            name="Ingest",
            code="ingest",
            handler="nexus_ingest.handler.handle",
            service="nexus-ingest",
            memory_mb=stage.ingest_memory_mb,
            timeout_s=stage.ingest_timeout_s,
            description="Nexus ingest: queue to PostgreSQL, with conversation tracking",
            environment={env.SECRETS_PREFIX: secrets.prefix},
        )
        queue.grant_records(self.function, "s3:GetObject")
        queue.grant_unsent_replay(self.function)
        # Records the proxy could not queue wait in S3 (nexus.sqs_queue): stored every few minutes.
        self.replay = events.Rule(
            self,
            "ReplayUnsent",
            schedule=events.Schedule.rate(cdk.Duration.minutes(REPLAY_EVERY_MINUTES)),
            targets=[
                targets.LambdaFunction(
                    self.function, event=events.RuleTargetInput.from_object(REPLAY_EVENT), retry_attempts=2
                )
            ],
        )
        secrets.grant_budget_evaluation(self.function)
        self.function.add_event_source(
            sources.SqsEventSource(
                queue.queue,
                batch_size=stage.ingest_batch_size,
                report_batch_item_failures=True,
                max_concurrency=max(2, stage.ingest_max_concurrency),
            )
        )
