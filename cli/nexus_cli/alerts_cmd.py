"""``nexus alerts``: per-team alert channels and thresholds, a test alert, and the alerts log.

Settings live in the secret store (the local stack's, or a deployed stage's with ``--stage``): the
document ``nexus/alerts`` and each team's Slack webhook as its own secret, read from stdin and never
printed again (``show`` gives its fingerprint). With ``--stage``, email addresses are subscribed to the
stage's alerts topic with a filter on the team (AWS sends each address a confirmation first).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import TYPE_CHECKING, Any

from nexus import env
from nexus.alert_events import AlertEvent
from nexus.alerts.config import KINDS, AlertSettings, TeamAlerts

from nexus_cli.common import CLIError, add_store_options, local_database, stage_outputs, store_for
from nexus_cli.keys_cmd import _print, _table

if TYPE_CHECKING:
    from nexus_cli.settings import CliSettings

TEST_KIND = "test"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], settings: CliSettings) -> None:
    alerts = sub.add_parser("alerts", help="alert channels (Slack, email) and thresholds per team; the log")
    sa = alerts.add_subparsers(dest="alerts_command", required=True, metavar="ACTION")

    st = sa.add_parser("set", help="change a team's alert settings (the others stay)")
    st.add_argument("team")
    st.add_argument(
        "--slack-webhook-stdin",
        action="store_true",
        help="read the team's Slack incoming-webhook URL from stdin (stored as a secret, never shown)",
    )
    st.add_argument("--no-slack", action="store_true", help="remove the team's Slack webhook")
    st.add_argument(
        "--email",
        action="append",
        metavar="ADDR",
        help="email address for the team's alerts (repeat for several; replaces the list)",
    )
    st.add_argument("--no-email", action="store_true", help="no email for this team")
    st.add_argument(
        "--rate-limit-threshold",
        type=float,
        metavar="SHARE",
        help="unified 5h/7d utilisation that raises an alert (0..1, default 0.9)",
    )
    st.add_argument(
        "--error-rate",
        type=float,
        metavar="SHARE",
        help="share of failed answers (5xx, 529, 429) that raises an alert (0..1, default 0.25)",
    )
    st.add_argument(
        "--error-rate-min-requests", type=int, metavar="N", help="fewest requests judged (default 20)"
    )
    st.add_argument(
        "--error-rate-window", type=int, metavar="MINUTES", help="window of the error rate (default 15)"
    )
    st.add_argument(
        "--off", nargs="+", choices=KINDS, metavar="KIND", help=f"turn kinds off: {', '.join(KINDS)}"
    )
    st.add_argument("--on", nargs="+", choices=KINDS, metavar="KIND", help="turn kinds back on")
    add_store_options(st, settings)
    st.set_defaults(func=_set)

    sh = sa.add_parser("show", help="a team's alert settings (the webhook only as a fingerprint)")
    sh.add_argument("team", nargs="?", help="one team (default: every configured team)")
    sh.add_argument("--json", action="store_true")
    add_store_options(sh, settings)
    sh.set_defaults(func=_show)

    te = sa.add_parser("test", help="send a test alert to the team's channels")
    te.add_argument("team")
    add_store_options(te, settings)
    te.set_defaults(func=_test)

    lg = sa.add_parser("log", help="the alerts log, newest first")
    lg.add_argument("--team")
    lg.add_argument("--kind", choices=(*KINDS, TEST_KIND))
    lg.add_argument("--limit", type=int, default=50)
    lg.add_argument("--json", action="store_true")
    add_store_options(lg, settings)
    lg.set_defaults(func=_log)


# --- set and show ------------------------------------------------------------------------------------


def _changes(args: argparse.Namespace, current: TeamAlerts) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    if args.email is not None:
        changes["email"] = tuple(dict.fromkeys(e.strip() for e in args.email))
    if args.no_email:
        changes["email"] = ()
    if args.rate_limit_threshold is not None:
        changes["rate_limit_threshold"] = args.rate_limit_threshold
    if args.error_rate is not None:
        changes["error_rate_share"] = args.error_rate
    if args.error_rate_min_requests is not None:
        changes["error_rate_min_requests"] = args.error_rate_min_requests
    if args.error_rate_window is not None:
        changes["error_rate_window_s"] = args.error_rate_window * 60
    if args.off or args.on:
        off = [k for k in current.off if k not in (args.on or [])]
        changes["off"] = tuple(dict.fromkeys([*off, *(args.off or [])]))
    return changes


def _set(args: argparse.Namespace) -> int:
    if args.slack_webhook_stdin and args.no_slack:
        raise CLIError("--slack-webhook-stdin and --no-slack contradict each other")
    webhook = None
    if args.slack_webhook_stdin:
        webhook = sys.stdin.readline().strip()
        if not webhook:
            raise CLIError(
                'no webhook on stdin (e.g. printf %s "$URL" | nexus alerts set TEAM --slack-webhook-stdin)'
            )
    store = store_for(args)
    settings = AlertSettings(store)
    try:
        changes = _changes(args, settings.team(args.team))
        if changes:
            settings.update(args.team, **changes)
        if webhook is not None:
            settings.set_slack_webhook(args.team, webhook)
        if args.no_slack:
            settings.remove_slack_webhook(args.team)
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    conf = settings.team(args.team)
    if "email" in changes:
        _sync_email(args, settings)
    _print_team(args.team, conf)
    return 0


def _sync_email(args: argparse.Namespace, settings: AlertSettings) -> None:
    topic = _topic_arn(args, required=False)
    if topic is None:
        print(
            "email: stored; delivered through a stage's alerts topic (use --stage, or set "
            f"{env.ALERTS_TOPIC_ARN} for the local stack)",
            file=sys.stderr,
        )
        return
    from nexus_cli import alert_topic

    config = settings.config()
    wanted = alert_topic.email_targets({t: c.email for t, c in config.teams.items()})
    for addr, what in alert_topic.sync_email(_sns(), topic, wanted).items():
        print(f"email: {addr}: {what}", file=sys.stderr)


def _row(team: str, conf: TeamAlerts) -> dict[str, Any]:
    return {
        "team": team,
        "slack": conf.slack_fingerprint,
        "slack_set_at": conf.slack_set_at,
        "email": list(conf.email),
        "rate_limit_threshold": conf.rate_limit_threshold,
        "error_rate_share": conf.error_rate_share,
        "error_rate_min_requests": conf.error_rate_min_requests,
        "error_rate_window_s": conf.error_rate_window_s,
        "off": list(conf.off),
    }


def _print_team(team: str, conf: TeamAlerts) -> None:
    slack = f"webhook {conf.slack_fingerprint} (set {conf.slack_set_at})" if conf.slack else "none"
    print(f"team {team}")
    print(f"  slack        {slack}")
    print(f"  email        {', '.join(conf.email) or 'none'}")
    print(f"  rate limit   alert at {conf.rate_limit_threshold:.0%} of the unified 5h/7d limit, or rejected")
    print(
        f"  error rate   alert at {conf.error_rate_share:.0%} failed of at least "
        f"{conf.error_rate_min_requests} requests in {conf.error_rate_window_s // 60} minutes"
    )
    print(f"  kinds off    {', '.join(conf.off) or 'none'}")


def _show(args: argparse.Namespace) -> int:
    config = AlertSettings(store_for(args)).config()
    teams = [args.team] if args.team else sorted(config.teams)
    rows = [_row(t, config.for_team(t)) for t in teams]
    if args.json:
        print(json.dumps(rows if not args.team else rows[0], indent=2))
        return 0
    if not rows:
        print("no team has alert settings yet: nexus alerts set TEAM --slack-webhook-stdin ...")
        return 0
    if args.team:
        _print_team(args.team, config.for_team(args.team))
        return 0
    table = _table("TEAM", "SLACK", "EMAIL", "RATE LIMIT", "ERROR RATE", "OFF")
    for r in rows:
        table.add_row(
            r["team"],
            r["slack"] or "",
            ", ".join(r["email"]),
            f"{r['rate_limit_threshold']:.0%}",
            f"{r['error_rate_share']:.0%} of >= {r['error_rate_min_requests']}",
            ", ".join(r["off"]),
        )
    _print(table)
    return 0


# --- test ----------------------------------------------------------------------------------------------


def _test(args: argparse.Namespace) -> int:
    from nexus.alerts.channels import SlackChannel, TopicChannel
    from nexus.alerts.notifier import deliver

    settings = AlertSettings(store_for(args))
    conf = settings.team(args.team)
    event = AlertEvent(
        kind=TEST_KIND,
        level="info",
        team=args.team,
        subject=f"team:{args.team}",
        message=f"A test alert for team {args.team}, sent with nexus alerts test: this channel works.",
        dedup_key=f"{TEST_KIND}:{args.team}:{time.time_ns()}",
        facts={"sent_by": os.environ.get("USER") or "nexus alerts test"},
    )
    topic_arn = _topic_arn(args, required=False)
    topic = TopicChannel(_sns(), topic_arn, args.stage) if topic_arn else None
    if args.stage:
        # In AWS the notifier function posts to Slack: hand it the alert as ingest would.
        if topic is None:
            raise CLIError(f"stage {args.stage!r} has no alerts topic (is the stack deployed?)")
        out = deliver(event, conf, settings.slack_webhook, None, topic)
    else:
        out = deliver(event, conf, settings.slack_webhook, SlackChannel(), topic)
    for channel in out.delivered:
        where = {"slack": "Slack", "sns": "the alerts topic (email subscribers; Slack via the notifier)"}
        print(f"sent: {where.get(channel, channel)}")
    for channel, error in out.errors.items():
        print(f"failed: {channel}: {error}", file=sys.stderr)
    if not out.delivered and not out.errors:
        raise CLIError(f"team {args.team} has no channel: nexus alerts set {args.team} --slack-webhook-stdin")
    return 1 if out.errors else 0


# --- log -----------------------------------------------------------------------------------------------


def _log(args: argparse.Namespace) -> int:
    rows = _stage_log(args) if args.stage else _local_log(args)
    if args.json:
        print(json.dumps(rows, indent=2, default=str))
        return 0
    if not rows:
        print("no alerts yet")
        return 0
    table = _table("WHEN", "LEVEL", "KIND", "TEAM", "MESSAGE", "SENT TO", "ERRORS")
    for r in rows:
        table.columns[4].no_wrap = False
        repeats = f" (+{r['repeats']} repeats)" if r.get("repeats") else ""
        table.add_row(
            str(r["created_at"])[:19],
            r["level"],
            r["kind"],
            r["team"] or "(operators)",
            r["message"] + repeats,
            ", ".join(r["delivered"]) or "-",
            "; ".join(f"{k}: {v}" for k, v in (r["errors"] or {}).items()),
        )
    _print(table)
    return 0


def _local_log(args: argparse.Namespace) -> list[dict[str, Any]]:
    import psycopg
    from nexus.db import alerts

    with local_database(args) as url:
        try:
            with psycopg.connect(url) as conn:
                return alerts.recent(conn, args.team, args.kind, args.limit)
        except psycopg.errors.UndefinedTable:
            raise CLIError("the database has no alerts log yet (nexus db migrate)") from None


def _stage_log(args: argparse.Namespace) -> list[dict[str, Any]]:
    """A stage's database is in its VPC: the log comes through the dashboard's API."""
    from nexus_cli.stage_api import StageAPI

    query = {"team": args.team, "kind": args.kind, "limit": args.limit}
    body = StageAPI(args).ok("GET", "/api/alerts", query)
    if not isinstance(body, dict) or not isinstance(body.get("alerts"), list):
        raise CLIError(f"stage {args.stage!r}: /api/alerts answered without an alerts list")
    rows: list[dict[str, Any]] = body["alerts"]
    return rows


# --- AWS -----------------------------------------------------------------------------------------------


def _sns() -> Any:
    import boto3

    return boto3.client("sns")


def _topic_arn(args: argparse.Namespace, required: bool) -> str | None:
    if not args.stage:
        return os.environ.get(env.ALERTS_TOPIC_ARN) or None

    arn = stage_outputs(args.stage).get("AlertsTopic")
    if arn is None and required:
        raise CLIError(f"stage {args.stage!r} has no alerts topic (is the stack deployed?)")
    return arn
