"""Sign-in for people in AWS (ADR 0025): with ``dashboard_login="cognito"`` the stack has a user pool
with the role groups, a hosted-UI domain and a PKCE app client whose callback is the dashboard's
function URL, and the dashboard function can read the settings that name them; without it, none."""

from __future__ import annotations

from aws_cdk.assertions import Match

from tests.infra.conftest import OPTIONS


def _one(template, kind: str) -> dict:
    found = template.find_resources(kind)
    assert len(found) == 1, found
    return next(iter(found.values()))


def test_a_stage_without_login_settings_has_no_user_pool(templates) -> None:
    for template in templates.values():
        template.resource_count_is("AWS::Cognito::UserPool", 0)


def test_cognito_gives_a_closed_user_pool_with_the_role_groups(options_template) -> None:
    pool = _one(options_template, "AWS::Cognito::UserPool")["Properties"]
    assert pool["AdminCreateUserConfig"]["AllowAdminCreateUserOnly"] is True  # no self sign-up
    assert pool["Policies"]["PasswordPolicy"]["MinimumLength"] >= 12
    assert pool["MfaConfiguration"] == "OPTIONAL"
    groups = options_template.find_resources("AWS::Cognito::UserPoolGroup")
    assert sorted(g["Properties"]["GroupName"] for g in groups.values()) == ["admin", "member", "viewer"]
    options_template.has_resource_properties(
        "AWS::Cognito::UserPoolDomain", {"Domain": OPTIONS["cognito_domain_prefix"]}
    )


def test_the_app_client_uses_the_code_flow_back_to_the_dashboard_url(options_template) -> None:
    client = _one(options_template, "AWS::Cognito::UserPoolClient")["Properties"]
    assert client["AllowedOAuthFlows"] == ["code"] and client.get("GenerateSecret") in (None, False)
    assert set(client["AllowedOAuthScopes"]) == {"openid", "email", "profile"}
    assert client["SupportedIdentityProviders"] == ["COGNITO"]
    (callback,) = client["CallbackURLs"]
    parts = callback["Fn::Join"][1]
    assert parts[-1] == "login/oidc/callback"
    url_ref = parts[0]["Fn::GetAtt"]
    assert url_ref[1] == "FunctionUrl"
    assert options_template.to_json()["Resources"][url_ref[0]]["Type"] == "AWS::Lambda::Url"


def test_the_dashboard_reads_its_login_settings_and_nothing_more(options_template) -> None:
    options_template.has_resource_properties(
        "AWS::SecretsManager::Secret", {"Name": Match.string_like_regexp("nexus/dashboard-oidc$")}
    )
    options_template.has_resource_properties(
        "AWS::Lambda::Function",
        {
            "Handler": "nexus_dashboard.handler.handle",
            "Environment": {
                "Variables": Match.object_like(
                    {
                        "NEXUS_OIDC_CONFIG_SECRET": Match.string_like_regexp("nexus/dashboard-oidc$"),
                        "NEXUS_OIDC_GROUPS_CLAIM": "cognito:groups",
                    }
                )
            },
        },
    )
    options_template.has_resource_properties(
        "AWS::IAM::Policy",
        {
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {
                                "Action": "secretsmanager:GetSecretValue",
                                "Resource": Match.object_like(
                                    {
                                        "Fn::Join": Match.array_with(
                                            [
                                                Match.array_with(
                                                    [
                                                        Match.string_like_regexp(
                                                            "dashboard-oidc-\\?\\?\\?\\?\\?\\?$"
                                                        )
                                                    ]
                                                )
                                            ]
                                        )
                                    }
                                ),
                            }
                        )
                    ]
                )
            }
        },
    )
