"""Secrets Manager: the dashboard key and the access documents (Nexus key hashes, team modes) under one
per-stage prefix, read by the same ``SecretStore`` names the local stack uses (``nexus.access``).

Team upstream API keys (``<prefix>nexus/team/<team>/anthropic-api-key``) are created by
``nexus teams set-api-key --stage <stage>`` when a team switches to team-key mode; the grants below
cover them.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_secretsmanager as sm
from constructs import Construct
from nexus.access import DASHBOARD_KEY_SECRET, KEYS_SECRET, TEAMS_SECRET
from nexus.analysis.settings import ANALYSIS_SECRET
from nexus.oauth import REQUESTS_SECRET
from nexus.secrets_manager import stage_prefix

from infra import nag
from infra.config import StageConfig


class AccessSecrets(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, stage: StageConfig) -> None:
        super().__init__(scope, construct_id)
        self.prefix = stage_prefix(stage.name)
        removal = cdk.RemovalPolicy.RETAIN if stage.deletion_protection else cdk.RemovalPolicy.DESTROY
        self.dashboard_key = sm.Secret(
            self,
            "DashboardKey",
            secret_name=self.prefix + DASHBOARD_KEY_SECRET,
            description="Bearer key of the Nexus dashboard (rotate: docs/deploy.md)",
            generate_secret_string=sm.SecretStringGenerator(
                password_length=40, exclude_punctuation=True, include_space=False
            ),
            removal_policy=removal,
        )
        # Created empty; `nexus keys` / `nexus teams` (with --stage) maintain them afterwards.
        self.keys = self._document(
            "Keys",
            KEYS_SECRET,
            "Nexus client keys: SHA-256 hashes and owners, never the keys themselves",
            removal,
        )
        self.teams = self._document("Teams", TEAMS_SECRET, "Per-team upstream access mode", removal)
        self.refresh_requests = self._document(
            "OAuthRefreshRequests",
            REQUESTS_SECRET,
            "Teams whose OAuth token the upstream refused: the refresher renews them early",
            removal,
        )
        self.analysis = self._document(
            "Analysis",
            ANALYSIS_SECRET,
            "AI analysis settings: the analysis identity's Nexus key, model, per-team automatic trigger",
            removal,
        )
        self.all = [self.dashboard_key, self.keys, self.teams, self.refresh_requests, self.analysis]
        for secret in self.all:
            nag.acknowledge(
                secret,
                "SMG4",
                "Application-managed value, not a database credential: rotated with nexus keys / the "
                "dashboard key procedure in docs/deploy.md, which no rotation Lambda could do safely.",
            )

    def _document(
        self, construct_id: str, name: str, description: str, removal: cdk.RemovalPolicy
    ) -> sm.Secret:
        return sm.Secret(
            self,
            construct_id,
            secret_name=self.prefix + name,
            description=description,
            secret_string_value=cdk.SecretValue.unsafe_plain_text("{}"),
            removal_policy=removal,
        )

    def _arn_pattern(self, name: str) -> str:
        stack = cdk.Stack.of(self)
        # Secrets Manager appends "-XXXXXX" to secret ARNs; "*" matches that suffix.
        return stack.format_arn(
            service="secretsmanager",
            resource="secret",
            resource_name=f"{self.prefix}{name}*",
            arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME,
        )

    def grant_key_management(self, grantee: iam.IGrantable) -> None:
        """Create and revoke Nexus keys (the dashboard's keys page): read and write the keys document,
        and the teams document, where a new key's team is added in pass-through mode."""
        for s in (self.keys, self.teams):
            s.grant_read(grantee)
            s.grant_write(grantee)

    def grant_credential_refresh(self, fn: lambda_.Function) -> None:
        """The refresher: read and write the teams' OAuth credentials (and only those team
        secrets), touch the teams document, answer the refresh requests."""
        for s in (self.teams, self.refresh_requests):
            s.grant_read(fn)
            s.grant_write(fn)
        oauth = self._arn_pattern("nexus/team/*/oauth")
        fn.grant_principal.add_to_principal_policy(
            iam.PolicyStatement(
                actions=[
                    "secretsmanager:GetSecretValue",
                    "secretsmanager:DescribeSecret",
                    "secretsmanager:PutSecretValue",
                ],
                resources=[oauth],
            )
        )
        assert fn.role is not None
        nag.acknowledge(
            fn.role,
            f"IAM5[Resource::{nag.flatten(self, oauth)}]",
            "Team OAuth credentials are created per team at run time (nexus teams set-oauth); the "
            "refresher may read and rotate only those secrets of this stage.",
        )

    def grant_refresh_requests(self, fn: lambda_.Function) -> None:
        """A proxy whose team OAuth token was refused asks the refresher for an early renewal."""
        self.refresh_requests.grant_read(fn)
        self.refresh_requests.grant_write(fn)

    def grant_read_access(self, fn: lambda_.Function) -> None:
        """Keys, teams and team API keys: what the proxy needs to authorise a request."""
        for s in (self.keys, self.teams):
            s.grant_read(fn)
        team_keys = self._arn_pattern("nexus/team/")
        fn.grant_principal.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"],
                resources=[team_keys],
            )
        )
        assert fn.role is not None
        nag.acknowledge(
            fn.role,
            f"IAM5[Resource::{nag.flatten(self, team_keys)}]",
            "Team API keys are created per team at run time (nexus teams set-api-key); read-only access "
            "is limited to this stage's team-key secrets.",
        )
