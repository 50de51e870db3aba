"""``nexus users``: the dashboard's local accounts (ADR 0025), in DATABASE_URL or the local stack's
embedded database. Passwords are hashed with argon2id and never printed; removing a user or changing
their role ends their sessions; every change goes to the audit log as ``cli:<os user>``."""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

import psycopg
from nexus import accounts

from nexus_cli.common import CLIError, add_data_dir, cli_actor, local_database
from nexus_cli.keys_cmd import _print, _table

if TYPE_CHECKING:
    from nexus_cli.settings import CliSettings


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], settings: CliSettings) -> None:
    users = sub.add_parser("users", help="dashboard accounts: people with a role (admin, member, viewer)")
    us = users.add_subparsers(dest="users_command", required=True, metavar="ACTION")

    add = us.add_parser("add", help="add a user (asks for the password, or reads it from stdin)")
    add.add_argument("name")
    add.add_argument("--role", choices=accounts.ROLES, required=True)
    add.add_argument("--team", action="append", default=[], help="a team they may read (repeat for more)")
    add.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    add.set_defaults(func=_add)

    ls = us.add_parser("list", help="users, roles and teams")
    ls.set_defaults(func=_list)

    rm = us.add_parser("remove", help="remove a user and end their sessions")
    rm.add_argument("name")
    rm.set_defaults(func=_remove)

    sr = us.add_parser("set-role", help="change a user's role (and teams) and end their sessions")
    sr.add_argument("name")
    sr.add_argument("role", choices=accounts.ROLES)
    sr.add_argument("--team", action="append", default=None, help="replace their teams (repeat for more)")
    sr.set_defaults(func=_set_role)

    for p in (add, ls, rm, sr):
        add_data_dir(p, settings.data_dir)


def _password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass(f"password for {args.name}: ")
    if getpass.getpass("again: ") != first:
        raise CLIError("the passwords differ")
    return first


def _run(args: argparse.Namespace, work: Callable[[psycopg.Connection], int]) -> int:
    with local_database(args) as url:
        try:
            with psycopg.connect(url) as conn:
                return work(conn)
        except accounts.AccountError as exc:
            raise CLIError(str(exc)) from None
        except psycopg.errors.UndefinedTable:
            raise CLIError("the database has no users table yet: run nexus db migrate") from None
        except psycopg.OperationalError as exc:
            raise CLIError(f"cannot reach the database: {exc}") from None


def _add(args: argparse.Namespace) -> int:
    try:
        accounts.check(args.name, args.role, args.team)  # before asking for a password
    except accounts.AccountError as exc:
        raise CLIError(str(exc)) from None
    password = _password(args)

    def work(conn: psycopg.Connection) -> int:
        user = accounts.add(conn, cli_actor(), args.name, args.role, args.team, password)
        teams = ", ".join(user.teams) or "every team"
        print(f"added {user.name}: {user.role} ({teams})")
        return 0

    return _run(args, work)


def _list(args: argparse.Namespace) -> int:
    def work(conn: psycopg.Connection) -> int:
        table = _table("user", "role", "teams", "created", "changed")
        for u in accounts.listed(conn):
            table.add_row(
                u.name,
                u.role,
                ", ".join(u.teams) or "every team",
                u.created_at.isoformat(timespec="seconds"),
                u.updated_at.isoformat(timespec="seconds"),
            )
        _print(table)
        return 0

    return _run(args, work)


def _remove(args: argparse.Namespace) -> int:
    def work(conn: psycopg.Connection) -> int:
        ended = accounts.remove(conn, cli_actor(), args.name)
        print(f"removed {args.name}; {ended} session(s) ended")
        return 0

    return _run(args, work)


def _set_role(args: argparse.Namespace) -> int:
    def work(conn: psycopg.Connection) -> int:
        ended = accounts.set_role(conn, cli_actor(), args.name, args.role, args.team)
        print(f"{args.name} is now {args.role}; {ended} session(s) ended")
        return 0

    return _run(args, work)
