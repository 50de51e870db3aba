"""The OAuth refresher: the one writer of the stage's team OAuth credentials.

A scheduled function (every minute) with reserved concurrency 1: two passes never overlap, so a
rotating refresh token is never used twice. Outside the VPC: it calls the OAuth token endpoint on
the internet and Secrets Manager's public endpoint, and touches no database.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from constructs import Construct
from nexus import env
from nexus.oauth import DEFAULT_CLIENT_ID

from infra.context import StackContext
from infra.functions import python_function


class Credentials(Construct):
    def __init__(self, scope: Construct, construct_id: str, ctx: StackContext) -> None:
        super().__init__(scope, construct_id)
        stage, secrets = ctx.stage, ctx.secrets
        self.function = python_function(
            self,
            "Refresher",
            ctx,
            code="credentials",
            handler="nexus_credentials.handler.handle",
            service="nexus-credentials",
            memory_mb=256,
            timeout_s=60,
            reserved_concurrency=1,
            description="Nexus OAuth refresher: renews team Claude subscription credentials",
            environment={
                env.SECRETS_PREFIX: secrets.prefix,
                env.OAUTH_TOKEN_URL: stage.oauth_token_url,
                env.OAUTH_CLIENT_ID: DEFAULT_CLIENT_ID,
            },
        )
        secrets.grant_credential_refresh(self.function)
        self.schedule = events.Rule(
            self,
            "Every minute",
            schedule=events.Schedule.rate(cdk.Duration.minutes(1)),
            targets=[targets.LambdaFunction(self.function, retry_attempts=0)],
        )
