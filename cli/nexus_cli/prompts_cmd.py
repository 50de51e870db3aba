"""``nexus prompts``: the prompt library (ADR 0023): sync it from Git, list it, show one prompt.

The library lives in the local stack's database (``DATABASE_URL``, or the embedded one under
``--data-dir``). ``nexus dev`` also syncs on a timer when ``NEXUS_PROMPTS_REPO`` is set; a deployed
stage syncs with its scheduled function (the stage config names the repository), which
``nexus prompts sync --stage`` invokes to sync now.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from nexus_cli.common import CLIError, add_data_dir, cli_actor, local_database, stage_outputs
from nexus_cli.keys_cmd import _print, _table

if TYPE_CHECKING:
    from nexus_cli.settings import CliSettings


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], settings: CliSettings) -> None:
    from nexus.prompts import sync

    pr = sub.add_parser("prompts", help="the team's prompt library (Git -> PostgreSQL -> MCP)")
    ps = pr.add_subparsers(dest="prompts_command", required=True, metavar="ACTION")

    sy = ps.add_parser("sync", help="sync the library from a Git repository (idempotent)")
    sy.add_argument(
        "--repo", help=f"repository URL or local path [{sync.REPO}]; a private HTTPS one takes {sync.TOKEN}"
    )
    sy.add_argument("--ref", help=f"branch, tag or commit [{sync.REF}, HEAD]")
    sy.add_argument("--path", help=f"folder of the prompts [{sync.PATH}, the root]")
    sy.add_argument(
        "--stage",
        default=settings.stage,
        help="sync a deployed stage now, from the repository of its config: invokes the stage's sync "
        "function with your AWS credentials [NEXUS_STAGE]",
    )
    sy.add_argument("--json", action="store_true")
    add_data_dir(sy, settings.data_dir)
    sy.set_defaults(func=_sync)

    ls = ps.add_parser("list", help="the prompts in the library, with their version and use")
    ls.add_argument("--search", help="only prompts whose name, description or text contains this")
    ls.add_argument("--all", action="store_true", help="include removed prompts")
    ls.add_argument("--json", action="store_true")
    add_data_dir(ls, settings.data_dir)
    ls.set_defaults(func=_list)

    sh = ps.add_parser("show", help="one prompt: its template, arguments and versions")
    sh.add_argument("name")
    sh.add_argument("--version", type=int, help="this version (default: the current one)")
    sh.add_argument("--json", action="store_true")
    add_data_dir(sh, settings.data_dir)
    sh.set_defaults(func=_show)


@contextlib.contextmanager
def _database(args: argparse.Namespace) -> Iterator[str]:
    """The local stack's database (migrated), started if it is the embedded one and not running."""
    from nexus.db.migrate import migrate

    with local_database(args) as url:
        migrate(url)
        yield url


def _sync(args: argparse.Namespace) -> int:
    from nexus.prompts import sync
    from nexus.prompts.source import SourceError

    if args.stage:
        if (args.repo, args.ref, args.path) != (None, None, None):
            raise CLIError(
                "--repo, --ref and --path are for the local stack: a stage syncs the repository of its "
                "config (prompts_repo, docs/deploy.md)"
            )
        return _sync_stage(args)
    # An option given wins over its variable, even empty (--path "" is the repository's root).
    repo, ref, path = (
        given if given is not None else os.environ.get(var)
        for given, var in ((args.repo, sync.REPO), (args.ref, sync.REF), (args.path, sync.PATH))
    )
    if not repo:
        raise CLIError("which repository? --repo URL (or NEXUS_PROMPTS_REPO)")
    source = sync.Source(repo, ref or None, path or "")
    with _database(args) as url:
        try:
            result = sync.sync(url, source, args.data_dir / "prompts-cache", actor=cli_actor())
        except SourceError as exc:
            raise CLIError(str(exc)) from None
    return _report(source.repo, result.summary(), args.json)


