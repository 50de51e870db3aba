"""``nexus keys`` and ``nexus teams``: client keys, per-team upstream access, and the gateway's
memory per team and key."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from nexus.access import MEMORY_MODES, MODES, AccessStore, UnknownKey

from nexus_cli.common import CLIError, add_store_options, store_for

if TYPE_CHECKING:
    from nexus_cli.settings import CliSettings


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], settings: CliSettings) -> None:
    keys = sub.add_parser("keys", help="create, list and revoke Nexus client keys")
    ks = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    create = ks.add_parser("create", help="create a key (printed once; only its hash is stored)")
    create.add_argument("--team", required=True)
    create.add_argument("--user", required=True)
    create.add_argument("--name", help="a label for the key")
    add_store_options(create, settings)
    create.set_defaults(func=_create)
    lst = ks.add_parser("list", help="list keys (never their secrets)")
    lst.add_argument("--json", action="store_true")
    add_store_options(lst, settings)
    lst.set_defaults(func=_list)
    rev = ks.add_parser("revoke", help="revoke a key by id")
    rev.add_argument("key_id")
    add_store_options(rev, settings)
    rev.set_defaults(func=_revoke)
    kmem = ks.add_parser(
        "set-memory",
        help="the gateway's memory for one key: off, on, per-request, or team (follow the team's setting)",
    )
    kmem.add_argument("key_id")
    kmem.add_argument("mode", choices=[*MEMORY_MODES, "team"])
    add_store_options(kmem, settings)
    kmem.set_defaults(func=_set_key_memory)

    teams = sub.add_parser("teams", help="per-team upstream access mode and API key")
    ts = teams.add_subparsers(dest="teams_command", required=True, metavar="ACTION")
    mode = ts.add_parser(
        "set-mode",
        help="passthrough: members use their own Anthropic credentials; "
        "team-key: the proxy sends the team's API key",
    )
    mode.add_argument("team")
    mode.add_argument("mode", choices=MODES)
    add_store_options(mode, settings)
    mode.set_defaults(func=_set_mode)
    setkey = ts.add_parser("set-api-key", help="store the team's Anthropic API key, read from stdin")
    setkey.add_argument("team")
    add_store_options(setkey, settings)
    setkey.set_defaults(func=_set_api_key)
    oauth = ts.add_parser(
        "set-oauth",
        help="store the team's Claude subscription (OAuth) credential, read from stdin as JSON "
        '{"access_token", "refresh_token", "expires_at"}; the team switches to team-key with it',
    )
    oauth.add_argument("team")
    add_store_options(oauth, settings)
    oauth.set_defaults(func=_set_oauth)
    cap = ts.add_parser("set-request-cap", help="the most one gateway request of the team may spend (USD)")
    cap.add_argument("team")
    cap.add_argument("usd", help="US dollars, or 'default' for the gateway's own setting")
    add_store_options(cap, settings)
    cap.set_defaults(func=_set_request_cap)
    mem = ts.add_parser(
        "set-memory",
        help="the gateway's memory for the team's keys (off, on, per-request) and whether members "
        "recall each other's turns (--sharing)",
    )
    mem.add_argument("team")
    mem.add_argument("mode", nargs="?", choices=MEMORY_MODES, help="leave out to change only --sharing")
    mem.add_argument("--sharing", choices=("on", "off"), help="members recall each other's turns")
    mem.add_argument(
        "--keep-days",
        type=_keep_days,
        metavar="DAYS|forever",
        help="how long a remembered turn is kept: older ones are deleted and never recalled",
    )
    add_store_options(mem, settings)
    mem.set_defaults(func=_set_team_memory)
    tl = ts.add_parser("list", help="list teams and their modes")
    add_store_options(tl, settings)
    tl.set_defaults(func=_teams_list)


def _create(args: argparse.Namespace) -> int:
    key, rec = AccessStore(store_for(args)).create_key(args.team, args.user, args.name)
    print(key)
    print(
        f"key id {rec.id} for {rec.user} in team {rec.team}; store it now, it is not shown again",
        file=sys.stderr,
    )
    return 0


def _list(args: argparse.Namespace) -> int:
    keys = AccessStore(store_for(args)).keys()
    rows = [
        {
            "id": k.id,
            "team": k.team,
            "user": k.user,
            "name": k.name,
            "created_at": k.created_at,
            "revoked_at": k.revoked_at,
            "memory": k.memory,
        }
        for k in sorted(keys.values(), key=lambda k: k.created_at)
    ]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print("no keys yet: nexus keys create --team T --user U")
        return 0
    table = _table("ID", "TEAM", "USER", "NAME", "CREATED", "STATUS", "MEMORY")
    for r in rows:
        status = f"revoked {r['revoked_at']}" if r["revoked_at"] else "active"
        memory = r["memory"] or "team's"
        table.add_row(r["id"], r["team"], r["user"], r["name"] or "", r["created_at"], status, memory)
    _print(table)
    return 0


def _revoke(args: argparse.Namespace) -> int:
    try:
        rec = AccessStore(store_for(args)).revoke_key(args.key_id)
    except UnknownKey as exc:
        raise CLIError(f"{exc} (see: nexus keys list)") from None
    print(f"revoked {rec.id} ({rec.user} in team {rec.team})")
    return 0


def _set_mode(args: argparse.Namespace) -> int:
    AccessStore(store_for(args)).set_team(args.team, args.mode)
    print(f"team {args.team}: {args.mode}")
    return 0


def _set_key_memory(args: argparse.Namespace) -> int:
    try:
        rec = AccessStore(store_for(args)).set_key_memory(
            args.key_id, None if args.mode == "team" else args.mode
        )
    except UnknownKey as exc:
        raise CLIError(f"{exc} (see: nexus keys list)") from None
    print(f"key {rec.id} ({rec.user} in team {rec.team}): memory {rec.memory or 'as the team'}")
    return 0


def _keep_days(text: str) -> int:
    """--keep-days: a whole number of days (1-36500), or 'forever' (0)."""
    if text.strip().lower() == "forever":
        return 0
    try:
        days = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of days (or 'forever')") from None
    if not 1 <= days <= 36_500:
        raise argparse.ArgumentTypeError(f"{days} days: give 1 to 36500, or 'forever'")
    return days


def _set_team_memory(args: argparse.Namespace) -> int:
    if args.mode is None and args.sharing is None and args.keep_days is None:
        raise CLIError(
            "say what to set: a mode (off, on, per-request), --sharing on|off, --keep-days, or several"
        )
    sharing = None if args.sharing is None else args.sharing == "on"
    conf = AccessStore(store_for(args)).set_team_memory(args.team, args.mode, sharing, args.keep_days)
    print(f"team {args.team}: memory {_memory(conf)}")
    return 0


def _memory(conf: dict[str, Any]) -> str:
    mode = conf.get("memory") or "off"
    out = f"{mode}, shared" if mode != "off" and conf.get("memory_sharing") else mode
    days = conf.get("memory_keep_days")
    return f"{out}, kept {days} days" if days else out


def _set_api_key(args: argparse.Namespace) -> int:
    key = sys.stdin.readline().strip()
    if not key:
        raise CLIError('no API key on stdin (e.g. printf %s "$KEY" | nexus teams set-api-key TEAM)')
    AccessStore(store_for(args)).set_team_api_key(args.team, key)
    print(f"team {args.team}: upstream API key stored")
    return 0


def _set_oauth(args: argparse.Namespace) -> int:
    from nexus.oauth import CredentialError, OAuthCredential, set_team_oauth

    raw = sys.stdin.read().strip()
    if not raw:
        raise CLIError(
            "no credential on stdin: pipe the JSON document "
            '{"access_token": ..., "refresh_token": ..., "expires_at": EPOCH_SECONDS}'
        )
    try:
        cred = OAuthCredential.parse(raw)
    except CredentialError as exc:
        raise CLIError(f"credential: {exc}") from None
    set_team_oauth(store_for(args), args.team, cred)
    shown = cred.public()
    print(f"team {args.team}: OAuth credential {shown['access_token']} stored, expires {shown['expires_at']}")
    return 0


def _set_request_cap(args: argparse.Namespace) -> int:
    try:
        usd = None if args.usd == "default" else float(args.usd)
        AccessStore(store_for(args)).set_team_request_cap(args.team, usd)
    except ValueError as exc:
        raise CLIError(
            f"request cap: {exc}" if "dollars" in str(exc) else f"not a number of dollars: {args.usd!r}"
        ) from None
    print(f"team {args.team}: gateway request cap {'the default' if usd is None else f'${usd:g}'}")
    return 0


def _teams_list(args: argparse.Namespace) -> int:
    from nexus.oauth import CredentialError, load

    store = store_for(args)
    teams = AccessStore(store).teams()
    if not teams:
        print("no teams yet: nexus keys create --team T --user U (or nexus teams set-mode T MODE)")
        return 0
    table = _table("TEAM", "MODE", "CREDENTIAL", "REQUEST CAP", "MEMORY")
    for team, conf in sorted(teams.items()):
        cap = conf.get("gateway_request_cap_usd")
        if conf.get("credential") == "oauth":
            try:
                cred = load(store, team)
                shown = cred.public() if cred else {"status": "missing"}
                credential = f"oauth {shown['status']}, expires {shown.get('expires_at')}"
            except CredentialError as exc:
                credential = f"oauth unreadable: {exc}"
        else:
            set_at = conf.get("api_key_set_at")
            credential = f"api key set {set_at}" if set_at else ""
        table.add_row(team, conf.get("mode", ""), credential, f"${cap:g}" if cap else "", _memory(conf))
    _print(table)
    return 0


def _table(*columns: str) -> Any:  # a rich Table (rich is imported only when a table is drawn)
    from rich.table import Table

    table = Table(box=None, pad_edge=False, header_style="bold")
    for c in columns:
        table.add_column(c, no_wrap=True)
    return table


def _print(table: Any) -> None:
    from rich.console import Console

    Console(width=200).print(table)
