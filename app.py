#!/usr/bin/env python3
"""CDK entry point: one Nexus stack per stage, chosen with ``cdk deploy -c stage=staging|prod``.

Optional context: ``-c account=... -c region=... -c alarm_email=...``, and the prompt library's source
(``-c prompts_repo=https://... -c prompts_ref=... -c prompts_path=... -c prompts_sync_minutes=...``).
Every other setting lives in the typed stage config (``infra/config.py``); constructs never read the
environment.
"""

from __future__ import annotations

import aws_cdk as cdk

from infra.config import load_stage
from infra.stack import create_stack

app = cdk.App()
ctx = app.node.try_get_context
minutes = ctx("prompts_sync_minutes")
stage = load_stage(
    ctx("stage") or "staging",
    account=ctx("account"),
    region=ctx("region"),
    alarm_email=ctx("alarm_email"),
    prompts_repo=ctx("prompts_repo"),
    prompts_ref=ctx("prompts_ref"),
    prompts_path=ctx("prompts_path"),
    prompts_sync_minutes=int(minutes) if minutes is not None else None,
)
create_stack(app, stage)
app.synth()