def _sync_stage(args: argparse.Namespace) -> int:
    """Invoke the stage's sync function (the fetcher, ADR 0023) and wait for the applied result."""
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError
    from nexus.prompts.handoff import FETCH_TIMEOUT_S

    function = stage_outputs(args.stage).get("PromptSyncFunction")
    if not function:
        raise CLIError(
            f"stage {args.stage} has no prompt library sync: set prompts_repo in its config and deploy "
            "(docs/deploy.md)"
        )
    # One attempt, waiting as long as the function may run: a retried invoke would sync twice.
    config = Config(read_timeout=FETCH_TIMEOUT_S + 30, retries={"total_max_attempts": 1, "mode": "standard"})
    try:
        response = boto3.client("lambda", config=config).invoke(
            FunctionName=function, Payload=json.dumps({"source": "nexus prompts sync"}).encode()
        )
    except (BotoCoreError, ClientError) as exc:
        raise CLIError(f"cannot invoke the sync function of stage {args.stage}: {exc}") from None
    answer = json.loads(response["Payload"].read() or b"null")
    if response.get("FunctionError"):
        error = answer.get("errorMessage") if isinstance(answer, dict) else answer
        raise CLIError(f"the sync of stage {args.stage} failed: {error} (the log of {function} has more)")
    if args.json:
        print(json.dumps(answer, indent=2))
        return 1 if answer.get("errors") else 0
    return _report(answer["repo"], answer, False)


def _report(repo: str, summary: dict[str, Any], as_json: bool) -> int:
    """A sync's result (``SyncResult.summary``); exit status 1 when files were skipped."""
    if as_json:
        print(json.dumps(summary, indent=2))
        return 1 if summary["errors"] else 0
    added, changed, removed = summary["added"], summary["changed"], summary["removed"]
    print(
        f"synced {repo} at {summary['commit'][:12]}: {len(added)} added, {len(changed)} changed, "
        f"{len(removed)} removed, {summary['unchanged']} unchanged"
    )
    for what, names in (("added", added), ("changed", changed), ("removed", removed)):
        for name in names:
            print(f"  {what:8} {name}")
    for path, error in summary["errors"].items():
        print(f"  skipped  {path}: {error}")
    return 1 if summary["errors"] else 0


def _list(args: argparse.Namespace) -> int:
    import psycopg
    from nexus.db import prompts as library

    with _database(args) as url, psycopg.connect(url) as conn:
        rows = library.library(conn, args.search, include_removed=args.all)
    if args.json:
        print(json.dumps(rows, indent=2, default=str))
        return 0
    if not rows:
        print(
            "the library is empty: nexus prompts sync --repo URL" if not args.search else "no prompt matches"
        )
        return 0
    table = _table("NAME", "VERSION", "ARGUMENTS", "USES", "DESCRIPTION")
    for r in rows:
        args_text = ", ".join(a["name"] + ("" if a.get("required", True) else "?") for a in r["arguments"])
        name = r["name"] + (" (removed)" if r["removed_at"] else "")
        table.add_row(name, str(r["version"]), args_text, str(r["uses"]), r["description"] or "")
    _print(table)
    return 0


def _show(args: argparse.Namespace) -> int:
    import psycopg
    from nexus.db import prompts as library

    with _database(args) as url, psycopg.connect(url) as conn:
        row = library.version(conn, args.name, args.version)
        history = library.versions(conn, args.name) if row else []
    if row is None:
        what = f"version {args.version} of " if args.version else ""
        raise CLIError(f"no {what}prompt {args.name!r} (nexus prompts list)")
    if args.json:
        print(json.dumps({**row, "versions": history}, indent=2, default=str))
        return 0
    _print_prompt(row, history)
    return 0


def _print_prompt(row: dict[str, Any], history: list[dict[str, Any]]) -> None:
    current = " (current)" if row["version"] == row["current_version"] else ""
    removed = f", removed {row['removed_at']:%Y-%m-%d}" if row["removed_at"] else ""
    print(f"{row['name']}  version {row['version']}{current}{removed}")
    print(f"  from       {row['path']} at {row['commit'][:12]}")
    if row["description"]:
        print(f"  about      {row['description']}")
    for a in row["arguments"]:
        need = "required" if a.get("required", True) else "optional"
        print(f"  argument   {a['name']} ({need}){': ' + a['description'] if a.get('description') else ''}")
    listed = ", ".join(f"{v['version']} ({v['commit'][:8]}, {v['uses']} uses)" for v in history)
    print(f"  versions   {listed}")
    print()
    print(row["body"])
