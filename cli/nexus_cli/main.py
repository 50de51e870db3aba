"""``nexus``: entry point. Sub-commands live in one module each."""

from __future__ import annotations

import argparse
import sys

from nexus_cli import db_cmd, dev, keys_cmd, tracking_cmd
from nexus_cli.common import CLIError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nexus", description="Gateway and observability for Claude Code teams."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    dev.register(sub)
    keys_cmd.register(sub)
    db_cmd.register(sub)
    tracking_cmd.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except CLIError as exc:
        print(f"nexus: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
