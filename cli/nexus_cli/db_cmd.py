"""``nexus db``: migrations against DATABASE_URL or the embedded server."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from nexus.db.migrate import migrate

from nexus_cli.common import add_data_dir, local_database

if TYPE_CHECKING:
    from nexus_cli.settings import CliSettings


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], settings: CliSettings) -> None:
    db = sub.add_parser("db", help="database maintenance")
    ds = db.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    m = ds.add_parser("migrate", help="apply pending migrations")
    add_data_dir(m, settings.data_dir)
    m.set_defaults(func=_migrate)


def _migrate(args: argparse.Namespace) -> int:
    with local_database(args, must_exist=False) as url:
        applied = migrate(url)
        print("applied: " + ", ".join(applied) if applied else "database is up to date")
    return 0
