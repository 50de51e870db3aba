"""In AWS the dashboard finds its sign-in settings where the stack puts them (infra/identity.py): with
Cognito, a secret naming the user pool's issuer and the app client (moto's Cognito and Secrets
Manager stand in); with an external issuer, the environment and a client secret in Secrets Manager."""

from __future__ import annotations

import json

import boto3
import pytest
from moto import mock_aws
from nexus import env
from nexus_dashboard import handler
from nexus_dashboard.settings import DashboardSettings

REGION = "eu-west-1"


@pytest.fixture
def aws(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(var, "testing")
    with mock_aws():
        yield


def test_with_cognito_the_issuer_and_client_come_from_the_config_secret(aws, monkeypatch) -> None:
    idp = boto3.client("cognito-idp", region_name=REGION)
    pool = idp.create_user_pool(PoolName="nexus-staging-dashboard")["UserPool"]["Id"]
    client = idp.create_user_pool_client(
        UserPoolId=pool, ClientName="nexus-dashboard", AllowedOAuthFlows=["code"], GenerateSecret=False
    )["UserPoolClient"]["ClientId"]
    issuer = f"https://cognito-idp.{REGION}.amazonaws.com/{pool}"
    boto3.client("secretsmanager", region_name=REGION).create_secret(
        Name="staging/nexus/dashboard-oidc",
        SecretString=json.dumps({"issuer": issuer, "client_id": client, "label": "Acme SSO"}),
    )
    monkeypatch.setenv(env.OIDC_CONFIG_SECRET, "staging/nexus/dashboard-oidc")
    config = handler._oidc(DashboardSettings())
    assert config is not None
    assert (config.issuer, config.client_id, config.client_secret) == (issuer, client, None)
    assert (config.groups_claim, config.label) == ("cognito:groups", "Acme SSO")


def test_an_external_issuer_reads_its_client_secret_from_secrets_manager(aws, monkeypatch) -> None:
    boto3.client("secretsmanager", region_name=REGION).create_secret(
        Name="prod/nexus/oidc-client-secret", SecretString="s3cr3t"
    )
    monkeypatch.setenv(env.OIDC_ISSUER, "https://login.example.com/tenant")
    monkeypatch.setenv(env.OIDC_CLIENT_ID, "nexus")
    monkeypatch.setenv(env.OIDC_CLIENT_SECRET_SECRET, "prod/nexus/oidc-client-secret")
    monkeypatch.setenv(env.OIDC_GROUPS_CLAIM, "groups")
    config = handler._oidc(DashboardSettings())
    assert config is not None
    assert (config.issuer, config.client_id, config.client_secret, config.groups_claim) == (
        "https://login.example.com/tenant",
        "nexus",
        "s3cr3t",
        "groups",
    )


def test_no_login_settings_no_oidc_and_half_of_them_is_refused(monkeypatch) -> None:
    assert handler._oidc(DashboardSettings()) is None
    monkeypatch.setenv(env.OIDC_ISSUER, "https://login.example.com")
    with pytest.raises(ValueError, match="needs both"):
        DashboardSettings()
