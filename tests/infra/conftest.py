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


@pytest.fixture(params=["staging", "prod"])
def template(request, templates) -> Template:
    return templates[request.param]
