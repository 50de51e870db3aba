"""Secrets Manager: the dashboard key and the access documents (Nexus key hashes, team modes) under one
per-stage prefix, read by the same ``SecretStore`` names the local stack uses (``nexus.access``).

Budgets (ADR 0017): the caps (``nexus/budgets``, maintained by ``nexus budgets --stage``) and the
state the proxy acts on (``nexus/budget-state``, written by ingest's evaluator).

Alerts (ADR 0018): the alerts document (``nexus/alerts``, maintained by ``nexus alerts --stage``).

The prompt library (ADR 0023), only in a stage with ``prompts_repo``: the token for a private HTTPS
repository (``nexus/prompts/token``), created holding ``{}`` (no token: a public repository) and set
by the operator (docs/deploy.md).

Per-team secrets are created at run time: upstream API keys (``<prefix>nexus/team/<team>/anthropic-api-key``)
by ``nexus teams set-api-key --stage <stage>``, OAuth credentials (``.../oauth``) by
``nexus teams set-oauth``, Slack webhooks (``.../slack-webhook``) by ``nexus alerts set``. Each grant
below covers one kind for the functions that need it, and no other.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_secretsmanager as sm
from constructs import Construct
from nexus.access import DASHBOARD_KEY_SECRET, KEYS_SECRET, TEAMS_SECRET
from nexus.alerts.config import ALERTS_SECRET
from nexus.analysis.settings import ANALYSIS_SECRET
from nexus.budgets import BUDGET_STATE_SECRET, BUDGETS_SECRET
from nexus.oauth import REQUESTS_SECRET
from nexus.prompts.sync import TOKEN_SECRET
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
        self.budgets = self._document(
            "Budgets", BUDGETS_SECRET, "Monthly and daily USD caps per team and per Nexus key", removal
        )
        self.budget_state = self._document(
            "BudgetState",
            BUDGET_STATE_SECRET,
            "Teams and keys over a budget cap (written by ingest, read by the proxy)",
            removal,
        )
        self.alerts = self._document(
            "Alerts", ALERTS_SECRET, "Per-team alert channels and thresholds (webhooks: own secrets)", removal
        )
        self.analysis = self._document(
            "Analysis",
            ANALYSIS_SECRET,
            "AI analysis settings: the analysis identity's Nexus key, model, per-team automatic trigger",
            removal,
        )
        self.prompts_token: sm.Secret | None = None
        if stage.prompts_repo:
            self.prompts_token = self._document(
                "PromptsToken",
                TOKEN_SECRET,
                f"Token for the prompt library's repository {stage.prompts_repo} ({{}}: none, a public one)",
                removal,
            )
        self.all = [
            self.dashboard_key,
            self.keys,
            self.teams,
            self.refresh_requests,
            self.budgets,
            self.budget_state,
            self.alerts,
            self.analysis,
        ]
        for secret in self.all:
            nag.acknowledge(
                secret,
                "SMG4",
                "Application-managed value, not a database credential: rotated with nexus keys / the "
                "dashboard key procedure in docs/deploy.md, which no rotation Lambda could do safely.",
            )
        if self.prompts_token:
            nag.acknowledge(
                self.prompts_token,
                "SMG4",
                "A Git host's access token: issued, expired and rotated at the Git host, then put here by "
                "the operator (docs/deploy.md); no rotation Lambda can issue one.",
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

    def grant_budget_evaluation(self, grantee: iam.IGrantable) -> None:
        """Ingest's budget evaluator: read the caps, read and write the state document (nothing else)."""
        self.budgets.grant_read(grantee)
        self.budget_state.grant_read(grantee)
        self.budget_state.grant_write(grantee)

    def grant_budget_management(self, grantee: iam.IGrantable) -> None:
        """The dashboard's budgets page: read both documents; set and clear caps (which also lifts a
        refusal a raised cap no longer justifies, in the state document)."""
        for s in (self.budgets, self.budget_state):
            s.grant_read(grantee)
            s.grant_write(grantee)

    def grant_read_access(self, fn: lambda_.Function) -> None:
        """Keys, teams, team API keys and the budget state: what the proxy needs to admit a request."""
        for s in (self.keys, self.teams, self.budget_state):
            s.grant_read(fn)
        for kind, how in (
            ("anthropic-api-key", "nexus teams set-api-key"),
            ("oauth", "nexus teams set-oauth"),
        ):
            self._grant_team_secrets(
                fn,
                kind,
                f"Team upstream credentials are created per team at run time ({how}); read-only access "
                "is limited to this stage's secrets of that kind.",
            )

    def grant_alerts_read(self, fn: lambda_.Function, webhooks: bool = False) -> None:
        """The alerts document; with ``webhooks``, the teams' Slack webhook secrets too (the notifier)."""
        self.alerts.grant_read(fn)
        if webhooks:
            self._grant_team_secrets(
                fn,
                "slack-webhook",
                "Team Slack webhooks are created per team at run time (nexus alerts set); read-only "
                "access is limited to this stage's webhook secrets.",
            )

    def _grant_team_secrets(self, fn: lambda_.Function, kind: str, reason: str) -> None:
        """Read ``<prefix>nexus/team/*/<kind>``: one kind of per-team secret, created at run time."""
        pattern = self._arn_pattern(f"nexus/team/*/{kind}")
        fn.grant_principal.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"],
                resources=[pattern],
            )
        )
        assert fn.role is not None
        nag.acknowledge(fn.role, f"IAM5[Resource::{nag.flatten(self, pattern)}]", reason)
