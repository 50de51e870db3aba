"""``nexus tracking rebuild``: recompute conversation links and summaries from stored records."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from nexus_cli.common import add_data_dir, local_database

if TYPE_CHECKING:
    from nexus_cli.settings import CliSettings


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], settings: CliSettings) -> None:
    tr = sub.add_parser("tracking", help="conversation tracking maintenance")
    ts = tr.add_subparsers(dest="tracking_command", required=True, metavar="ACTION")
    rb = ts.add_parser("rebuild", help="recompute links and summaries (idempotent; same code as ingest)")
    rb.add_argument("--team", help="only conversations of this team")
    rb.add_argument(
        "--since", type=_date, help="only conversations with requests since DATE (YYYY-MM-DD or ISO)"
    )
    add_data_dir(rb, settings.data_dir)
    rb.set_defaults(func=_rebuild)


def _date(value: str) -> datetime:
    try:
        d = datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date: {value!r} (use YYYY-MM-DD or ISO 8601)") from None
    return d if d.tzinfo else d.replace(tzinfo=UTC)


class _Progress:
    """The rebuild's progress on stderr, with rate and time left (rich draws it; a plain line when
    stderr is not a terminal)."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            ProgressColumn,
            Task,
            TextColumn,
            TimeRemainingColumn,
        )
        from rich.text import Text

        class Rate(ProgressColumn):
            def render(self, task: Task) -> Text:
                return Text(f"{task.speed:,.0f}/s" if task.speed else "")

        self.progress = Progress(
            TextColumn("relinking"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("requests"),
            Rate(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
        )
        self.task: Any = None  # rich's TaskID

    def __enter__(self) -> _Progress:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def __call__(self, done: int, total: int) -> None:
        if self.task is None:
            self.task = self.progress.add_task("rebuild", total=total)
        self.progress.update(self.task, completed=done, total=total)


def _rebuild(args: argparse.Namespace) -> int:
    import psycopg
    from nexus.db.migrate import migrate
    from nexus.db.rebuild import rebuild

    with local_database(args) as url:
        migrate(url)
        with psycopg.connect(url) as conn, _Progress() as progress:
            n = rebuild(conn, args.team, args.since, progress)
        print(f"relinked {n} requests")
    return 0
