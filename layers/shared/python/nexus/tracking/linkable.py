"""What linking a request into its conversation needs from it: computed when a record is derived
(``nexus.derive``, pure), used when it is stored (``nexus.db.tracking``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from nexus.tracking.keys import TrackingKeys

# Request kinds that take a place in a conversation's tree (side requests join their session's).
LINKED_KINDS = frozenset({"main", "subagent", "compaction"})


@dataclass(slots=True)
class LinkInput:
    id: str
    received_at: datetime
    team: str | None
    user_id: str | None
    session_id: str | None
    agent_id: str | None
    model: str | None
    input_tokens: int
    output_tokens: int
    cache_creation_input_tokens: int
    cache_read_input_tokens: int
    cost_usd: Decimal | None
    context_tokens: int | None
    keys: TrackingKeys
    kind: str = "main"
