"""The gateway's AWS shape as local processes: workers started with the container's own command
(the Dockerfile's CMD), the router, and the front started by ``front.sh`` as the Lambda Web Adapter
starts it. Front -> router is HTTP here (InvokeWithResponseStream in AWS). Used by the cloud-shape
tests and ``bench/gateway_relay.py``."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import openai
from nexus_gateway.cloud import routing

from tests.support.stack import Stack, free_port

ROOT = Path(__file__).resolve().parents[2]
GATEWAY_DIR = ROOT / "functions" / "gateway"


def container_command() -> list[str]:
    """The Dockerfile's CMD (exec form), run with this interpreter."""
    lines = [ln for ln in (GATEWAY_DIR / "Dockerfile").read_text().splitlines() if ln.startswith("CMD ")]
    assert len(lines) == 1, "the Dockerfile has one CMD, in exec form"
    argv = json.loads(lines[0][4:])
    assert argv[0] in ("python", "python3")
    return [sys.executable, *argv[1:]]


def _wait_ready(url: str, proc: subprocess.Popen[bytes], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        assert proc.poll() is None, f"{what} exited ({proc.returncode})"
        assert time.monotonic() < deadline, f"{what} did not become ready"
        time.sleep(0.1)


@dataclass
class Worker:
    name: str
    port: int
    data_dir: Path
    env: dict[str, str]
    key: str
    proc: subprocess.Popen[bytes] | None = None
    log: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log = self.data_dir / "worker.log"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> Worker:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                container_command(),
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: killing it takes its Claude Code processes
            )
        _wait_ready(f"http://{self.address}/ready", self.proc, f"worker {self.name}")
        return self

    def stats(self) -> dict:
        req = urllib.request.Request(f"http://{self.address}/stats")
        req.add_header("authorization", f"Bearer {self.key}")
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read())

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """As a task dies: the whole container at once."""
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.alive:
            assert self.proc is not None
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)


@dataclass
class Cloud:
    stack: Stack
    key: str
    workers: list[Worker]
    front_url: str
    router_url: str

    def client(self) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.front_url + "/v1", api_key=self.key, max_retries=0)

    def by_address(self) -> dict[str, Worker]:
        return {w.address: w for w in self.workers}

    def holder(self, key: str) -> Worker:
        """The worker rendezvous hashing sends this route key to first."""
        return self.by_address()[routing.rank(key, [w.address for w in self.workers])[0]]


def accepts(address: str) -> bool:
    host, port = address.split(":")
    try:
        socket.create_connection((host, int(port)), timeout=1).close()
        return True
    except OSError:
        return False


def _process(
    cmd: list[str], env: dict[str, str], log: Path, cwd: Path | None = None
) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen(
            cmd, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=cwd, start_new_session=True
        )


def opening_key(cloud: Cloud, messages: list[dict]) -> str:
    """The route key of a chat conversation opening with ``messages``, as the router computes it."""
    body = json.dumps({"model": "sonnet", "messages": messages}).encode()
    return routing.route_key("POST", "/v1/chat/completions", {"authorization": f"Bearer {cloud.key}"}, body)


@contextlib.contextmanager
def running_cloud(
    stack: Stack, key: str, root: Path, workers: int = 2, env: dict[str, str] | None = None
) -> Iterator[Cloud]:
    """``workers`` workers, the router and the front, in front of ``stack``'s proxy and database."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("NEXUS_", "ANTHROPIC_"))}
    base.pop("DATABASE_URL", None)
    started = []
    for name in "abcdefgh"[:workers]:
        data_dir = root / f"worker-{name}"
        data_dir.mkdir(parents=True)
        # A task's keys come from Secrets Manager; here, from a copy of the stack's secret store.
        if (stack.data_dir / "secrets.json").exists():
            shutil.copy(stack.data_dir / "secrets.json", data_dir / "secrets.json")
        port = free_port()
        worker_env = {
            **base,
            "NEXUS_GATEWAY_HOST": "127.0.0.1",
            "NEXUS_GATEWAY_WORKER_PORT": str(port),
            "NEXUS_GATEWAY_PROXY_URL": stack.proxy_url,
            "NEXUS_GATEWAY_DATABASE_URL": stack.database_url or "",
            "NEXUS_GATEWAY_DATA_DIR": str(data_dir),
            # Tasks from one image share this path; a transcript's key in the store comes from it.
            "NEXUS_GATEWAY_WORKSPACE_ROOT": str(root / "workspaces"),
            **(env or {}),
        }
        started.append(Worker(name, port, data_dir, worker_env, key))
    router_port, front_port = free_port(), free_port()
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for w in started:
            w.start()
        router_env = {**base, "NEXUS_GATEWAY_WORKERS": ",".join(w.address for w in started)}
        router = _process(
            [sys.executable, "-m", "nexus_gateway.cloud.router", "--port", str(router_port)],
            router_env,
            root / "router.log",
        )
        procs.append(router)
        _wait_ready(f"http://127.0.0.1:{router_port}/health", router, "router")
        front_env = {
            **base,
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
            "LAMBDA_TASK_ROOT": str(GATEWAY_DIR),
            "AWS_LWA_PORT": str(front_port),
            "NEXUS_GATEWAY_ROUTER_URL": f"http://127.0.0.1:{router_port}",
        }
        front = _process(
            ["/bin/sh", str(GATEWAY_DIR / "front.sh")], front_env, root / "front.log", GATEWAY_DIR
        )
        procs.append(front)
        _wait_ready(f"http://127.0.0.1:{front_port}/health", front, "front")
        yield Cloud(stack, key, started, f"http://127.0.0.1:{front_port}", f"http://127.0.0.1:{router_port}")
    finally:
        for p in procs:
            os.killpg(p.pid, signal.SIGTERM)
            p.wait(10)
        for w in started:
            w.stop()
