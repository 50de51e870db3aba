"""What the Nexus constructs share: the stage and the stack's common resources, built once by the
stack (``infra/stack.py``) and handed to each construct that uses them."""

from __future__ import annotations

from dataclasses import dataclass

from infra.config import StageConfig
from infra.database import Database
from infra.layers import Layers
from infra.network import Network
from infra.queue import RecordQueue
from infra.secrets import AccessSecrets


@dataclass(frozen=True)
class StackContext:
    stage: StageConfig
    layers: Layers
    network: Network
    database: Database
    queue: RecordQueue
    secrets: AccessSecrets
