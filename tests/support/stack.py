"""Drive `nexus dev` as a real subprocess, the way a developer runs it."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from tests.support import secret_scan

REPO = Path(__file__).resolve().parents[2]
NEXUS = Path(sys.executable).with_name("nexus")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Stack:
    def __init__(
        self,
        data_dir: Path,
        upstream: str,
        database_url: str | None = None,
        keys: str = "optional",
        env: dict[str, str] | None = None,
        gateway: bool = False,
    ) -> None:
        self.data_dir = data_dir
        self.upstream = upstream
        self.database_url = database_url
        self.keys = keys
        self.extra_env = env or {}
        self.proxy_port = free_port()
        self.dashboard_port = free_port()
        self.gateway_port = free_port()
        self.gateway = gateway  # the gateway costs seconds of start-up: only for the tests that use it
        self.proc: subprocess.Popen | None = None
        self.dashboard_key = "nxd_test_" + os.urandom(8).hex()
        self.log_path = data_dir / "nexus-dev.log"
        secret_scan.register_data_dir(data_dir)  # scanned for client secrets after the suite
        self.log_start = 0  # where this start's lines begin in the log

    @property
    def proxy_url(self) -> str:
        return f"http://127.0.0.1:{self.proxy_port}"

    @property
    def dashboard_url(self) -> str:
        return f"http://127.0.0.1:{self.dashboard_port}"

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}/v1"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("NEXUS_", "ANTHROPIC_"))}
        env.pop("DATABASE_URL", None)
        env["NEXUS_DASHBOARD_KEY"] = self.dashboard_key
        if self.database_url:
            env["DATABASE_URL"] = self.database_url
        env.update(self.extra_env)
        return env

    def start(self, timeout: float = 60) -> Stack:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the child for its lifetime
        # A restart on the same data directory appends to the log: wait for this start's banner.
        self.log_start = log.tell()
        self.proc = subprocess.Popen(
            [
                str(NEXUS),
                "dev",
                "--upstream",
                self.upstream,
                "--data-dir",
                str(self.data_dir),
                "--proxy-port",
                str(self.proxy_port),
                "--dashboard-port",
                str(self.dashboard_port),
                "--gateway-port",
                str(self.gateway_port),
                *([] if self.gateway else ["--no-gateway"]),
                "--keys",
                self.keys,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=self.env(),
            cwd=REPO,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"nexus dev exited ({self.proc.returncode}):\n{self.log()}")
            if b"Nexus local stack is running" in self._log_bytes()[self.log_start :]:
                return self
            time.sleep(0.1)
        raise RuntimeError(f"nexus dev did not start in {timeout}s:\n{self.log()}")

    def log(self) -> str:
        return self._log_bytes().decode(errors="replace")

    def _log_bytes(self) -> bytes:
        try:
            return self.log_path.read_bytes()
        except FileNotFoundError:
            return b""

    def stop(self, timeout: float = 60) -> int:
        """Ctrl-C equivalent: SIGTERM and wait for the clean shutdown."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout)
        return self.proc.returncode

    def kill(self) -> None:
        """A crash: SIGKILL the whole process group at once (no clean-up runs)."""
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    # dashboard API
    def api(self, path: str, key: str | None = None) -> tuple[int, Any]:
        req = urllib.request.Request(self.dashboard_url + path)
        req.add_header("Authorization", f"Bearer {key or self.dashboard_key}")
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                return e.code, json.loads(raw or b"null")
            except ValueError:
                return e.code, raw.decode(errors="replace")

    @staticmethod
    def _requests_path(params: dict[str, Any]) -> str:
        return "/api/requests?" + "&".join(f"{k}={v}" for k, v in {"limit": 1000, **params}.items())

    def requests(self, **params: Any) -> list[dict[str, Any]]:
        status, body = self.api(self._requests_path(params))
        assert status == 200, body
        return body["requests"]

    def wait_for(
        self, predicate: Callable[[list[dict[str, Any]]], bool], timeout: float = 20, **params: Any
    ) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        rows: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            status, body = self.api(self._requests_path(params))
            if status == 200:
                rows = body["requests"]
                if predicate(rows):
                    return rows
            elif status < 500:
                raise AssertionError(f"/api/requests answered {status}: {body}")
            time.sleep(0.1)  # records still on their way, or the dashboard waiting for its database
        raise AssertionError(f"records did not arrive in {timeout}s; have {len(rows)}: {rows[:3]}")

    def wait_count(self, n: int, timeout: float = 20, **params: Any) -> list[dict[str, Any]]:
        return self.wait_for(lambda rows: len(rows) >= n, timeout, **params)

    def nexus(self, *args: str, input: str | None = None) -> subprocess.CompletedProcess:
        """The `nexus` CLI on this stack's data directory. The credentials it is given on stdin
        (``teams set-api-key``, ``teams set-oauth``) and the keys it prints are registered for the
        secrets scan."""
        if input and args[:1] == ("teams",):
            _register_credential(input)
        done = subprocess.run(
            [str(NEXUS), *args, "--data-dir", str(self.data_dir)],
            input=input,
            capture_output=True,
            text=True,
            env=self.env(),
            timeout=60,
        )
        secret_scan.register_output(done.stdout)
        return done


def _register_credential(given: str) -> None:
    """An API key, or an OAuth credential's JSON (its two tokens)."""
    try:
        doc = json.loads(given)
    except ValueError:
        doc = None
    if isinstance(doc, dict):
        for name in ("access_token", "refresh_token"):
            if isinstance(doc.get(name), str):
                secret_scan.register(doc[name])
    else:
        secret_scan.register(given)


@contextlib.contextmanager
def running_stack(pg_server, upstream, data_dir: Path, **kw: Any) -> Iterator[Stack]:
    """`nexus dev` on a fresh database of ``pg_server`` against ``upstream``; stopped afterwards.
    ``kw``: Stack options (keys, env); ``before_start(stack)`` runs first (e.g. to create keys)."""
    from tests.support import pg

    before = kw.pop("before_start", None)
    s = Stack(data_dir, upstream.url, pg.create_database(pg_server.get_uri()), **kw)
    if before:
        before(s)
    s.start()
    try:
        yield s
    finally:
        s.stop()
