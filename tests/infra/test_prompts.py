"""The prompt library's sync as deployed (ADR 0023).

The template of both stages with a repository configured (staging: the suite's template of every
option; prod: one more synth, cdk-nag included): a scheduled fetcher outside the VPC that may read the
token secret and invoke the applier, and nothing else; the applier in the VPC with the database; an
alarm on the fetcher's errors; the output the CLI reads. Without a repository (the suite's templates of
both stages as configured): none of it.

Then the two handlers as the template wires them, under moto: the fetcher, with the environment the
template gives it, reads a local Git repository (the token from moto's Secrets Manager) and invokes
the applier through moto's Lambda, dispatched in-process to the real handler, which writes into the
real PostgreSQL; ``nexus prompts sync --stage`` finds the fetcher through the stack's output.
"""

from __future__ import annotations

import json
import logging
import zipfile
from io import BytesIO
from pathlib import Path
from typing import Any

import boto3
import psycopg
import pytest
from aws_cdk.assertions import Template
from moto import mock_aws
from moto.awslambda.models import LambdaFunction
from nexus.db import prompts as library
from nexus.db.migrate import migrate
from nexus.prompts import handoff

from infra.config import load_stage
from tests.infra.conftest import OPTIONS, synth
from tests.infra.test_stacks import actions_of, function, resources, statements
from tests.integration.test_prompt_sync import Repo, review
from tests.support.aws import lambda_in_process
from tests.support.git_http import PrivateGitHost

REGION = "us-east-1"
FETCH, APPLY = "nexus_prompts.handler.fetch", "nexus_prompts.handler.apply"


def _targets_of(template: Template, logical: str) -> list[dict[str, Any]]:
    return [
        r["Properties"]
        for r in resources(template, "AWS::Events::Rule").values()
        if any(t["Arn"] == {"Fn::GetAtt": [logical, "Arn"]} for t in r["Properties"]["Targets"])
    ]


PROMPTS = {k: v for k, v in OPTIONS.items() if k.startswith("prompts_")}


@pytest.fixture(scope="module")
def with_repository(
    options_template: Template, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Template]:
    """Both stages with a prompt library's repository: staging from the suite's template of every
    option, prod synthesized here with the repository alone."""
    return {
        "staging": options_template,
        "prod": synth("prod", tmp_path_factory.mktemp("prod-prompts"), **PROMPTS),
    }


@pytest.fixture(params=["staging", "prod"])
def template(request: pytest.FixtureRequest, with_repository: dict[str, Template]) -> Template:
    return with_repository[request.param]


def _token_secret(template: Template) -> str:
    [logical] = [
        k
        for k, r in resources(template, "AWS::SecretsManager::Secret").items()
        if r["Properties"].get("Name", "").endswith("/nexus/prompts/token")
    ]
    return logical


# -- the template ---------------------------------------------------------------------------------------


def test_a_scheduled_fetcher_outside_the_vpc_hands_the_library_to_an_applier_inside_it(
    template: Template,
) -> None:
    fetcher_id, fetcher = function(template, FETCH)
    applier_id, applier = function(template, APPLY)
    assert "VpcConfig" not in fetcher["Properties"]  # it reaches the Git host
    assert applier["Properties"]["VpcConfig"]["SubnetIds"]  # it reaches the database
    variables = fetcher["Properties"]["Environment"]["Variables"]
    assert variables["NEXUS_PROMPTS_REPO"] == PROMPTS["prompts_repo"]
    assert variables["NEXUS_PROMPTS_PATH"] == "prompts"
    assert "NEXUS_PROMPTS_REF" not in variables  # the repository's HEAD
    assert variables["NEXUS_PROMPTS_APPLIER"] == {"Ref": applier_id}
    assert "NEXUS_DB_SECRET_ARN" in applier["Properties"]["Environment"]["Variables"]
    # The fetcher waits for the applier: its timeout leaves room for the applier's.
    assert applier["Properties"]["Timeout"] == handoff.APPLY_TIMEOUT_S
    assert fetcher["Properties"]["Timeout"] == handoff.FETCH_TIMEOUT_S > handoff.APPLY_TIMEOUT_S

    [rule] = _targets_of(template, fetcher_id)
    assert rule["ScheduleExpression"] == "rate(15 minutes)" and rule["State"] == "ENABLED"
    assert rule["Targets"][0]["RetryPolicy"]["MaximumRetryAttempts"] == 0
    assert not _targets_of(template, applier_id)  # only the fetcher invokes it

    # The applier starts after the migrations, like every consumer of the database.
    migrations = next(iter(resources(template, "Custom::NexusMigrations")))
    assert migrations in template.to_json()["Resources"][applier_id]["DependsOn"]


