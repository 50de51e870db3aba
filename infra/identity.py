"""Sign-in for people on the dashboard (ADR 0025): a Cognito user pool in the stack, or an external
OpenID Connect issuer named in the stage config.

Cognito: a user pool (no self sign-up; e-mail as the name; TOTP MFA optional), the groups ``admin``,
``member`` and ``viewer`` (a person's role) to which an admin adds ``team:<name>`` groups (their
teams), a hosted-UI domain, and an app client for the authorization-code flow with PKCE whose
callback is the dashboard's function URL. The function URL is created after the function, and the
client after the URL, so the client's id cannot be in the function's environment (a cycle): it is
written to a small secret whose *name* the function gets, read once per execution environment.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_cognito as cognito
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_secretsmanager as sm
from constructs import Construct
from nexus import env
from nexus.secrets_manager import stage_prefix

from infra import nag
from infra.config import StageConfig

ROLE_GROUPS = {
    "admin": "Keys, credentials, budgets, users, service tokens and the audit log; every team's data",
    "member": "Their teams' conversations and usage (add team:<name> groups); may request analyses",
    "viewer": "Read-only access to the teams chosen for them (team:<name> groups)",
}
CONFIG_SECRET = "nexus/dashboard-oidc"
CALLBACK_PATH = "login/oidc/callback"


class DashboardLogin(Construct):
    """What the dashboard function needs to sign people in; ``environment`` goes into its settings."""

    def __init__(
        self, scope: Construct, construct_id: str, *, stage: StageConfig, function: lambda_.Function, url: str
    ) -> None:
        super().__init__(scope, construct_id)
        self.environment: dict[str, str] = {env.OIDC_GROUPS_CLAIM: stage.oidc_groups_claim}
        if stage.dashboard_login == "external":
            assert stage.oidc_issuer and stage.oidc_client_id  # config.check
            self.environment.update(
                {env.OIDC_ISSUER: stage.oidc_issuer, env.OIDC_CLIENT_ID: stage.oidc_client_id}
            )
            self.environment[env.OIDC_LABEL] = stage.oidc_label
            if stage.oidc_client_secret_name:
                self.environment[env.OIDC_CLIENT_SECRET_SECRET] = stage.oidc_client_secret_name
                _grant_secret(
                    self, function, stage.oidc_client_secret_name, "the external issuer's client secret"
                )
            return
        self._cognito(stage, function, url)

    def _cognito(self, stage: StageConfig, function: lambda_.Function, url: str) -> None:
        stack = cdk.Stack.of(self)
        removal = cdk.RemovalPolicy.RETAIN if stage.deletion_protection else cdk.RemovalPolicy.DESTROY
        self.pool = cognito.UserPool(
            self,
            "Users",
            user_pool_name=f"nexus-{stage.name}-dashboard",
            self_sign_up_enabled=False,  # admins invite people
            sign_in_aliases=cognito.SignInAliases(email=True),
            auto_verify=cognito.AutoVerifiedAttrs(email=True),
            account_recovery=cognito.AccountRecovery.EMAIL_ONLY,
            password_policy=cognito.PasswordPolicy(
                min_length=12,
                require_lowercase=True,
                require_uppercase=True,
                require_digits=True,
                require_symbols=True,
            ),
            mfa=cognito.Mfa.OPTIONAL,
            mfa_second_factor=cognito.MfaSecondFactor(otp=True, sms=False),
            deletion_protection=stage.deletion_protection,
            removal_policy=removal,
        )
        for group, description in ROLE_GROUPS.items():
            self.pool.add_group(f"Group-{group}", group_name=group, description=description)
        prefix = stage.cognito_domain_prefix or f"nexus-{stage.name}-dashboard"
        self.domain = self.pool.add_domain(
            "Domain", cognito_domain=cognito.CognitoDomainOptions(domain_prefix=prefix)
        )
        self.client = self.pool.add_client(
            "Dashboard",
            user_pool_client_name="nexus-dashboard",
            generate_secret=False,  # a public client with PKCE: no client secret to keep or rotate
            prevent_user_existence_errors=True,
            supported_identity_providers=[cognito.UserPoolClientIdentityProvider.COGNITO],
            id_token_validity=cdk.Duration.hours(1),
            o_auth=cognito.OAuthSettings(
                flows=cognito.OAuthFlows(authorization_code_grant=True),
                scopes=[cognito.OAuthScope.OPENID, cognito.OAuthScope.EMAIL, cognito.OAuthScope.PROFILE],
                callback_urls=[cdk.Fn.join("", [url, CALLBACK_PATH])],
                logout_urls=[url],
            ),
        )
        issuer = f"https://cognito-idp.{stack.region}.amazonaws.com/{self.pool.user_pool_id}"
        name = stage_prefix(stage.name) + CONFIG_SECRET
        self.config = sm.Secret(
            self,
            "Config",
            secret_name=name,
            description="The dashboard's OIDC issuer and client id (not secret; here to avoid a cycle)",
            secret_object_value={
                "issuer": cdk.SecretValue.unsafe_plain_text(issuer),
                "client_id": cdk.SecretValue.unsafe_plain_text(self.client.user_pool_client_id),
                "label": cdk.SecretValue.unsafe_plain_text(stage.oidc_label),
            },
            removal_policy=cdk.RemovalPolicy.DESTROY,
        )
        self.environment[env.OIDC_CONFIG_SECRET] = name
        _grant_secret(self, function, name, "the dashboard's OIDC settings")
        nag.acknowledge(
            self.config,
            "SMG4",
            "It holds an issuer URL and a public client id, nothing that could be rotated.",
        )
        nag.acknowledge(
            self.pool,
            "COG2",
            "MFA is offered (TOTP) and may be required per pool by the operator; requiring it by default "
            "would lock out the first admin before they set it up.",
        )
        for rule in ("COG3", "COG8"):
            nag.acknowledge(
                self.pool,
                rule,
                "Threat protection needs the Plus feature plan (billed per active user); the choice is "
                "left to the operator (docs/deploy.md). Failed sign-ins are limited by Cognito itself.",
            )
        cdk.CfnOutput(stack, "DashboardUserPoolId", value=self.pool.user_pool_id)
        cdk.CfnOutput(stack, "DashboardLoginDomain", value=self.domain.base_url())


def _grant_secret(scope: Construct, function: lambda_.Function, name: str, what: str) -> None:
    """Read one secret, ``what``, by its name (an ARN from the name and the six characters Secrets
    Manager appends: no dependency on the secret, which may be created after the function)."""
    arn = cdk.Stack.of(scope).format_arn(
        service="secretsmanager",
        resource="secret",
        resource_name=f"{name}-??????",
        arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME,
    )
    function.add_to_role_policy(
        iam.PolicyStatement(actions=["secretsmanager:GetSecretValue"], resources=[arn])
    )
