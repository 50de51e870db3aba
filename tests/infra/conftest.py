"""One in-process synth per stage for the whole infrastructure suite (cdk-nag included): the stack
modules' tests all read these templates."""

from __future__ import annotations

from pathlib import Path

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Template

from infra.config import load_stage
from infra.stack import create_stack


def synth(stage_name: str, outdir: Path, **overrides: object) -> Template:
    app = cdk.App(outdir=str(outdir))
    stack = create_stack(app, load_stage(stage_name, **overrides))
    app.synth()  # raises on any unacknowledged cdk-nag finding
    return Template.from_stack(stack)


@pytest.fixture(scope="session")
def outdirs(tmp_path_factory) -> dict[str, Path]:
    return {name: tmp_path_factory.mktemp(name) for name in ("staging", "prod")}


@pytest.fixture(scope="session")
def templates(outdirs) -> dict[str, Template]:
    return {name: synth(name, out) for name, out in outdirs.items()}


# Every optional stage setting at once, in one more synth (each synth takes tens of seconds): the tests
# of each option read this template.
OPTIONS = {
    "alarm_email": "ops@example.com",
    "gateway_egress": "nat",
    "analysis_bedrock_region": "eu-west-1",
    "db_snapshot_identifier": "nexus-staging-before-upgrade",
    "prompts_repo": "https://git.example.com/acme/prompts.git",  # the prompt library's sync
    "prompts_path": "prompts",
    "dashboard_login": "cognito",
    "cognito_domain_prefix": "nexus-staging-test",
}


@pytest.fixture(scope="session")
def options_template(tmp_path_factory) -> Template:
    """Staging with every option of ``OPTIONS`` set."""
    return synth("staging", tmp_path_factory.mktemp("options"), **OPTIONS)


@pytest.fixture(params=["staging", "prod"])
def template(request, templates) -> Template:
    return templates[request.param]