def test_the_fetcher_may_invoke_the_applier_and_read_the_token_and_nothing_else(template: Template) -> None:
    _, fetcher = function(template, FETCH)
    applier_id, applier = function(template, APPLY)
    stmts = statements(template, fetcher)
    assert actions_of(stmts) == {
        "lambda:InvokeFunction",
        "secretsmanager:GetSecretValue",
        "secretsmanager:DescribeSecret",
        "xray:PutTraceSegments",
        "xray:PutTelemetryRecords",
    }
    [invoke] = [s for s in stmts if s["Action"] == "lambda:InvokeFunction"]
    assert invoke["Resource"] == {"Fn::GetAtt": [applier_id, "Arn"]}  # no "<arn>:*", no other function
    reads = [s["Resource"] for s in stmts if "secretsmanager:GetSecretValue" in actions_of([s])]
    assert reads == [{"Ref": _token_secret(template)}]
    # The applier reads the database secret, and no other.
    applier_reads = [
        s["Resource"]
        for s in statements(template, applier)
        if "secretsmanager:GetSecretValue" in actions_of([s])
    ]
    assert len(applier_reads) == 1 and "Database" in json.dumps(applier_reads)


def test_a_failed_sync_raises_an_alarm_to_the_operators(template: Template) -> None:
    fetcher_id, _ = function(template, FETCH)
    [alarm] = [
        a["Properties"]
        for a in resources(template, "AWS::CloudWatch::Alarm").values()
        if a["Properties"].get("AlarmName", "").endswith("-prompts-sync")
    ]
    assert alarm["MetricName"] == "Errors" and alarm["Namespace"] == "AWS/Lambda"
    assert alarm["Dimensions"] == [{"Name": "FunctionName", "Value": {"Ref": fetcher_id}}]
    assert alarm["Threshold"] == 1 and alarm["EvaluationPeriods"] == 1
    [topic] = [k for k, t in resources(template, "AWS::SNS::Topic").items() if "alarms" in json.dumps(t)]
    assert alarm["AlarmActions"] == [{"Ref": topic}]
    outputs = template.find_outputs("PromptSyncFunction")
    assert outputs["PromptSyncFunction"]["Value"] == {"Ref": fetcher_id}
    assert template.find_outputs("PromptsTokenSecret")


def test_the_stages_log_retention_applies_to_both_functions(with_repository: dict[str, Template]) -> None:
    for name, t in with_repository.items():
        for handler in (FETCH, APPLY):
            _, fn = function(t, handler)
            group = fn["Properties"]["LoggingConfig"]["LogGroup"]["Ref"]
            days = resources(t, "AWS::Logs::LogGroup")[group]["Properties"]["RetentionInDays"]
            assert days == load_stage(name).log_retention_days


def test_without_a_repository_a_stage_has_no_sync(templates: dict[str, Template]) -> None:
    for t in templates.values():  # both stages as configured: no prompts_repo
        handlers = {f["Properties"]["Handler"] for f in resources(t, "AWS::Lambda::Function").values()}
        assert FETCH not in handlers and APPLY not in handlers
        secrets = [
            r["Properties"].get("Name", "") for r in resources(t, "AWS::SecretsManager::Secret").values()
        ]
        assert not [name for name in secrets if "prompts" in name]
        assert not t.find_outputs("PromptSyncFunction")
        alarms = [
            a["Properties"].get("AlarmName", "") for a in resources(t, "AWS::CloudWatch::Alarm").values()
        ]
        assert not [name for name in alarms if "prompts" in name]


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"prompts_repo": "git@github.com:acme/prompts.git"}, "must be an https:// URL"),
        ({"prompts_repo": "https://ghp_secret@github.com/acme/prompts.git"}, "must not carry credentials"),
        ({"prompts_repo": "https://github.com/acme/p.git", "prompts_sync_minutes": 0}, "between 1 and 1440"),
        ({"prompts_ref": "main"}, "need prompts_repo"),
    ],
)
def test_a_source_the_functions_could_not_fetch_is_refused_at_synth(settings: dict, message: str) -> None:
    with pytest.raises(SystemExit, match=message):
        load_stage("staging", **settings)


# -- the handlers, under moto -----------------------------------------------------------------------------

TOKEN = "glpat-prompts-test-token"
EXPLAIN = "---\ndescription: Explain a topic\narguments: [topic]\n---\nExplain {{topic}} simply.\n"


