"""``nexus claude``: the bundled Claude Code through the proxy with the user's key, sent the way the
key's team needs; the fake upstream checks which credential arrives."""

from __future__ import annotations

import json
import re
import subprocess

import pytest

from tests.support.stack import NEXUS, Stack

pytestmark = [pytest.mark.cli, pytest.mark.shared_stack]
NEXUS_CLAUDE = [str(NEXUS), "claude"]
ASK = ["--", "-p", "hello through nexus claude", "--output-format", "json", "--model", "claude-sonnet-4-5"]


def _key(stack: Stack, team: str) -> str:
    out = stack.nexus("keys", "create", "--team", team, "--user", "ada")
    return re.search(r"nxk_\S+", out.stdout).group(0)  # type: ignore[union-attr]


def _nexus_claude(stack: Stack, tmp_path, key: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    (tmp_path / "home").mkdir(exist_ok=True)
    return subprocess.run(
        [
            *NEXUS_CLAUDE,
            "--data-dir",
            str(stack.data_dir),
            "--key",
            key,
            "--proxy-url",
            stack.proxy_url,
            *ASK,
        ],
        env={
            "PATH": "/usr/bin:/bin",
            "HOME": str(tmp_path / "home"),
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            **env,
        },
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=90,
    )


def test_a_team_key_members_key_goes_as_the_api_key(stack, upstream, tmp_path):
    key = _key(stack, "tk")
    assert stack.nexus("teams", "set-mode", "tk", "team-key").returncode == 0
    assert stack.nexus("teams", "set-api-key", "tk", input="sk-ant-api03-team-tk").returncode == 0
    upstream.accepts = {"sk-ant-api03-team-tk"}
    out = _nexus_claude(stack, tmp_path, key, {})
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.splitlines()[-1])["is_error"] is False
    assert upstream.messages_requests()[-1].header("x-api-key") == "sk-ant-api03-team-tk"
    rows = stack.wait_count(1, team="tk")
    assert rows and all(r["user"] == "ada" and r["status"] == 200 for r in rows)


def test_a_pass_through_members_own_key_goes_upstream_with_the_nexus_key_beside_it(stack, upstream, tmp_path):
    key = _key(stack, "pt")
    upstream.accepts = {"sk-ant-api03-my-own"}
    out = _nexus_claude(stack, tmp_path, key, {"ANTHROPIC_API_KEY": "sk-ant-api03-my-own"})
    assert out.returncode == 0, out.stderr
    seen = upstream.messages_requests()[-1]
    assert seen.header("x-api-key") == "sk-ant-api03-my-own" and seen.header("x-nexus-key") is None
    rows = stack.wait_count(1, team="pt")  # Claude Code may make more than one request
    assert rows and all(r["user"] == "ada" and r["team"] == "pt" for r in rows)  # filtered by team


def test_a_key_the_stack_does_not_know_is_refused_readably(stack, tmp_path):
    out = _nexus_claude(stack, tmp_path, "nxk_0000000000_not-a-real-key", {})
    assert out.returncode == 2 and "not a Nexus key of the local stack" in out.stderr
    assert "Traceback" not in out.stderr


def test_with_a_stage_the_proxy_url_comes_from_the_stacks_outputs(monkeypatch, tmp_path):
    """`--stage S`: the URL is the deployed stack's ProxyUrl output (CloudFormation under moto), and
    the key is checked against that stage's Secrets Manager."""
    import argparse

    import boto3
    from moto import mock_aws
    from nexus.access import AccessStore
    from nexus.secrets_manager import SecretsManagerStore, stage_prefix
    from nexus_cli import claude_cmd
    from nexus_cli.settings import CliSettings

    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(var, "testing")
    template = {
        "Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
        "Outputs": {"ProxyUrl": {"Value": "https://abc.lambda-url.eu-west-1.on.aws/"}},
    }
    with mock_aws():
        boto3.client("cloudformation").create_stack(
            StackName="Nexus-staging", TemplateBody=json.dumps(template)
        )
        store = SecretsManagerStore(boto3.client("secretsmanager"), stage_prefix("staging"))
        access = AccessStore(store)
        key, _ = access.create_key("web", "ada")
        access.set_team("web", "team-key")
        args = argparse.Namespace(
            settings=CliSettings(), key=key, proxy_url=None, stage="staging", data_dir=tmp_path, args=[]
        )
        env = claude_cmd.environment(args, {"PATH": "/usr/bin"})
    assert env["ANTHROPIC_BASE_URL"] == "https://abc.lambda-url.eu-west-1.on.aws"
    assert env["ANTHROPIC_API_KEY"] == key
