"""Options and helpers shared by sub-commands."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from nexus.secret_store import LocalSecretStore


def add_data_dir(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data-dir",
        type=Path,
        default=Path(os.environ.get("NEXUS_DATA_DIR", ".nexus")),
        help="where the local stack keeps its database, spool and secrets [NEXUS_DATA_DIR, default .nexus/]",
    )


def local_store(data_dir: Path) -> LocalSecretStore:
    return LocalSecretStore(data_dir / "secrets.json")


class CLIError(Exception):
    """A readable, expected failure: printed without a traceback."""
