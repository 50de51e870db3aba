"""How long a new proxy process takes from exec to its first answer, locally and on the AWS path.

A new Lambda sandbox pays this on its first request (plus what Lambda itself adds), so it is the
proxy's cold start. Each run starts the proxy the way its entry does (uvicorn with the proxy's own
HTTP protocol, as ``functions/proxy/run.sh`` and ``nexus dev`` do) and polls ``/health`` until it
answers. The AWS path sets what the stack sets (queue, bucket, secrets prefix, function name), so the
same process imports boto3 and builds its clients; it talks to no AWS endpoint before the first
request. Baseline, measured in the same run: a bare interpreter (``python -c pass``).

    .venv/bin/python bench/cold_start.py            # 9 runs of each
    .venv/bin/python bench/cold_start.py --runs 3
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from nexus_proxy import serve

from bench.lib.procs import free_port
from bench.lib.report import verdict
from bench.lib.stats import pct

TARGET_AWS_MS = 350.0
AWS_ENV = {
    "AWS_LAMBDA_FUNCTION_NAME": "nexus-staging-proxy",
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "NEXUS_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/nexus-staging-records.fifo",
    "NEXUS_RECORD_BUCKET": "nexus-staging-records",
    "NEXUS_SECRETS_PREFIX": "staging/",
    "NEXUS_STRIP_PLATFORM_HEADERS": "1",
    "NEXUS_ACCESS_REFRESH_S": "30",
}


def _healthy(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2) as s:
            s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            return s.recv(16).startswith(b"HTTP/1.1 200")
    except OSError:
        return False


def start_to_ready_ms(env: dict[str, str]) -> float:
    port = free_port()
    began = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", *serve.argv("127.0.0.1", port, "--log-level", "warning")],
        env=env,
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
        return (time.perf_counter() - began) * 1000
    finally:
        proc.terminate()
        proc.wait(10)


def bare_ms() -> float:
    began = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    return (time.perf_counter() - began) * 1000


def top_imports(env: dict[str, str], n: int = 12) -> list[str]:
    """The heaviest imports of the AWS path (cumulative, from -X importtime), for where to look."""
    code = (
        "import uvicorn, uvloop, httptools, nexus_proxy.http_server; "
        "from nexus_proxy.app import create_app; create_app()"
    )
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code], env=env, capture_output=True, text=True
    )
    rows = []
    for line in done.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            _, cumulative, name = (part.strip() for part in line.removeprefix("import time:").split("|"))
            if cumulative.isdigit() and name.count(".") == 0 and not name.startswith(" "):
                rows.append((int(cumulative), name))
    rows.sort(reverse=True)
    return [f"    {name:<28} {us / 1000:7.1f} ms" for us, name in rows[:n]]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=9)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = {k: v for k, v in os.environ.items() if not k.startswith(("NEXUS_", "AWS_"))}
        local = {**base, "NEXUS_DATA_DIR": str(Path(tmp) / "nexus"), "NEXUS_REQUIRE_KEYS": "0"}
        aws = {**base, **AWS_ENV, "NEXUS_DATA_DIR": str(Path(tmp) / "nexus-aws")}
        results: dict[str, list[float]] = {
            "bare interpreter": [],
            "proxy, local path": [],
            "proxy, AWS path": [],
        }
        for _ in range(args.runs):  # interleaved, so all three see the same machine
            results["bare interpreter"].append(bare_ms())
            results["proxy, local path"].append(start_to_ready_ms(local))
            results["proxy, AWS path"].append(start_to_ready_ms(aws))
        bare = pct(results["bare interpreter"], 50)
        print(f"\nProcess start to first answer, {args.runs} runs each (p50, p95):")
        for name, values in results.items():
            p50, p95 = pct(values, 50), pct(values, 95)
            print(f"  {name:<20} {p50:7.0f} ms  {p95:7.0f} ms   {p50 / bare:5.1f}x the bare interpreter")
        aws_p50 = pct(results["proxy, AWS path"], 50)
        ok = verdict(aws_p50 < TARGET_AWS_MS)
        print(f"\nAWS path p50 {aws_p50:.0f} ms: target < {TARGET_AWS_MS:.0f} ms: {ok}")
        print("\nHeaviest imports on the AWS path (cumulative):")
        print("\n".join(top_imports(aws)))


if __name__ == "__main__":
    main()
