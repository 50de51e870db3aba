"""Options and helpers shared by sub-commands."""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from nexus.secret_store import LocalSecretStore, SecretStore

if TYPE_CHECKING:
    from nexus_cli.settings import CliSettings


def add_data_dir(p: argparse.ArgumentParser, default: Path) -> None:
    p.add_argument(
        "--data-dir",
        type=Path,
        default=default,
        help="where the local stack keeps its database, spool and secrets [NEXUS_DATA_DIR, default .nexus/]",
    )


def local_store(data_dir: Path) -> LocalSecretStore:
    return LocalSecretStore.in_data_dir(data_dir)


class CLIError(Exception):
    """A readable, expected failure: printed without a traceback."""


def add_store_options(p: argparse.ArgumentParser, settings: CliSettings) -> None:
    """Where keys and teams live: the local stack's data directory, or a deployed stage."""
    add_data_dir(p, settings.data_dir)
    p.add_argument(
        "--stage",
        default=settings.stage,
        help="manage a deployed stage (staging, prod) in AWS Secrets Manager with your AWS credentials "
        "instead of the local stack [NEXUS_STAGE]",
    )


def store_for(args: argparse.Namespace) -> SecretStore:
    if not getattr(args, "stage", None):
        return local_store(args.data_dir)
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError
    from nexus.access import KEYS_SECRET
    from nexus.secrets_manager import SecretsManagerStore, stage_prefix

    try:
        client = boto3.client("secretsmanager")
        store = SecretsManagerStore(client, stage_prefix(args.stage))
        store.version(KEYS_SECRET)  # fail here, readably, rather than half-way through a command
    except (BotoCoreError, ClientError) as exc:
        raise CLIError(f"cannot reach Secrets Manager for stage {args.stage!r}: {exc}") from None
    return store


def stage_outputs(stage: str) -> dict[str, str]:
    """The deployed stage's stack outputs (``ProxyUrl``, ``DashboardUrl``, ``AlertsTopic``, ...), read
    with your AWS credentials."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    stack = f"Nexus-{stage}"
    try:
        stacks = boto3.client("cloudformation").describe_stacks(StackName=stack)["Stacks"]
    except (BotoCoreError, ClientError) as exc:
        raise CLIError(f"cannot read stack {stack} of stage {stage!r}: {exc}") from None
    return {o["OutputKey"]: str(o["OutputValue"]) for s in stacks for o in s.get("Outputs", [])}


def stage_output(stage: str, name: str) -> str:
    """One output the stage's stack must have."""
    value = stage_outputs(stage).get(name)
    if value is None:
        raise CLIError(f"stack Nexus-{stage} has no {name} output (deployed by an older Nexus? deploy again)")
    return value


@contextlib.contextmanager
def local_database(args: argparse.Namespace, must_exist: bool = True) -> Iterator[str]:
    """The local stack's database URL for one command: DATABASE_URL, else the embedded server in the
    data directory, started for the command and stopped after it. ``must_exist``: refuse to create a
    new cluster (every command but `nexus db migrate`)."""
    url: str | None = args.settings.database_url
    if url:
        yield url
        return
    from nexus.db.embedded import start_embedded

    if must_exist and not (args.data_dir / "pg").exists():
        raise CLIError(f"no database in {args.data_dir} (set DATABASE_URL or --data-dir)")
    server = start_embedded(args.data_dir / "pg")
    try:
        yield str(server.get_uri())
    finally:
        server.cleanup()


def cli_actor() -> str:
    """Who the audit log says did what a command did: the operating-system user."""
    import getpass

    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli:unknown"
