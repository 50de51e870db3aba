"""The prompt library's sync in AWS (ADR 0023): two Lambda entries, because the database is in a VPC
without a route to the internet and the Git host is on the internet.

``fetch`` (scheduled, outside the VPC) reads the token secret, fetches the repository into ``/tmp``
(kept between invocations of a warm function, so later fetches are incremental), parses the library
and invokes ``apply`` (in the VPC) with the snapshot as JSON, waiting for its answer: the sync's
result, which ``fetch`` logs and returns (``nexus prompts sync --stage`` prints it). ``apply`` makes
the database match the snapshot (``nexus.db.prompts.apply``: one transaction, idempotent).

Every failure fails the fetcher's invocation with a logged reason (its Errors metric raises the
``prompts-sync`` alarm): the repository unreachable or the token refused, the snapshot over Lambda's
payload limit, the applier failing. A file that does not parse is not a failure: it is reported in
the result and skipped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
from aws_lambda_powertools import Logger
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from nexus import audit
from nexus.aws import client
from nexus.db import prompts as library
from nexus.db.connect import DatabaseSettings, connect
from nexus.prompts import handoff
from nexus.prompts.source import SourceError, read
from nexus.prompts.sync import TOKEN_SECRET, token_from_secret
from nexus.secrets_manager import SecretsManagerStore

from nexus_prompts.settings import FetcherSettings

logger = Logger(service="nexus-prompts")
CACHE = Path("/tmp/prompts-cache")  # Lambda's writable directory, kept while the function is warm
# One attempt: a retried Invoke would apply the same snapshot twice (harmless, but a second sync row).
INVOKE_CONFIG = Config(
    connect_timeout=5,
    read_timeout=handoff.APPLY_TIMEOUT_S + 15,
    retries={"total_max_attempts": 1, "mode": "standard"},
)
_state: dict[str, Any] = {}


class SyncFailed(Exception):
    """The sync did not happen; the message says why (it is also the invocation's error)."""


def _settings() -> FetcherSettings:
    if "settings" not in _state:
        _state["settings"] = FetcherSettings()  # from the environment the stack sets
    settings: FetcherSettings = _state["settings"]
    return settings


def _credentials(settings: FetcherSettings) -> tuple[str | None, str | None]:
    """(user name, token) from the stage's token secret; none for a public repository."""
    store = SecretsManagerStore(client("secretsmanager"), settings.secrets_prefix)
    try:
        return token_from_secret(store.get(TOKEN_SECRET))
    except ValueError as exc:
        raise ValueError(f"{settings.secrets_prefix}{TOKEN_SECRET}: {exc}") from None


def _fail(message: str, **extra: Any) -> SyncFailed:
    logger.error("prompt library not synced", extra={"reason": message, **extra})
    return SyncFailed(message)


@logger.inject_lambda_context(log_event=False)
def fetch(event: dict[str, Any], context: Any) -> dict[str, Any]:
    settings = _settings()
    where = {"repo": settings.repo, "ref": settings.ref, "path": settings.path}
    try:
        username, token = _credentials(settings)
        snap = read(settings.repo, settings.ref, settings.path, CACHE, username, token)
    except (SourceError, ValueError) as exc:
        raise _fail(str(exc), **where) from None
    try:
        payload = handoff.encode(snap)
    except handoff.SnapshotTooLarge as exc:
        raise _fail(str(exc), **where, commit=snap.commit) from None
    logger.info(
        "prompt library read",
        extra={
            **where,
            "commit": snap.commit,
            "prompts": len(snap.templates),
            "payload_bytes": len(payload),  # the headroom under handoff.MAX_PAYLOAD_BYTES
            "trigger": (event or {}).get("source"),  # aws.events (the schedule), or the CLI
        },
    )
    try:
        response = client("lambda", INVOKE_CONFIG).invoke(
            FunctionName=settings.applier, InvocationType="RequestResponse", Payload=payload
        )
    except (BotoCoreError, ClientError) as exc:
        raise _fail(f"cannot invoke the applier {settings.applier}: {exc}", **where) from None
    answer = orjson.loads(response["Payload"].read() or b"null")
    if response.get("FunctionError"):
        error = answer.get("errorMessage") if isinstance(answer, dict) else answer
        raise _fail(f"the applier failed: {error}", **where, commit=snap.commit)
    result = {"repo": snap.repo, "ref": snap.ref, "path": snap.path, **answer}
    if result.get("errors"):
        logger.warning("prompt files skipped", extra={"errors": result["errors"]})
    logger.info("prompt library synced", extra=result)
    return result


@logger.inject_lambda_context(log_event=False)
def apply(event: dict[str, Any], context: Any) -> dict[str, Any]:
    snap = handoff.decode(event)  # ValueError: the invocation fails with what is wrong
    with connect(DatabaseSettings(), application_name="nexus-prompts", autocommit=True) as conn:
        result = library.apply(conn, snap)
        summary = result.summary()
        audit.record(
            conn,
            "prompts-sync",
            "prompts.sync",
            f"{snap.repo}@{snap.ref or 'default'}:{snap.path or '/'}",
            summary,
        )
    logger.info("prompt library applied", extra=summary)
    return summary
