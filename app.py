#!/usr/bin/env python3
"""CDK entry point: one Nexus stack per stage, chosen with ``cdk synth -c stage=staging|prod``.

The stack's resources are being built in the infrastructure issue; this file and ``infra/`` fix the
shape (typed per-stage config, stack named after the stage) so later work only adds constructs.
"""

from __future__ import annotations

import aws_cdk as cdk

from infra.config import load_stage
from infra.stack import NexusStack

app = cdk.App()
stage = load_stage(app.node.try_get_context("stage") or "staging")
NexusStack(
    app, f"Nexus-{stage.name}", stage=stage, env=cdk.Environment(account=stage.account, region=stage.region)
)
app.synth()
