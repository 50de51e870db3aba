"""The gateway's AWS shape, run here: the front (started by ``front.sh``, as the Lambda Web Adapter
starts it) in front of the router, in front of two workers started with the container's own command
(the Dockerfile's CMD). The only hop that differs from AWS is front -> router, which is HTTP here and
InvokeWithResponseStream there (``tests/unit/test_gateway_cloud.py`` covers that framing).

What a user of the gateway must see: a conversation stays on the worker holding it warm; when that
worker dies, the next turn lands on the other one and resumes from the session store with its
context; a stopping worker finishes its turn while new turns go elsewhere.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import openai
import pytest
from nexus_gateway.cloud import routing

from tests.gateway.conftest import _make_key
from tests.support.fake_upstream import text_reply
from tests.support.stack import Stack, free_port, running_stack

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


def _opening_key(cloud: Cloud, messages: list[dict]) -> str:
    body = json.dumps({"model": "sonnet", "messages": messages}).encode()
    return routing.route_key("POST", "/v1/chat/completions", {"authorization": f"Bearer {cloud.key}"}, body)


def _accepts(address: str) -> bool:
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


@pytest.fixture(scope="module")
def cloud(pg_server, fake_upstream, tmp_path_factory) -> Iterator[Cloud]:
    root = tmp_path_factory.mktemp("gwcloud")
    keys: list[str] = []
    with running_stack(
        pg_server, fake_upstream, root / "stack", before_start=lambda s: keys.append(_make_key(s))
    ) as stack:
        base = {k: v for k, v in os.environ.items() if not k.startswith(("NEXUS_", "ANTHROPIC_"))}
        base.pop("DATABASE_URL", None)
        workers = []
        for name in ("a", "b"):
            data_dir = root / f"worker-{name}"
            data_dir.mkdir()
            # A task's keys come from Secrets Manager; here, from a copy of the stack's secret store.
            shutil.copy(stack.data_dir / "secrets.json", data_dir / "secrets.json")
            port = free_port()
            env = {
                **base,
                "NEXUS_GATEWAY_HOST": "127.0.0.1",
                "NEXUS_GATEWAY_WORKER_PORT": str(port),
                "NEXUS_GATEWAY_PROXY_URL": stack.proxy_url,
                "NEXUS_GATEWAY_DATABASE_URL": stack.database_url or "",
                "NEXUS_GATEWAY_DATA_DIR": str(data_dir),
                "NEXUS_GATEWAY_WARM_SPARES": "0",
                # Tasks from one image share this path; a transcript's key in the store comes from it.
                "NEXUS_GATEWAY_WORKSPACE_ROOT": str(root / "workspaces"),
            }
            workers.append(Worker(name, port, data_dir, env, keys[0]))
        router_port, front_port = free_port(), free_port()
        procs: list[subprocess.Popen[bytes]] = []
        try:
            for w in workers:
                w.start()
            router_env = {**base, "NEXUS_GATEWAY_WORKERS": ",".join(w.address for w in workers)}
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
            yield Cloud(
                stack, keys[0], workers, f"http://127.0.0.1:{front_port}", f"http://127.0.0.1:{router_port}"
            )
        finally:
            for p in procs:
                os.killpg(p.pid, signal.SIGTERM)
                p.wait(10)
            for w in workers:
                w.stop()


@pytest.fixture
def both(cloud: Cloud) -> Cloud:
    """Both workers running (a test before may have killed or stopped one)."""
    for w in cloud.workers:
        if not w.alive:
            w.start()
    return cloud


def _turns(cloud: Cloud) -> dict[str, int]:
    return {w.name: w.stats()["turns"] for w in cloud.workers}


def test_a_responses_chain_stays_on_the_worker_holding_it(both: Cloud, upstream):
    client = both.client()
    before = _turns(both)
    first = client.responses.create(model="sonnet", input="Remember the colour teal.")
    key = routing.key_of_response(first.id)
    assert key is not None
    holder = both.holder(key)
    warm_before = holder.stats()["warm_hits"]
    second = client.responses.create(model="sonnet", input="Which colour?", previous_response_id=first.id)
    third = client.responses.create(model="sonnet", input="Again?", previous_response_id=second.id)
    assert routing.key_of_response(third.id) == key  # the chain keeps its route
    after = _turns(both)
    assert after[holder.name] - before[holder.name] == 3
    assert sum(after.values()) - sum(before.values()) == 3  # nothing went to the other worker
    assert holder.stats()["warm_hits"] - warm_before == 2  # and each follow-up found its session warm


def test_when_the_holder_dies_the_conversation_resumes_on_the_other_worker(both: Cloud, upstream):
    client = both.client()
    history = [
        {"role": "system", "content": "Remember things."},
        {"role": "user", "content": "The word is 'heron'."},
    ]
    first = client.chat.completions.create(model="sonnet", messages=history)
    history += [{"role": "assistant", "content": first.choices[0].message.content}]
    holder = both.holder(_opening_key(both, history))
    other = next(w for w in both.workers if w is not holder)
    assert holder.stats()["turns"] >= 1

    # The holder dies in the middle of the next turn: that turn fails, and only that one.
    history += [{"role": "user", "content": "What was the word?"}]
    upstream.enqueue(text_reply("thinking about it " * 20, delay_s=0.5))
    seen = len(upstream.messages_requests())
    failed: list[BaseException] = []

    def slow_turn() -> None:
        try:
            stream = client.chat.completions.create(model="sonnet", messages=history, stream=True)
            for _ in stream:
                pass
        except Exception as exc:  # what the client sees of the turn in flight
            failed.append(exc)
        else:
            failed.append(AssertionError("the turn in flight finished"))

    t = threading.Thread(target=slow_turn)
    t.start()
    deadline = time.monotonic() + 30
    while len(upstream.messages_requests()) == seen:
        assert time.monotonic() < deadline, "the turn never reached the upstream"
        time.sleep(0.05)
    holder.kill()
    t.join(30)
    assert failed and not isinstance(failed[0], AssertionError), failed

    resumes = other.stats()["resumes"]
    again = client.chat.completions.create(model="sonnet", messages=history)  # the client retries
    assert again.choices[0].message.content.endswith("What was the word?")
    assert other.stats()["resumes"] == resumes + 1
    body = upstream.messages_requests()[-1].json()
    assert "heron" in json.dumps(body["messages"])  # the context came back from the store


def test_a_stopping_worker_finishes_its_turn_while_new_turns_go_elsewhere(both: Cloud, upstream):
    client = both.client()
    messages = [{"role": "user", "content": "Tell me a long story."}]
    holder = both.holder(_opening_key(both, messages))
    other = next(w for w in both.workers if w is not holder)
    upstream.enqueue(text_reply("once upon a time " * 10, delay_s=0.4))
    seen = len(upstream.messages_requests())
    got: list[str] = []

    def long_turn() -> None:
        stream = client.chat.completions.create(model="sonnet", messages=messages, stream=True)
        got.append("".join(c.choices[0].delta.content or "" for c in stream if c.choices))

    t = threading.Thread(target=long_turn)
    t.start()
    deadline = time.monotonic() + 30
    while len(upstream.messages_requests()) == seen:
        assert time.monotonic() < deadline, "the turn never reached the upstream"
        time.sleep(0.05)
    assert holder.proc is not None
    holder.proc.send_signal(signal.SIGTERM)  # ECS stopping the task: its main process gets SIGTERM
    deadline = time.monotonic() + 10
    while _accepts(holder.address):  # within a tick of its event loop it stops listening
        assert time.monotonic() < deadline, "the stopping worker kept listening"
        time.sleep(0.02)

    # A new conversation whose first choice is the stopping worker goes to the other one.
    n = 0
    while True:
        fresh = [{"role": "user", "content": f"A new question, number {n}."}]
        if both.holder(_opening_key(both, fresh)) is holder:
            break
        n += 1
    before = other.stats()["turns"]
    reply = client.chat.completions.create(model="sonnet", messages=fresh)
    assert reply.choices[0].message.content.endswith(f"number {n}.")
    assert other.stats()["turns"] == before + 1

    t.join(60)
    assert got == ["once upon a time " * 10]  # the turn in flight finished, whole
    # ...and the worker left on its own once it had (uvicorn exits with the signal it was stopped by).
    assert holder.proc.wait(30) in (0, -signal.SIGTERM)
