"""``nexus analyze CONVERSATION_ID`` (run the analysis pipeline on one conversation: locally in this
process through the local proxy; with ``--stage`` on the stage's Step Functions pipeline, queued
through its dashboard) and ``nexus analysis setup|auto`` (the analysis identity and the per-team
automatic trigger, in the analysis settings document)."""

from __future__ import annotations

import argparse
import json
import time
from typing import TYPE_CHECKING, Any

from nexus_cli.common import CLIError, add_store_options, local_database, store_for

if TYPE_CHECKING:
    from nexus_cli.settings import CliSettings


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], settings: CliSettings) -> None:
    an = sub.add_parser("analyze", help="analyse one conversation with the model (through the local proxy)")
    an.add_argument("conversation_id")
    an.add_argument(
        "--proxy-url",
        default=f"http://127.0.0.1:{settings.proxy_port}",
        help="the Nexus proxy the model calls go through [default: the local stack's]",
    )
    an.add_argument("--timeout", type=float, default=600, help="seconds to wait for a run in flight")
    add_store_options(an, settings)
    an.set_defaults(func=_analyze)

    cfg = sub.add_parser("analysis", help="configure AI analysis of conversations")
    cs = cfg.add_subparsers(dest="analysis_command", required=True, metavar="ACTION")
    setup = cs.add_parser(
        "setup", help="the analysis identity: a new Nexus key (user 'analysis') of a team-key TEAM"
    )
    setup.add_argument("--team", required=True)
    setup.add_argument("--model", help="model id (default claude-sonnet-5)")
    setup.add_argument(
        "--provider", choices=("anthropic", "bedrock"), help="anthropic (via the proxy) or bedrock"
    )
    setup.add_argument("--bedrock-region")
    setup.add_argument("--budget-tokens", type=int, help="condensed transcript per model call")
    add_store_options(setup, settings)
    setup.set_defaults(func=_setup)
    auto = cs.add_parser("auto", help="analyse a team's idle conversations automatically (opt-in per team)")
    auto.add_argument("--team", required=True)
    auto.add_argument("--idle-minutes", type=int, default=30)
    auto.add_argument("--daily-cap", type=int, default=20, help="at most this many a day for the team")
    auto.add_argument("--off", action="store_true", help="stop automatic analysis for the team")
    add_store_options(auto, settings)
    auto.set_defaults(func=_auto)
    show = cs.add_parser("show", help="print the analysis settings (never the key)")
    add_store_options(show, settings)
    show.set_defaults(func=_show)


def _setup(args: argparse.Namespace) -> int:
    from nexus.access import AccessStore
    from nexus.analysis import settings as s

    store = store_for(args)
    access = AccessStore(store)
    if access.teams().get(args.team, {}).get("mode") != "team-key":
        raise CLIError(
            f"team {args.team!r} is not in team-key mode: analysis calls use the team's credential "
            f"(nexus teams set-mode {args.team} team-key, then set its API key or OAuth credential)"
        )
    key, rec = access.create_key(args.team, s.ANALYSIS_USER, name="analysis pipeline")
    conf = s.load(store)
    changes: dict[str, Any] = {"team": args.team, "key": key}
    for field in ("model", "provider", "bedrock_region", "budget_tokens"):
        if getattr(args, field) is not None:
            changes[field] = getattr(args, field)
    s.save(store, s.AnalysisSettings.model_validate({**conf.model_dump(), **changes}))
    print(f"analysis calls now go through the proxy as team {args.team}, user analysis (key id {rec.id})")
    return 0


def _auto(args: argparse.Namespace) -> int:
    from nexus.analysis import settings as s

    store = store_for(args)
    conf = s.load(store)
    auto = dict(conf.auto)
    if args.off:
        auto.pop(args.team, None)
    else:
        auto[args.team] = s.AutoPolicy(idle_minutes=args.idle_minutes, daily_cap=args.daily_cap)
    s.save(store, conf.model_copy(update={"auto": auto}))
    print(json.dumps({t: p.model_dump() for t, p in auto.items()}))
    return 0


def _show(args: argparse.Namespace) -> int:
    from nexus.analysis import settings as s

    conf = s.load(store_for(args))
    print(json.dumps({**conf.model_dump(mode="json"), "key": "(set)" if conf.key else None}, indent=1))
    return 0


def _analyze(args: argparse.Namespace) -> int:
    if args.stage:
        return _analyze_on_stage(args)
    import psycopg
    from nexus.analysis import store
    from nexus.db.migrate import migrate
    from nexus_analysis import runner

    from nexus_cli.common import local_store

    with local_database(args) as url:
        migrate(url)
        ctx = runner.local_context(url, local_store(args.data_dir), args.proxy_url)
        with psycopg.connect(url, autocommit=True) as conn:
            queued = store.enqueue(conn, args.conversation_id, "cli")
            if queued is None:
                raise CLIError(f"no conversation {args.conversation_id}")
            claimed = conn.execute(
                "UPDATE analyses SET status = 'running', started_at = now()"
                " WHERE id = %s AND status = 'queued' RETURNING id",
                (queued.id,),
            ).fetchone()
        if claimed is not None:
            runner.run(ctx, queued.id)
        else:  # the local stack's runner has it: wait for the end
            deadline = time.monotonic() + args.timeout
            with psycopg.connect(url, autocommit=True) as conn:
                while time.monotonic() < deadline and _in_flight(conn, queued.id):
                    time.sleep(0.5)
        with psycopg.connect(url, autocommit=True) as conn:
            newest, done = store.latest(conn, args.conversation_id)
        if newest is None or newest["status"] == "failed":
            reason = newest["reason"] if newest else "no analysis stored"
            raise CLIError(f"analysis failed: {reason}")
        print(json.dumps(done["analysis"] if done else None, indent=1, default=str))
    return 0


def _analyze_on_stage(args: argparse.Namespace) -> int:
    """Queue the run through the stage's dashboard (which starts a Step Functions execution) and
    follow it there: the stage's database is in its VPC."""
    from urllib.parse import quote

    from nexus_cli.stage_api import StageAPI, error_message

    api = StageAPI(args)
    path = f"/api/conversations/{quote(args.conversation_id, safe='')}/analysis"
    status, body = api.call("POST", path)
    if status == 404:
        raise CLIError(f"no conversation {args.conversation_id} in stage {args.stage!r}")
    if status >= 400:
        raise CLIError(f"stage {args.stage!r}: the analysis was not queued: {status} {error_message(body)}")
    deadline = time.monotonic() + args.timeout
    while body.get("status") in ("queued", "running"):
        if time.monotonic() > deadline:
            raise CLIError(
                f"analysis {body.get('run_id')} still {body['status']} after {args.timeout:.0f} s "
                f"(it goes on in the stage; nexus analyze again, or see the conversation's page)"
            )
        time.sleep(1)
        body = api.ok("GET", path)
    if body.get("status") != "done":
        raise CLIError(f"analysis failed: {body.get('reason') or body.get('status')}")
    print(json.dumps(body["analysis"], indent=1, default=str))
    return 0


def _in_flight(conn: Any, analysis_id: str) -> bool:
    row = conn.execute("SELECT status FROM analyses WHERE id = %s", (analysis_id,)).fetchone()
    return row is not None and row[0] in ("queued", "running")