class Deployed:
    """The stage as the template wires it: both functions in moto's Lambda, the token secret as the
    stack creates it, the stack with its output, and the database."""

    def __init__(self, conn: psycopg.Connection, fetcher: str, applier: str, host: PrivateGitHost) -> None:
        self.conn, self.fetcher, self.applier, self.host = conn, fetcher, applier, host
        self.lam, self.secrets = boto3.client("lambda"), boto3.client("secretsmanager")

    def set_token(self, value: str) -> None:
        self.secrets.put_secret_value(SecretId="staging/nexus/prompts/token", SecretString=value)

    def invoke(self, name: str, event: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
        """(answer, function error or None), as EventBridge or the CLI invokes a function."""
        r = self.lam.invoke(FunctionName=name, Payload=json.dumps(event).encode())
        return json.loads(r["Payload"].read()), r.get("FunctionError")

    def syncs(self) -> list[tuple[Any, ...]]:
        return self.conn.execute(
            "SELECT repo, commit, added, changed, removed FROM prompt_syncs ORDER BY id"
        ).fetchall()


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    r = Repo(tmp_path / "prompts-repo")
    r.write("prompts/review.md", review())
    r.write("prompts/explain.md", EXPLAIN)
    r.write("prompts/broken.md", "---\nname: Not Valid\n---\nhi\n")
    r.commit("library")
    return r


@pytest.fixture
def deployed(
    monkeypatch: pytest.MonkeyPatch,
    options_template: Template,
    database_url: str,
    repo: Repo,
    tmp_path: Path,
) -> Any:
    from nexus_prompts import handler

    migrate(database_url)
    t = options_template  # staging, with a repository
    fetcher_id, fetcher = function(t, FETCH)
    applier_id, _ = function(t, APPLY)
    # The fetcher's environment as the template sets it (the applier named by its function name), but
    # for the repository: a private host on this machine instead of the template's example URL.
    variables = {
        k: applier_id if v == {"Ref": applier_id} else v
        for k, v in fetcher["Properties"]["Environment"]["Variables"].items()
    }
    with PrivateGitHost(repo.root, TOKEN) as host:
        for k, v in {
            **variables,
            "NEXUS_PROMPTS_REPO": host.url,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
            "DATABASE_URL": database_url,  # the applier's; in AWS the RDS secret
        }.items():
            monkeypatch.setenv(k, v)
        monkeypatch.setattr(handler, "_state", {})
        monkeypatch.setattr(handler, "CACHE", tmp_path / "cache")
        monkeypatch.setattr(LambdaFunction, "_invoke_lambda", lambda_in_process)
        with mock_aws():
            role = boto3.client("iam").create_role(RoleName="fn", AssumeRolePolicyDocument="{}")["Role"][
                "Arn"
            ]
            zipped = BytesIO()
            with zipfile.ZipFile(zipped, "w") as z:
                z.writestr("placeholder.py", "")
            for name, handler_name in ((fetcher_id, FETCH), (applier_id, APPLY)):
                boto3.client("lambda").create_function(
                    FunctionName=name,
                    Runtime="python3.12",
                    Role=role,
                    Handler=handler_name,
                    Code={"ZipFile": zipped.getvalue()},
                )
            boto3.client("secretsmanager").create_secret(
                Name="staging/nexus/prompts/token", SecretString="{}"
            )
            stack = {
                "Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
                "Outputs": {"PromptSyncFunction": {"Value": fetcher_id}},
            }
            boto3.client("cloudformation").create_stack(
                StackName="Nexus-staging", TemplateBody=json.dumps(stack)
            )
            with psycopg.connect(database_url, autocommit=True) as conn:
                yield Deployed(conn, fetcher_id, applier_id, host)


class LogRecords(logging.Handler):
    """The records a logger emits (Powertools' loggers do not propagate to pytest's caplog)."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    @classmethod
    def on(cls, name: str) -> LogRecords:
        kept = cls()
        logging.getLogger(name).addHandler(kept)
        return kept


SCHEDULED = {"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}}


def test_a_scheduled_sync_fetches_the_private_repository_and_the_applier_writes_the_library(
    deployed: Deployed, repo: Repo
) -> None:
    deployed.set_token(TOKEN)  # as docs/deploy.md says: the token itself
    answer, error = deployed.invoke(deployed.fetcher, SCHEDULED)
    assert error is None, answer
    assert (sorted(answer["added"]), answer["changed"], answer["removed"]) == (["explain", "review"], [], [])
    assert list(answer["errors"]) == ["prompts/broken.md"]  # reported, skipped; the rest synced
    assert answer["repo"] == deployed.host.url and answer["path"] == "prompts"
    assert [p["name"] for p in library.library(deployed.conn)] == ["explain", "review"]
    assert library.version(deployed.conn, "explain")["body"] == "Explain {{topic}} simply."
    assert deployed.host.authorizations and all("Basic" in (a or "") for a in deployed.host.authorizations)

    # The next run: the same commit adds nothing; a change in Git makes a new version.
    again, error = deployed.invoke(deployed.fetcher, SCHEDULED)
    assert error is None and (again["added"], again["changed"], again["unchanged"]) == ([], [], 2)
    repo.write("prompts/explain.md", EXPLAIN.replace("simply", "to a child"))
    commit = repo.commit("simpler")
    third, error = deployed.invoke(deployed.fetcher, SCHEDULED)
    assert error is None and third["changed"] == ["explain"] and third["commit"] == commit
    assert [s[1:] for s in deployed.syncs()][-1] == (commit, 0, 1, 0)


def test_a_refused_token_fails_the_sync_with_its_reason_logged_and_changes_nothing(
    deployed: Deployed,
) -> None:
    logged = LogRecords.on("nexus-prompts")  # the functions' Powertools logger
    # The secret as the stack creates it ({}: no token): the private host refuses.
    answer, error = deployed.invoke(deployed.fetcher, SCHEDULED)
    assert error and "HTTP 401, a private repository needs a token" in answer["errorMessage"]
    deployed.set_token(json.dumps({"token": "wrong"}))
    answer, error = deployed.invoke(deployed.fetcher, SCHEDULED)
    assert error and "HTTP 401, the token was refused" in answer["errorMessage"]
    failures = [r for r in logged.records if r.getMessage() == "prompt library not synced"]
    assert [r.levelname for r in failures] == ["ERROR", "ERROR"]
    assert "the token was refused" in failures[-1].reason and failures[-1].repo == deployed.host.url
    assert deployed.syncs() == []


def test_a_library_over_lambdas_payload_limit_is_refused_whole_with_a_clear_reason(
    deployed: Deployed, repo: Repo
) -> None:
    deployed.set_token(TOKEN)
    filler = ("Review this carefully. " * 12_000)[: 250 * 1024]  # under the 256 KiB per template
    for i in range(26):
        repo.write(f"prompts/long-{i:02}.md", f"---\nname: long-{i:02}\n---\n{filler}\n")
    repo.commit("too much")
    answer, error = deployed.invoke(deployed.fetcher, SCHEDULED)
    assert error, answer
    message = answer["errorMessage"]
    assert "over Lambda's 6,291,456-byte limit for one invocation (28 prompts" in message
    assert "prompts/long-00.md (250 KiB)" in message and "nothing was applied" in message
    assert deployed.syncs() == []


def test_the_applier_refuses_what_is_not_a_snapshot(deployed: Deployed) -> None:
    answer, error = deployed.invoke(deployed.applier, {"commit": "abc"})
    assert (
        error and answer["errorMessage"] == "not a prompt library snapshot: missing repo, templates, errors"
    )
    assert deployed.syncs() == []


# -- nexus prompts sync --stage -------------------------------------------------------------------------


def test_nexus_prompts_sync_with_a_stage_runs_the_stages_sync_and_prints_the_result(
    deployed: Deployed, capsys: pytest.CaptureFixture[str]
) -> None:
    from nexus_cli.main import main

    deployed.set_token(TOKEN)
    capsys.readouterr()
    assert main(["prompts", "sync", "--stage", "staging"]) == 1  # a file was skipped
    out = capsys.readouterr().out
    assert f"synced {deployed.host.url} at " in out and "2 added, 0 changed, 0 removed, 0 unchanged" in out
    assert "  added    explain" in out and "  skipped  prompts/broken.md: name:" in out
    assert [s[2] for s in deployed.syncs()] == [2]

    # A failed sync is the function's reason, printed without a traceback.
    deployed.set_token("wrong")
    capsys.readouterr()
    assert main(["prompts", "sync", "--stage", "staging"]) == 2
    err = capsys.readouterr().err
    assert "nexus: the sync of stage staging failed:" in err and "the token was refused" in err
    assert "Traceback" not in err


def test_nexus_prompts_sync_names_a_missing_stack_or_sync(
    deployed: Deployed, capsys: pytest.CaptureFixture[str]
) -> None:
    from nexus_cli.main import main

    assert main(["prompts", "sync", "--stage", "prod"]) == 2
    assert "nexus: cannot read stack Nexus-prod of stage 'prod':" in capsys.readouterr().err
    boto3.client("cloudformation").create_stack(
        StackName="Nexus-prod", TemplateBody=json.dumps({"Resources": {"T": {"Type": "AWS::SNS::Topic"}}})
    )
    assert main(["prompts", "sync", "--stage", "prod"]) == 2
    assert "stage prod has no prompt library sync: set prompts_repo" in capsys.readouterr().err
    assert main(["prompts", "sync", "--stage", "staging", "--repo", "x"]) == 2
    assert "--repo, --ref and --path are for the local stack" in capsys.readouterr().err
