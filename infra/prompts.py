"""The prompt library's scheduled sync (ADR 0023), in a stage with ``prompts_repo``.

The database is in the VPC and the VPC has no route to the internet, so a sync is two functions:
- the fetcher, outside the VPC, on an EventBridge schedule (every ``prompts_sync_minutes``): reads the
  token secret, fetches the repository over HTTPS, parses the library and invokes the applier with the
  snapshot as JSON, synchronously (``nexus.prompts.handoff``: within Lambda's 6 MB payload limit);
- the applier, in the VPC, which applies the snapshot to PostgreSQL and answers with the result.

The fetcher may invoke the applier and nothing else, and read the token secret and nothing else; the
applier reads the database secret. The fetcher's errors (every failed sync, the applier's included)
raise the ``prompts-sync`` alarm (``infra/observability.py``). ``nexus prompts sync --stage`` invokes
the fetcher by the name in the stack's ``PromptSyncFunction`` output.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from constructs import Construct
from nexus import env
from nexus.prompts import handoff, sync

from infra.context import StackContext
from infra.functions import database_function, python_function


class PromptSync(Construct):
    def __init__(self, scope: Construct, construct_id: str, ctx: StackContext) -> None:
        super().__init__(scope, construct_id)
        stage, secrets = ctx.stage, ctx.secrets
        assert stage.prompts_repo and secrets.prompts_token, "a stage without prompts_repo has no sync"
        self.applier = database_function(
            self,
            "Applier",
            ctx,
            name="PromptSync",
            code="prompts",
            handler="nexus_prompts.handler.apply",
            service="nexus-prompts",
            memory_mb=256,
            timeout_s=handoff.APPLY_TIMEOUT_S,
            description="Nexus prompt library: applies a synced snapshot to the database",
        )
        self.fetcher = python_function(
            self,
            "Fetcher",
            ctx,
            code="prompts",
            handler="nexus_prompts.handler.fetch",
            service="nexus-prompts",
            memory_mb=512,  # dulwich unpacks the repository's pack in Python
            timeout_s=handoff.FETCH_TIMEOUT_S,
            environment={
                sync.REPO: stage.prompts_repo,
                **({sync.REF: stage.prompts_ref} if stage.prompts_ref else {}),
                **({sync.PATH: stage.prompts_path} if stage.prompts_path else {}),
                env.PROMPTS_APPLIER: self.applier.function_name,
                env.SECRETS_PREFIX: secrets.prefix,
            },
            description=f"Nexus prompt library: fetches {stage.prompts_repo} and hands it to the applier",
        )
        secrets.prompts_token.grant_read(self.fetcher)
        # The unqualified function only: CDK's grant_invoke adds "<arn>:*" (every version and alias).
        self.fetcher.add_to_role_policy(
            iam.PolicyStatement(actions=["lambda:InvokeFunction"], resources=[self.applier.function_arn])
        )
        self.schedule = events.Rule(
            self,
            "Schedule",
            description=f"Sync the prompt library every {stage.prompts_sync_minutes} minutes",
            schedule=events.Schedule.rate(cdk.Duration.minutes(stage.prompts_sync_minutes)),
            targets=[targets.LambdaFunction(self.fetcher, retry_attempts=0)],  # the next run is the retry
        )
