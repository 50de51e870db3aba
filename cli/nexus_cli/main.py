"""``nexus``: entry point. Sub-commands live in one module each."""

from __future__ import annotations

import argparse
import sys

from nexus_cli import (
    alerts_cmd,
    analysis_cmd,
    budgets_cmd,
    claude_cmd,
    db_cmd,
    dev,
    keys_cmd,
    prompts_cmd,
    records_cmd,
    tracking_cmd,
    users_cmd,
)
from nexus_cli import settings as cli_settings
from nexus_cli.common import CLIError
from nexus_cli.settings import CliSettings


def build_parser(settings: CliSettings) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nexus", description="Gateway and observability for Claude Code teams."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands = (
        dev,
        keys_cmd,
        alerts_cmd,
        budgets_cmd,
        db_cmd,
        tracking_cmd,
        claude_cmd,
        analysis_cmd,
        prompts_cmd,
        records_cmd,
        users_cmd,
    )
    for command in commands:
        command.register(sub, settings)
    parser.set_defaults(settings=settings)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        settings = cli_settings.load()
    except CLIError as exc:
        print(f"nexus: {exc}", file=sys.stderr)
        return 2
    args = build_parser(settings).parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except CLIError as exc:
        print(f"nexus: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
