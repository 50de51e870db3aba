"""``nexus db``: migrations against DATABASE_URL or the embedded server."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from nexus.db.migrate import migrate

from nexus_cli.common import add_data_dir

if TYPE_CHECKING:
    from nexus_cli.settings import CliSettings


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], settings: CliSettings) -> None:
    db = sub.add_parser("db", help="database maintenance")
    ds = db.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    m = ds.add_parser("migrate", help="apply pending migrations")
    add_data_dir(m, settings.data_dir)
    m.set_defaults(func=_migrate)


def _migrate(args: argparse.Namespace) -> int:
    url = args.settings.database_url
    server = None
    if not url:
        from nexus.db.embedded import start_embedded

        server = start_embedded(args.data_dir / "pg")
        url = server.get_uri()
    try:
        applied = migrate(url)
        print("applied: " + ", ".join(applied) if applied else "database is up to date")
    finally:
        if server is not None:
            server.cleanup()
    return 0
