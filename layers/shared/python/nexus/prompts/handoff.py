"""The sync in AWS (ADR 0023): what the fetcher (outside the VPC: it reaches the Git host) hands the
applier (inside the VPC: it reaches the database), and the limits both functions are built with.

The snapshot travels as the payload of one synchronous ``Invoke``, whose request Lambda caps at
6 MB. A snapshot over that fails the sync with a message that says so (its size, the limit, the
largest prompts): it is never cut into parts, because ``nexus.db.prompts.apply`` needs the whole
library in one transaction to tell a removed prompt from one in another part. Templates are at most
256 KiB each (``template.MAX_BYTES``) and typically a few KiB, so the limit holds thousands of prompts.
"""

from __future__ import annotations

from typing import Any

import orjson

from nexus.prompts.source import Snapshot
from nexus.prompts.template import NAME

# Lambda's limit on a synchronous invocation's request (and response) payload: 6 MB, in bytes as the
# service counts them ("Request must be smaller than 6291456 bytes for the InvokeFunction operation").
MAX_PAYLOAD_BYTES = 6 * 1024 * 1024

# Function timeouts (infra/prompts.py). The fetcher waits for the applier a little longer than the
# applier may run, and the fetcher itself has room for a first, full fetch of the repository.
APPLY_TIMEOUT_S = 60
FETCH_TIMEOUT_S = 300


class SnapshotTooLarge(ValueError):
    """The library does not fit in one invocation; the message is for the operator."""


def encode(snap: Snapshot, limit: int = MAX_PAYLOAD_BYTES) -> bytes:
    """The snapshot as the applier's invocation payload. Raises SnapshotTooLarge over ``limit``."""
    payload = orjson.dumps(snap.to_json())
    if len(payload) > limit:
        largest = sorted(snap.templates, key=lambda t: len(t.body.encode()), reverse=True)[:3]
        named = ", ".join(f"{t.path or t.name} ({len(t.body.encode()) // 1024} KiB)" for t in largest)
        raise SnapshotTooLarge(
            f"the prompt library at {snap.commit[:12]} is {len(payload):,} bytes as JSON, over Lambda's "
            f"{limit:,}-byte limit for one invocation ({len(snap.templates)} prompts; the largest: "
            f"{named}); nothing was applied: make the library smaller or narrow prompts_path"
        )
    return payload


def decode(event: Any) -> Snapshot:
    """The snapshot from the applier's event; ValueError naming what is wrong when it is not one."""
    if not isinstance(event, dict):
        raise ValueError(f"not a prompt library snapshot: expected a JSON object, got {type(event).__name__}")
    missing = [k for k in ("repo", "commit", "templates", "errors") if k not in event]
    if missing:
        raise ValueError(f"not a prompt library snapshot: missing {', '.join(missing)}")
    if not isinstance(event["templates"], list) or not isinstance(event["errors"], dict):
        raise ValueError("not a prompt library snapshot: templates must be a list, errors an object")
    try:
        snap = Snapshot.from_json(event)
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"not a prompt library snapshot: a template is malformed ({exc!r})") from None
    bad = [
        t.name
        for t in snap.templates
        if not isinstance(t.name, str) or not NAME.match(t.name) or not isinstance(t.body, str)
    ]
    if bad:
        raise ValueError(f"not a prompt library snapshot: invalid prompts {bad!r}")
    return snap
