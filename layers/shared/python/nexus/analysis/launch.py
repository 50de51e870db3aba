"""Starting a queued run: in AWS a Step Functions execution (named by the run's id, so a repeated
start is refused rather than run twice); locally nothing, since ``nexus dev``'s runner polls the
queue. Chosen by ``NEXUS_ANALYSIS_STATE_MACHINE``.
"""

from __future__ import annotations

import json
import os
from typing import Any, Protocol

from nexus import env


class Launcher(Protocol):
    def start(self, analysis_id: str, conversation_id: str) -> None: ...


class PolledQueue:
    """The local stack: the runner picks queued rows up within its poll interval."""

    def start(self, analysis_id: str, conversation_id: str) -> None:
        return None


class StepFunctionsLauncher:
    def __init__(self, state_machine_arn: str, client: Any = None) -> None:
        self.arn = state_machine_arn
        self._client = client

    def start(self, analysis_id: str, conversation_id: str) -> None:
        if self._client is None:
            from nexus.aws import client

            self._client = client("stepfunctions")
        payload = {"analysis_id": analysis_id, "conversation_id": conversation_id}
        self._client.start_execution(stateMachineArn=self.arn, name=analysis_id, input=json.dumps(payload))


def from_env() -> Launcher:
    arn = os.environ.get(env.ANALYSIS_STATE_MACHINE)
    return StepFunctionsLauncher(arn) if arn else PolledQueue()
