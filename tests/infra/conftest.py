"""One in-process synth per stage for the whole infrastructure suite (cdk-nag included): the stack
modules' tests all read these templates."""

from __future__ import annotations

import os
from pathlib import Path

# jsii's runtime prints a banner about the Node version on every start; the suite's output is for
# test results (CI's Node is whatever the machine has: README's requirement is Node, any LTS).
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "1")
os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")

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


@pytest.fixture(params=["staging", "prod"])
def template(request, templates) -> Template:
    return templates[request.param]
