"""How long a new proxy process takes from exec to ready, and to its first proxied answer, locally and
on the AWS path.

A new Lambda sandbox pays this on its first request (plus what Lambda itself adds), so it is the
proxy's cold start. Each run starts the proxy the way ``functions/proxy/run.sh`` does
(``python -m nexus_proxy.serve``) and measures two things from exec:

- **ready**: ``GET /health`` answers 200 (what the Lambda Web Adapter's readiness check waits for);
- **first answer**: right after that, one streamed ``POST /v1/messages`` through the proxy to the fake
  upstream (``tests/support/fake_upstream.py``), read to the end of the response. On the AWS path the
  request carries a Nexus key, so the key check reads Secrets Manager, and the record is sent to SQS
  before the response ends (the proxy hands it off before its last message): work moved from the
  start into the first request shows up here, not as a win.

AWS is emulated by moto's server mode on 127.0.0.1 (``AWS_ENDPOINT_URL``), over plain HTTP: TLS (to
AWS and to the upstream) is not in these figures. Each run's record must arrive in the queue.
Baseline, measured in the same run: a bare interpreter (``python -c pass``).

    .venv/bin/python bench/cold_start.py            # 9 runs of each
    .venv/bin/python bench/cold_start.py --runs 3
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench.lib.procs import cpu_s, free_port
from bench.lib.report import verdict
from bench.lib.stats import pct
from tests.support.aws import emulated_aws

REPO = Path(__file__).resolve().parent.parent
TARGET_AWS_MS = 350.0
BODY = json.dumps(
    {
        "model": "claude-sonnet-4-5",
        "max_tokens": 64,
        "stream": True,
        "messages": [{"role": "user", "content": "hello"}],
    }
).encode()
HEADERS = {
    "content-type": "application/json",
    "anthropic-version": "2023-06-01",
    "x-api-key": "sk-ant-bench-not-a-real-key",
    "x-claude-code-session-id": "0193e0b1-0000-7000-8000-00000000c01d",
    "connection": "close",
}


@dataclass
class Run:
    ready_ms: float
    answer_ms: float
    ready_cpu_ms: float  # the proxy process's own CPU time at those two moments
    answer_cpu_ms: float


def _healthy(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2) as s:
            s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            return s.recv(16).startswith(b"HTTP/1.1 200")
    except OSError:
        return False


def _listening(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
        return True
    return False


def _first_answer(port: int, headers: dict[str, str]) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("POST", "/v1/messages", body=BODY, headers=headers)
        resp = conn.getresponse()
        body = resp.read()  # to the end of the response (the terminating chunk)
        if resp.status != 200 or b'"message_stop"' not in body:
            raise RuntimeError(f"the first request failed: {resp.status} {body[:500]!r}")
    finally:
        conn.close()


def cold_start(env: dict[str, str], headers: dict[str, str]) -> Run:
    """One new proxy process: exec to /health, then its first proxied answer."""
    port = free_port()
    began = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "nexus_proxy.serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        while not _healthy(port):
            if proc.poll() is not None:
                raise RuntimeError(
                    f"the proxy exited: {proc.stderr.read().decode()[-2000:] if proc.stderr else ''}"
                )
            if time.perf_counter() - began > 30:
                raise RuntimeError("the proxy did not answer within 30 s")
            time.sleep(0.002)
        ready, ready_cpu = (time.perf_counter() - began) * 1000, cpu_s(proc.pid) * 1000
        _first_answer(port, headers)
        return Run(ready, (time.perf_counter() - began) * 1000, ready_cpu, cpu_s(proc.pid) * 1000)
    finally:
        proc.terminate()
        proc.wait(10)


def bare_ms() -> tuple[float, float]:
    """Wall and CPU time of ``python -c pass``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    began = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    wall = (time.perf_counter() - began) * 1000
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime) * 1000


