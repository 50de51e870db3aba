"""``nexus budgets``: monthly (and daily) USD caps per team and per Nexus key (ADR 0017).

Caps live in the SecretStore next to keys and teams, so ``--stage`` manages a deployed stage with AWS
credentials only. ``list`` adds this month's and today's spend when a database is reachable (the local
stack's, or ``DATABASE_URL``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from nexus.budgets import (
    DEFAULT_WARN_AT,
    BudgetInputError,
    Budgets,
    BudgetStore,
    Kind,
    Spend,
    evaluate,
    iso,
)

from nexus_cli.common import CLIError, add_store_options, store_for
from nexus_cli.keys_cmd import _print, _table

if TYPE_CHECKING:
    from nexus_cli.settings import CliSettings


def _usd(text: str) -> float:
    value = text.strip().lstrip("$")
    try:
        return float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of US dollars: {text!r}") from None


def _share(text: str) -> float:
    try:
        return float(text.strip().rstrip("%")) / (100 if text.strip().endswith("%") else 1)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a share (e.g. 0.8 or 80%): {text!r}") from None


def _subject(p: argparse.ArgumentParser) -> None:
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--team", help="a team (nexus teams list)")
    who.add_argument("--key", metavar="KEY_ID", help="a Nexus key's id (nexus keys list)")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], settings: CliSettings) -> None:
    budgets = sub.add_parser("budgets", help="monthly and daily spending caps per team and per key")
    bs = budgets.add_subparsers(dest="budgets_command", required=True, metavar="ACTION")
    st = bs.add_parser(
        "set",
        help="set a cap: over it, the proxy refuses the team's (or key's) requests with 429 until the "
        "period resets (UTC month or day)",
    )
    _subject(st)
    st.add_argument("--monthly-usd", type=_usd, required=True, metavar="USD", help="cap per UTC month")
    st.add_argument("--daily-usd", type=_usd, metavar="USD", help="optional cap per UTC day")
    st.add_argument(
        "--warn-at",
        type=_share,
        metavar="SHARE",
        help=f"alert when spend reaches this share of a cap [default {DEFAULT_WARN_AT}]",
    )
    add_store_options(st, settings)
    st.set_defaults(func=_set)
    cl = bs.add_parser("clear", help="remove a team's or key's cap (its requests are no longer refused)")
    _subject(cl)
    add_store_options(cl, settings)
    cl.set_defaults(func=_clear)
    ls = bs.add_parser("list", help="caps, with this month's and today's spend when a database is reachable")
    ls.add_argument("--json", action="store_true")
    add_store_options(ls, settings)
    ls.set_defaults(func=_list)


def _who(args: argparse.Namespace) -> tuple[Kind, str]:
    return ("team", args.team) if args.team is not None else ("key", args.key)


def _set(args: argparse.Namespace) -> int:
    kind, name = _who(args)
    try:
        cap = BudgetStore(store_for(args)).set_cap(kind, name, args.monthly_usd, args.daily_usd, args.warn_at)
    except BudgetInputError as exc:
        raise CLIError(str(exc)) from None
    daily = f", ${cap.daily_usd:g} a day" if cap.daily_usd is not None else ""
    print(f"{kind} {name}: ${cap.monthly_usd:g} a month{daily}; warning at {cap.warn_at:.0%}")
    return 0


def _clear(args: argparse.Namespace) -> int:
    kind, name = _who(args)
    try:
        BudgetStore(store_for(args)).clear(kind, name)
    except BudgetInputError as exc:
        raise CLIError(str(exc)) from None
    print(f"{kind} {name}: no budget")
    return 0


@contextlib.contextmanager
def _database(args: argparse.Namespace) -> Iterator[str | None]:
    """A database URL to read spend from, or None: DATABASE_URL, else the local stack's embedded server
    while it runs. Never for a deployed stage (its database is not reachable from here)."""
    if getattr(args, "stage", None):
        yield None
        return
    url: str | None = args.settings.database_url
    if url:
        yield url
        return
    pidfile = args.data_dir / "pg" / "postmaster.pid"
    if not pidfile.exists():
        yield None
        return
    from nexus.db.embedded import start_embedded

    server = start_embedded(args.data_dir / "pg")
    try:
        yield str(server.get_uri())
    finally:
        server.cleanup()


def _spend(args: argparse.Namespace, budgets: Budgets, now: datetime) -> Spend | None:
    if not budgets:
        return None
    import psycopg
    from nexus.db.budgets import spend

    with _database(args) as url:
        if url is None:
            return None
        try:
            with psycopg.connect(url, connect_timeout=5) as conn:
                return spend(conn, budgets, now)
        except psycopg.Error:
            return None


def _list(args: argparse.Namespace) -> int:
    store = BudgetStore(store_for(args))
    budgets = store.load()
    now = datetime.now(UTC)
    spent = _spend(args, budgets, now)
    refused = {(o.kind, o.name, o.period) for o in store.overruns() if o.resets_at > now}
    statuses = evaluate(budgets, spent or Spend({}, {}), now)
    rows: list[dict[str, Any]] = [
        {
            "kind": s.kind,
            "name": s.name,
            "team": s.team,
            "period": s.period,
            "period_id": s.period_id,
            "cap_usd": s.cap_usd,
            "warn_at": s.warn_at,
            "spend_usd": round(s.spend_usd, 6) if spent is not None else None,
            "state": s.state if spent is not None else None,
            "refused": (s.kind, s.name, s.period) in refused,
            "resets_at": iso(s.resets_at),
        }
        for s in statuses
    ]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print("no budgets yet: nexus budgets set --team T --monthly-usd X")
        return 0
    table = _table("SUBJECT", "PERIOD", "CAP", "WARN AT", "SPENT", "STATE", "RESETS")
    for r in rows:
        spend_text = (
            f"${r['spend_usd']:,.2f} ({r['spend_usd'] / r['cap_usd']:.0%})" if spent is not None else "?"
        )
        state = r["state"] or ""
        if r["refused"]:
            state = "over: refused"
        table.add_row(
            f"{r['kind']} {r['name']}",
            f"{r['period']} {r['period_id']}",
            f"${r['cap_usd']:,.2f}",
            f"{r['warn_at']:.0%}",
            spend_text,
            state,
            r["resets_at"],
        )
    _print(table)
    if spent is None:
        print("spend unknown here (no database reachable: run nexus dev, or set DATABASE_URL)")
    return 0
