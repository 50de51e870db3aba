"""The Nexus stack of one stage. Resources arrive construct by construct (infrastructure issue)."""

from __future__ import annotations

from typing import Any

import aws_cdk as cdk
from constructs import Construct

from infra.config import StageConfig


class NexusStack(cdk.Stack):
    def __init__(self, scope: Construct, construct_id: str, *, stage: StageConfig, **kwargs: Any) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.stage = stage
        cdk.Tags.of(self).add("nexus:stage", stage.name)
