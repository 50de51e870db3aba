"""``nexus records replay-log --stage S [FILE ...]``: records the proxy could neither queue nor keep
in S3 survive only in its log lines (``record not sent: ... unsent_record=<base64>``). This finds them
in exported log lines (a CloudWatch Logs export, ``aws logs filter-log-events`` output, Logs Insights
results: any text) and puts each back under the stage bucket's ``records/unsent/``, where ingest's
scheduled replay stores it. Ingest is idempotent by record id, so replaying a record twice is safe."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from nexus_cli.common import CLIError, stage_output

if TYPE_CHECKING:
    from nexus_cli.settings import CliSettings


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], settings: CliSettings) -> None:
    p = sub.add_parser("records", help="records the proxy could not queue (AWS)")
    rs = p.add_subparsers(dest="records_command", required=True, metavar="ACTION")
    replay = rs.add_parser(
        "replay-log",
        help="put records found in the proxy's 'record not sent' log lines back for ingest",
    )
    replay.add_argument("files", nargs="*", help="files of log lines [default: standard input]")
    replay.add_argument(
        "--stage", default=settings.stage, required=settings.stage is None, help="the stage [NEXUS_STAGE]"
    )
    replay.add_argument("--dry-run", action="store_true", help="list the records found, put nothing")
    replay.set_defaults(func=_replay_log)


def _lines(files: list[str]) -> list[str]:
    if not files:
        return sys.stdin.read().splitlines()
    out: list[str] = []
    for name in files:
        try:
            with open(name, encoding="utf-8", errors="replace") as f:
                out += f.read().splitlines()
        except OSError as exc:
            raise CLIError(f"cannot read {name}: {exc.strerror}") from None
    return out


def _replay_log(args: argparse.Namespace) -> int:
    from nexus.record import RecordDecodeError
    from nexus.sqs_queue import UNSENT_PREFIX, records_in_log

    try:
        records = records_in_log(_lines(args.files))
    except RecordDecodeError as exc:
        raise CLIError(f"{exc} (was the line cut? CloudWatch keeps 256 KB of a log event)") from None
    if not records:
        raise CLIError("no unsent records in the input (look for 'record not sent' in the proxy's logs)")
    from datetime import UTC, datetime

    for r in records:
        when = datetime.fromtimestamp(r.received_at, UTC).isoformat(timespec="seconds")
        print(f"{r.id}  {when}  {r.method} {r.path}")
    if args.dry_run:
        return 0
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    bucket = stage_output(args.stage, "RecordBucket")
    s3 = boto3.client("s3")
    try:
        for r in records:
            s3.put_object(Bucket=bucket, Key=UNSENT_PREFIX + r.id, Body=r.encode())
    except (BotoCoreError, ClientError) as exc:
        raise CLIError(f"cannot write to s3://{bucket}/{UNSENT_PREFIX}: {exc}") from None
    print(
        f"{len(records)} records put back in s3://{bucket}/{UNSENT_PREFIX}; ingest stores them within minutes"
    )
    return 0