def top_imports(env: dict[str, str], n: int = 12) -> list[str]:
    """The heaviest imports of the AWS path's start (cumulative, from -X importtime)."""
    code = "from nexus_proxy import serve; serve.config(serve.parse([])).load()"
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code], env=env, cwd=REPO, capture_output=True, text=True
    )
    rows = []
    for line in done.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            _, cumulative, name = (part.strip() for part in line.removeprefix("import time:").split("|"))
            if cumulative.isdigit() and name.count(".") == 0 and not name.startswith(" "):
                rows.append((int(cumulative), name))
    rows.sort(reverse=True)
    return [f"    {name:<28} {us / 1000:7.1f} ms" for us, name in rows[:n]]


def _row(name: str, values: list[float], bare: float) -> str:
    p50, p95 = pct(values, 50), pct(values, 95)
    return f"  {name:<34} {p50:7.0f} ms  {p95:7.0f} ms   {p50 / bare:5.1f}x the bare interpreter"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=9)
    args = ap.parse_args()
    upstream_port = free_port()
    fake = subprocess.Popen(
        [sys.executable, "-m", "tests.support.fake_upstream", "--port", str(upstream_port), "--events", "12"],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        with tempfile.TemporaryDirectory() as tmp, emulated_aws() as aws:
            base = {k: v for k, v in os.environ.items() if not k.startswith(("NEXUS_", "AWS_"))}
            base["NEXUS_UPSTREAM_URL"] = f"http://127.0.0.1:{upstream_port}"
            local = {**base, "NEXUS_DATA_DIR": str(Path(tmp) / "nexus"), "NEXUS_REQUIRE_KEYS": "0"}
            cloud = {**base, **aws.env, "NEXUS_DATA_DIR": str(Path(tmp) / "nexus-aws")}
            keyed = {**HEADERS, "x-nexus-key": aws.key}
            deadline = time.monotonic() + 10
            while not _listening(upstream_port):
                if time.monotonic() > deadline:
                    raise RuntimeError("the fake upstream did not start")
                time.sleep(0.05)
            bare: list[float] = []
            bare_cpu: list[float] = []
            runs: dict[str, list[Run]] = {"local path": [], "AWS path": []}
            delivered = 0
            for _ in range(args.runs):  # interleaved, so all three see the same machine
                wall, cpu = bare_ms()
                bare.append(wall)
                bare_cpu.append(cpu)
                runs["local path"].append(cold_start(local, HEADERS))
                runs["AWS path"].append(cold_start(cloud, keyed))
                delivered += len(aws.drain())
            if delivered != args.runs:
                raise RuntimeError(f"{delivered} of {args.runs} AWS-path records reached the queue")
            b, bc = pct(bare, 50), pct(bare_cpu, 50)
            print(f"\nA new proxy process, {args.runs} runs each: wall time from exec (p50, p95)")
            print(f"  {'bare interpreter':<34} {b:7.0f} ms  {pct(bare, 95):7.0f} ms")
            for path, values in runs.items():
                print(_row(f"{path}: exec to ready", [r.ready_ms for r in values], b))
                print(_row(f"{path}: exec to first answer", [r.answer_ms for r in values], b))
            print("\nCPU time of the process itself, less sensitive to other load (p50, p95)")
            print(f"  {'bare interpreter':<34} {bc:7.0f} ms  {pct(bare_cpu, 95):7.0f} ms")
            for path, values in runs.items():
                print(_row(f"{path}: to ready", [r.ready_cpu_ms for r in values], bc))
                print(_row(f"{path}: to first answer", [r.answer_cpu_ms for r in values], bc))
            aws_p50 = pct([r.ready_ms for r in runs["AWS path"]], 50)
            ok = verdict(aws_p50 < TARGET_AWS_MS)
            print(f"\nAWS path, exec to ready, p50 {aws_p50:.0f} ms: target < {TARGET_AWS_MS:.0f} ms: {ok}")
            print(f"AWS path records delivered to the queue: {delivered} of {args.runs}")
            print("\nHeaviest imports of the AWS path's start (cumulative, one run):")
            print("\n".join(top_imports(cloud)))
    finally:
        fake.terminate()
        fake.wait(10)


if __name__ == "__main__":
    main()
