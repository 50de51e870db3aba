"""What the recording proxy costs a Claude Code user: latency, CPU, memory, throughput.

One run starts a fake Anthropic upstream (tests/support/fake_upstream.py) in its own process, captures
one real Claude Code request (the bundled CLI run once against the fake), starts ``nexus dev`` against
the same fake, and replays the captured bytes directly to the fake and through the proxy, alternating
blocks of each so both see the same machine state. Results are printed next to the direct baseline
measured in the same run; see bench/README.md.

    .venv/bin/python bench/proxy_overhead.py            # full run, under a minute on 2 CPUs
    .venv/bin/python bench/proxy_overhead.py --quick    # smoke run, about 20 s
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import psycopg
from multidict import CIMultiDict
from nexus.record import RawRecord
from nexus.spool import SpoolReader, SpoolWriter

from bench.lib.procs import (
    Child,
    OtherLoad,
    alive,
    cpu_s,
    cpu_source,
    family,
    find_child,
    free_port,
    kill_pid,
    log_tail,
    postmaster_pid,
    pss_kb,
    reaped_cpu_s,
    spawn,
    status_kb,
    stop_group,
)
from bench.lib.report import checks_table, print_sections, ratio
from bench.lib.stats import mean, pct

PYTHON = sys.executable
NEXUS = str(Path(PYTHON).with_name("nexus"))
DROP_HEADERS = frozenset(
    {"host", "content-length", "connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade"}
)
EVENTS = 18  # SSE events per answer: a short streamed text reply
PAUSE_MS = 100.0
REQUEST_TIMEOUT_S = 30.0
PHASE_LIMIT_S = 40.0  # no block of requests runs longer than this
DRAIN_LIMIT_S = 120.0

TARGET_TTFB_P50_MS = 1.0
TARGET_TTFB_P99_MS = 5.0
TARGET_CPU_MS = 1.0
TARGET_THROUGHPUT_PCT = 60.0
TARGET_RSS_MB = 150.0


# --- the fake upstream and the captured request ------------------------------------------------


def start_fake(tmp: Path, name: str, extra: list[str]) -> tuple[Child, str]:
    child = spawn(
        name, [PYTHON, "-m", "tests.support.fake_upstream", "--port", "0", *extra], tmp / f"{name}.log"
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        text = child.log.read_text()
        if text.startswith("listening "):
            return child, text.split()[1]
        if child.proc.poll() is not None:
            break
        time.sleep(0.05)
    raise RuntimeError(f"{name} did not start:\n{log_tail(child.log)}")


@dataclass
class Replay:
    body: bytes
    headers: CIMultiDict[str]
    query: str
    user_agent: str


def claude_binary() -> Path:
    import claude_agent_sdk

    path = Path(claude_agent_sdk.__file__).parent / "_bundled" / "claude"
    if not path.exists():
        raise RuntimeError(f"the bundled Claude Code CLI is missing: {path}")
    return path


def run_cli_once(tmp: Path, base_url: str) -> None:
    home, cwd = tmp / "cli-home", tmp / "cli-cwd"
    home.mkdir()
    cwd.mkdir()
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(home),
        "ANTHROPIC_BASE_URL": base_url,
        "ANTHROPIC_API_KEY": "sk-ant-test",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    }
    cli = spawn(
        "cli",
        [str(claude_binary()), "-p", "hello", "--model", "claude-sonnet-4-5"],
        tmp / "cli.log",
        env,
        cwd,
    )
    try:
        code = cli.proc.wait(90)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"the Claude Code CLI did not finish in 90 s:\n{log_tail(cli.log)}") from None
    finally:
        stop_group(cli, 2)
    if code != 0:
        raise RuntimeError(f"the Claude Code CLI failed (exit {code}):\n{log_tail(cli.log)}")


def capture_request(tmp: Path) -> Replay:
    """Run the real CLI once against a capturing fake; keep its largest POST /v1/messages."""
    cap = tmp / "capture"
    fake, url = start_fake(tmp, "fake-capture", ["--capture-dir", str(cap)])
    try:
        run_cli_once(tmp, url)
    finally:
        stop_group(fake, 5)
    best: tuple[int, Path] | None = None
    for meta_path in sorted(cap.glob("*.json")):
        meta = json.loads(meta_path.read_text())
        size = meta_path.with_suffix(".body").stat().st_size
        if meta["method"] == "POST" and meta["path"] == "/v1/messages" and (best is None or size > best[0]):
            best = (size, meta_path)
    if best is None:
        raise RuntimeError(f"the CLI sent no POST /v1/messages; captured: {sorted(os.listdir(cap))}")
    meta = json.loads(best[1].read_text())
    headers = CIMultiDict((k, v) for k, v in meta["headers"] if k.lower() not in DROP_HEADERS)
    return Replay(
        best[1].with_suffix(".body").read_bytes(), headers, meta["query"], headers.get("user-agent", "?")
    )


# --- nexus dev -----------------------------------------------------------------------------------


@dataclass
class Stack:
    child: Child
    data_dir: Path
    proxy_url: str
    proxy_pid: int = 0
    dashboard_pid: int = 0
    postmaster_pid: int = 0
    pg_socket_dir: str = ""

    def postgres_pids(self) -> list[int]:
        if not self.postmaster_pid or not alive(self.postmaster_pid, "postgres"):
            return []
        return family(self.postmaster_pid)

    def proxy_cpu_s(self) -> float:
        return cpu_s(self.proxy_pid)

    def ingest_cpu_s(self) -> float:
        """The `nexus dev` process (ingest thread) plus every postgres process, exited ones included."""
        pg = self.postgres_pids()
        total = cpu_s(self.child.proc.pid) + sum(cpu_s(p) for p in pg)
        if pg:  # backends and workers that exited: reaped into the postmaster's cutime/cstime
            total += reaped_cpu_s(pg[0])
        return total

    def spool_pending(self) -> int:
        return SpoolReader(self.data_dir / "spool").pending()

    def dead_letters(self) -> int:
        dead = self.data_dir / "spool" / "dead"
        return sum(1 for _ in dead.glob("*.rec")) if dead.exists() else 0

    def db_url(self) -> str:
        return f"postgresql://postgres:@/postgres?host={self.pg_socket_dir or self.data_dir / 'pg'}"


def start_nexus(tmp: Path, upstream: str) -> Stack:
    data_dir = tmp / "data"
    proxy_port, dashboard_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEXUS_") and k != "DATABASE_URL"}
    cmd = [NEXUS, "dev", "--upstream", upstream, "--data-dir", str(data_dir)]
    cmd += ["--proxy-port", str(proxy_port), "--dashboard-port", str(dashboard_port)]
    stack = Stack(
        spawn("nexus-dev", cmd, tmp / "nexus-dev.log", env), data_dir, f"http://127.0.0.1:{proxy_port}"
    )
    wait_banner(stack.child, 120)
    with urllib.request.urlopen(stack.proxy_url + "/health", timeout=5) as r:
        if r.status != 200:
            raise RuntimeError(f"proxy /health answered {r.status}")
    find_pids(stack)
    return stack


def wait_banner(child: Child, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if "Nexus local stack is running" in child.log.read_text(errors="replace"):
            return
        if child.proc.poll() is not None:
            raise RuntimeError(f"nexus dev exited (code {child.proc.returncode}):\n{log_tail(child.log)}")
        time.sleep(0.1)
    raise RuntimeError(f"nexus dev did not come up in {timeout_s:.0f} s:\n{log_tail(child.log)}")


def find_pids(stack: Stack) -> None:
    stack.proxy_pid = find_child(stack.child.proc.pid, "nexus_proxy.serve")
    stack.dashboard_pid = find_child(stack.child.proc.pid, "nexus_dashboard.app:create_from_env")
    if not stack.proxy_pid:
        raise RuntimeError("could not find the proxy process under nexus dev")
    pgdata = stack.data_dir / "pg"
    stack.postmaster_pid = postmaster_pid(pgdata)
    lines = (pgdata / "postmaster.pid").read_text().splitlines()
    stack.pg_socket_dir = lines[4] if len(lines) > 4 else ""


def stop_nexus(stack: Stack) -> None:
    with suppress(ProcessLookupError):
        os.kill(stack.child.proc.pid, signal.SIGCONT)  # in case it was interrupted while held back
    stop_group(stack.child, 90)  # graceful: proxy first, then ingest drains, then postgres stops
    for pid, needle in (
        (stack.proxy_pid, "nexus_proxy.app"),
        (stack.dashboard_pid, "nexus_dashboard.app"),
        (stack.postmaster_pid, "postgres"),
    ):
        if pid:
            kill_pid(pid, needle)


def count_rows(stack: Stack) -> int:
    with psycopg.connect(stack.db_url(), connect_timeout=10) as conn:
        row = conn.execute("SELECT count(*) FROM requests").fetchone()
    return int(row[0]) if row else 0


# --- load generation -----------------------------------------------------------------------------


@dataclass
class Sample:
    ttfb_ms: float
    total_ms: float
    ok: bool


@dataclass
class Phase:
    samples: list[Sample] = field(default_factory=list)
    wall_s: float = 0.0

    def extend(self, other: Phase) -> None:
        self.samples += other.samples
        self.wall_s += other.wall_s

    @property
    def ok(self) -> list[Sample]:
        return [s for s in self.samples if s.ok]

    @property
    def failed(self) -> int:
        return len(self.samples) - len(self.ok)

    @property
    def throughput(self) -> float:
        return len(self.ok) / self.wall_s if self.wall_s else 0.0


async def one_request(session: aiohttp.ClientSession, url: str, req: Replay) -> Sample:
    t0 = time.perf_counter()
    try:
        async with session.post(url, data=req.body, headers=req.headers) as resp:
            tail = await resp.content.readany()
            t1 = time.perf_counter()
            while chunk := await resp.content.readany():
                tail = (tail + chunk)[-128:]
            t2 = time.perf_counter()
            ok = resp.status == 200 and b"message_stop" in tail
    except (aiohttp.ClientError, TimeoutError):
        return Sample(math.nan, math.nan, False)
    return Sample((t1 - t0) * 1000, (t2 - t0) * 1000, ok)


async def run_phase(session: aiohttp.ClientSession, url: str, req: Replay, n: int, concurrency: int) -> Phase:
    phase = Phase()
    remaining = n
    deadline = time.perf_counter() + PHASE_LIMIT_S

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0 and time.perf_counter() < deadline:
            remaining -= 1
            phase.samples.append(await one_request(session, url, req))

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    phase.wall_s = time.perf_counter() - t0
    return phase


@dataclass
class EventTiming:
    lateness_ms: list[float] = field(default_factory=list)  # client receive - upstream send
    gaps_ms: list[float] = field(default_factory=list)  # between consecutive events at the client


async def paused_request(session: aiohttp.ClientSession, url: str, req: Replay, out: EventTiming) -> None:
    """One streamed request with PAUSE_MS between events; every event carries ': sent=<epoch>'."""
    headers = CIMultiDict(req.headers)
    headers["x-fake-delay-ms"] = str(PAUSE_MS)
    buf, last = b"", None
    async with session.post(url, data=req.body, headers=headers) as resp:
        if resp.status != 200:
            raise RuntimeError(f"pause test: {url} answered {resp.status}")
        while chunk := await resp.content.readany():
            now = time.time()
            buf += chunk
            while b"\n\n" in buf:
                event, buf = buf.split(b"\n\n", 1)
                if event.startswith(b": sent="):
                    sent = float(event[7 : event.index(b"\n")])
                    out.lateness_ms.append((now - sent) * 1000)
                    if last is not None:
                        out.gaps_ms.append((now - last) * 1000)
                    last = now


# --- the benchmark -------------------------------------------------------------------------------


@dataclass
class Plan:
    warmup: int
    c1: int
    c16: int
    pause: int
    blocks_c1: int
    blocks_c16: int

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Plan:
        if args.quick:
            return cls(10, args.requests or 60, args.requests_c16 or 320, 2, 2, 2)
        return cls(30, args.requests or 300, args.requests_c16 or 2000, 5, 6, 4)


@dataclass
class Cpu:
    """CPU seconds used during measured blocks of one side, and how many requests they served."""

    requests: int = 0
    client: float = 0.0  # this process: the load generator
    fake: float = 0.0
    proxy: float = 0.0
    ingest: float = 0.0  # nexus dev (ingest thread) + postgres, until the spool is empty again

    def ms(self, part: str) -> float:
        return getattr(self, part) * 1000 / self.requests if self.requests else math.nan

    def add(self, other: Cpu) -> Cpu:
        return Cpu(*(getattr(self, f) + getattr(other, f) for f in ("requests", *CPU_PARTS)))


CPU_PARTS = ("client", "fake", "proxy", "ingest")


SIDES = ("direct", "proxy", "held")  # held: through the proxy with `nexus dev` (ingest) frozen meanwhile


def new_sides() -> dict[str, Phase]:
    return {side: Phase() for side in SIDES}


def new_cpu() -> dict[str, Cpu]:
    return {side: Cpu() for side in SIDES}


@dataclass
class Results:
    body_bytes: int = 0
    user_agent: str = ""
    spool_write_ms: float = math.nan  # CPU to encode and append one record-sized record to the spool
    latency: dict[int, dict[str, Phase]] = field(default_factory=lambda: {1: new_sides(), 16: new_sides()})
    cpu: dict[int, dict[str, Cpu]] = field(default_factory=lambda: {1: new_cpu(), 16: new_cpu()})
    pause: dict[str, EventTiming] = field(
        default_factory=lambda: {"direct": EventTiming(), "proxy": EventTiming()}
    )
    proxied_total: int = 0  # every request sent through the proxy, warm-up and pause test included
    rows: int = -1
    dead_letters: int = 0
    memory: dict[str, float] = field(default_factory=dict)
    other_cpu_pct: float = math.nan  # CPU used by processes outside this benchmark during the load
    steal_pct: float = math.nan  # CPU time the hypervisor gave to other guests meanwhile

    def proxy_cpu(self) -> Cpu:
        return self.cpu[1]["proxy"].add(self.cpu[16]["proxy"])


def probe_spool_write(spool_dir: Path, size: int, n: int = 200) -> float:
    """CPU ms the proxy spends handing one record-sized record to the spool (encode + append),
    measured with the proxy's own SpoolWriter in a scratch directory next to the real spool."""
    scratch = spool_dir.parent / "spool-probe"
    writer = SpoolWriter(scratch)
    record = RawRecord(
        id="probe",
        received_at=time.time(),
        method="POST",
        path="/v1/messages",
        query="",
        request_headers=[["content-type", "application/json"]] * 20,
        status=200,
        request_body=b"\0" * size,
        response_body=b"\0" * 3000,
    )
    c0 = time.process_time()
    for _ in range(n):
        writer.put(record)
    cpu = time.process_time() - c0
    writer.close()
    shutil.rmtree(scratch, ignore_errors=True)
    return cpu * 1000 / n


class Bench:
    def __init__(self, stack: Stack, fake: Child, fake_url: str, req: Replay, plan: Plan) -> None:
        self.stack = stack
        self.fake_pid = fake.proc.pid
        self.req = req
        self.plan = plan
        proxied = f"{stack.proxy_url}/v1/messages?{req.query}"
        self.urls = {"direct": f"{fake_url}/v1/messages?{req.query}", "proxy": proxied, "held": proxied}
        self.results = Results(len(req.body), req.user_agent)

    async def drain(self) -> None:
        """Wait until ingest has emptied the spool (checked twice: the last record may be in flight)."""
        deadline = time.monotonic() + DRAIN_LIMIT_S
        quiet = 0
        while quiet < 2:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the spool did not drain in {DRAIN_LIMIT_S:.0f} s")
            await asyncio.sleep(0.1)
            quiet = quiet + 1 if self.stack.spool_pending() == 0 else 0

    def snapshot(self) -> Cpu:
        s = self.stack
        return Cpu(0, time.process_time(), cpu_s(self.fake_pid), s.proxy_cpu_s(), s.ingest_cpu_s())

    @contextmanager
    def ingest_held(self, hold: bool) -> Iterator[None]:
        """Optionally freeze `nexus dev` (the ingest thread) so only the proxy competes for CPU."""
        pid = self.stack.child.proc.pid
        if hold:
            os.kill(pid, signal.SIGSTOP)
        try:
            yield
        finally:
            if hold:
                os.kill(pid, signal.SIGCONT)

    async def block(self, session: aiohttp.ClientSession, target: str, n: int, c: int, cpu: Cpu) -> Phase:
        """One block of requests to one side, started on an empty spool; CPU added to ``cpu``."""
        await self.drain()
        before = self.snapshot()
        with self.ingest_held(target == "held"):
            phase = await run_phase(session, self.urls[target], self.req, n, c)
            after = self.snapshot()
        cpu.requests += len(phase.samples)
        cpu.client += after.client - before.client
        cpu.fake += after.fake - before.fake
        if target != "direct":
            self.results.proxied_total += len(phase.samples)
            cpu.proxy += after.proxy - before.proxy
            await self.drain()
            cpu.ingest += self.stack.ingest_cpu_s() - before.ingest
        return phase

    async def alternate(self, session: aiohttp.ClientSession, n: int, c: int, blocks: int) -> None:
        """Mirrored order (direct, proxy, held, held, proxy, direct, ...) so slow drift hits all sides
        alike. The "held" blocks are not part of the targets; they show the proxy without ingest."""
        sizes = [n // blocks + (1 if i < n % blocks else 0) for i in range(blocks)]
        for i, size in enumerate(sizes):
            for target in SIDES if i % 2 == 0 else SIDES[::-1]:
                phase = await self.block(session, target, size, c, self.results.cpu[c][target])
                self.results.latency[c][target].extend(phase)
                print(f"  c={c:<2} block {i + 1}/{blocks} {target:<6} {size} requests", flush=True)

    async def pause_test(self, session: aiohttp.ClientSession) -> None:
        for i in range(self.plan.pause * 2):
            target = ("direct", "proxy")[i % 2]
            timing = self.results.pause[target]
            await asyncio.wait_for(paused_request(session, self.urls[target], self.req, timing), 15)
            if target == "proxy":
                self.results.proxied_total += 1

    async def run(self) -> Results:
        self.results.spool_write_ms = probe_spool_write(self.stack.data_dir / "spool", len(self.req.body))
        timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
        async with aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=64), timeout=timeout, auto_decompress=False,
            skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
        ) as session:  # fmt: skip
            print("warm-up", flush=True)
            load = OtherLoad(self.stack.postmaster_pid)  # this process, the fake, nexus dev and postgres
            load.start()
            for target in ("direct", "proxy"):  # "held" is the same path as "proxy"
                await self.block(session, target, self.plan.warmup, 1, Cpu())
                await self.block(session, target, self.plan.warmup, 16, Cpu())
            print("concurrency 1", flush=True)
            await self.alternate(session, self.plan.c1, 1, self.plan.blocks_c1)
            print("concurrency 16", flush=True)
            await self.alternate(session, self.plan.c16, 16, self.plan.blocks_c16)
            print(f"pause test ({EVENTS} events, {PAUSE_MS:.0f} ms apart)", flush=True)
            await self.pause_test(session)
            await self.drain()
            self.results.other_cpu_pct, self.results.steal_pct = load.pct()
        self.finish()
        return self.results

    def finish(self) -> None:
        r, s = self.results, self.stack
        r.rows = count_rows(s)
        r.dead_letters = s.dead_letters()
        mb = 1 / 1024
        r.memory = {
            "proxy peak": status_kb(s.proxy_pid, "VmHWM") * mb,
            "proxy now": status_kb(s.proxy_pid, "VmRSS") * mb,
            "nexus dev peak": status_kb(s.child.proc.pid, "VmHWM") * mb,
            "dashboard peak": status_kb(s.dashboard_pid, "VmHWM") * mb if s.dashboard_pid else 0.0,
        }
        pg = s.postgres_pids()
        r.memory["postgres processes"] = len(pg)
        r.memory["postgres rss sum"] = sum(status_kb(p, "VmRSS") for p in pg) * mb
        r.memory["postgres pss sum"] = sum(pss_kb(p) for p in pg) * mb


# --- statistics and the report -------------------------------------------------------------------


def metric(phase: Phase, attr: str) -> list[float]:
    return [getattr(s, attr) for s in phase.ok]


def added(phases: dict[str, Phase], attr: str, q: float) -> float:
    return pct(metric(phases["proxy"], attr), q) - pct(metric(phases["direct"], attr), q)


def share_pct(phases: dict[str, Phase], side: str = "proxy") -> float:
    return 100 * ratio(phases[side].throughput, phases["direct"].throughput)


def row(label: str, direct: float, proxy: float, held: float) -> str:
    times = ratio(proxy, direct)
    return (
        f"  {label:<12}{direct:>9.3f} ms{proxy:>10.3f} ms{proxy - direct:>+10.3f} ms{times:>7.2f}x"
        f"{held:>11.3f} ms{held - direct:>+10.3f} ms"
    )


def report_latency(c: int, phases: dict[str, Phase]) -> list[str]:
    d, p, h = (phases[side] for side in SIDES)
    lines = [
        f"Concurrency {c}: {len(d.ok)} direct / {len(p.ok)} proxied / {len(h.ok)} held requests ok,"
        f" {d.failed + p.failed + h.failed} failed (held: through the proxy with ingest frozen meanwhile)",
        f"  {'':<12}{'direct':>12}{'proxy':>13}{'added':>13}{'ratio':>8}{'held':>14}{'added':>13}",
    ]
    for attr, name in (("ttfb_ms", "TTFB"), ("total_ms", "total")):
        for q in (50, 99):
            values = (pct(metric(phase, attr), q) for phase in (d, p, h))
            lines.append(row(f"{name} p{q}", *values))
    if c > 1:
        held_share = share_pct(phases, "held")
        lines.append(
            f"  {'throughput':<12}{d.throughput:>8.1f} r/s{p.throughput:>9.1f} r/s"
            f"{'= ' + format(share_pct(phases), '.1f') + '% of direct':>25}"
            f"{h.throughput:>10.1f} r/s{'= ' + format(held_share, '.1f') + '%':>13}"
        )
    return lines


def report_cpu(r: Results) -> list[str]:
    lines = [
        f"CPU per request, ms ({cpu_source()}; measured blocks only; ingest includes"
        " draining the spool after each proxied block)",
        f"  {'':<14}{'client':>8}{'fake':>8}{'proxy':>8}{'ingest':>8}{'all':>8}   CPU-bound ceiling",
    ]
    cores = os.cpu_count() or 1
    for c in (1, 16):
        for target in SIDES:
            cpu = r.cpu[c][target]
            parts = ("client", "fake") if target == "direct" else ("client", "fake", "proxy", "ingest")
            total = sum(cpu.ms(p) for p in parts)
            cells = "".join(f"{cpu.ms(p):>8.3f}" if p in parts else f"{'-':>8}" for p in CPU_PARTS)
            ceiling = cores * 1000 / total
            lines.append(f"  c={c:<2} {target:<7}{cells}{total:>8.3f}   {ceiling:7.0f} req/s on {cores} CPUs")
    proxy = r.proxy_cpu()
    lines += [
        f'  proxy, all measured "proxy" requests: {proxy.ms("proxy"):.3f} ms ({proxy.requests} requests);'
        f" one proxy process saturates its core at about {1000 / proxy.ms('proxy'):.0f} req/s",
        f"  handing one record to the spool costs about {r.spool_write_ms:.3f} ms of that here"
        " (encode + append with the proxy's SpoolWriter, probed before the load)",
    ]
    return lines


def report_memory(r: Results) -> list[str]:
    m = r.memory
    tree = m["proxy peak"] + m["nexus dev peak"] + m["dashboard peak"]
    return [
        "Memory (peak RSS = VmHWM)",
        f"  proxy            {m['proxy peak']:7.1f} MB peak ({m['proxy now']:.1f} MB now)",
        f"  nexus dev tree   {tree:7.1f} MB (sum of peaks: nexus dev + ingest {m['nexus dev peak']:.1f}, "
        f"proxy {m['proxy peak']:.1f}, dashboard {m['dashboard peak']:.1f})",
        f"  postgres         {m['postgres pss sum']:7.1f} MB PSS over {m['postgres processes']:.0f} processes"
        f" (RSS sum {m['postgres rss sum']:.1f} MB counts shared buffers once per process)",
    ]


def report_pause(r: Results) -> list[str]:
    lines = [
        f"Pause test: upstream waits {PAUSE_MS:.0f} ms between {EVENTS} events; lateness = client receive"
        " time - upstream send time (same clock), ms",
        f"  {'':<8}{'events':>7}{'late mean':>11}{'p50':>8}{'p99':>8}{'max':>8}"
        f"{'gap mean':>10}{'gap min':>9}{'gap max':>9}",
    ]
    for target in ("direct", "proxy"):
        late, gaps = r.pause[target].lateness_ms, r.pause[target].gaps_ms
        lines.append(
            f"  {target:<8}{len(late):>7}{mean(late):>11.3f}{pct(late, 50):>8.3f}{pct(late, 99):>8.3f}"
            f"{max(late, default=math.nan):>8.3f}{mean(gaps):>10.2f}{min(gaps, default=math.nan):>9.2f}"
            f"{max(gaps, default=math.nan):>9.2f}"
        )
    d, p = r.pause["direct"].lateness_ms, r.pause["proxy"].lateness_ms
    lines.append(
        "  through the proxy every event reached the client within"
        f" {max(p, default=math.nan):.2f} ms of leaving the upstream"
        f" (direct: {max(d, default=math.nan):.2f} ms); the proxy adds"
        f" {mean(p) - mean(d):+.2f} ms per event on average"
    )
    return lines


def report_summary(r: Results) -> list[str]:
    c1, c16 = r.latency[1], r.latency[16]
    add50, add99 = added(c1, "ttfb_ms", 50), added(c1, "ttfb_ms", 99)
    cpu, share, rss = r.proxy_cpu().ms("proxy"), share_pct(c16), r.memory["proxy peak"]
    failed = sum(p.failed for sides in r.latency.values() for p in sides.values())
    return checks_table([
        ("added TTFB p50 at c=1", f"{add50:+.3f} ms", f"<= {TARGET_TTFB_P50_MS} ms",
         add50 <= TARGET_TTFB_P50_MS),
        ("added TTFB p99 at c=1", f"{add99:+.3f} ms", f"<= {TARGET_TTFB_P99_MS} ms",
         add99 <= TARGET_TTFB_P99_MS),
        ("proxy CPU per request", f"{cpu:.3f} ms", f"<= {TARGET_CPU_MS} ms", cpu <= TARGET_CPU_MS),
        ("throughput at c=16", f"{share:.1f}% of direct", f">= {TARGET_THROUGHPUT_PCT:.0f}%",
         share >= TARGET_THROUGHPUT_PCT),
        ("proxy peak RSS", f"{rss:.1f} MB", f"< {TARGET_RSS_MB:.0f} MB", rss < TARGET_RSS_MB),
        ("rows recorded", f"{r.rows} of {r.proxied_total}", "all proxied", r.rows == r.proxied_total),
        ("failed requests", str(failed), "0", failed == 0),
    ])  # fmt: skip


def print_report(r: Results) -> None:
    header = (
        f"Request: {r.body_bytes} bytes body ({r.body_bytes / 1024:.1f} KiB) captured from {r.user_agent};"
        f" answer: {EVENTS} SSE events; {os.cpu_count()} CPUs"
    )
    recording = (
        f"Recording: {r.rows} rows in `requests` for {r.proxied_total} proxied requests"
        f" (warm-up and pause test included); {r.dead_letters} dead letters"
    )
    noise = (
        f"Other processes used {r.other_cpu_pct:.0f}% of one CPU during the load, steal {r.steal_pct:.0f}%"
        " (not this benchmark; near 0 on a quiet machine, otherwise rerun)"
    )
    sections = [
        [header, noise],
        report_latency(1, r.latency[1]),
        report_latency(16, r.latency[16]),
        report_cpu(r),
        report_memory(r),
        report_pause(r),
        [recording],
        report_summary(r),
    ]
    print_sections(sections)


# --- main ----------------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--requests", type=int, default=0, help="measured requests per side at c=1 (300; quick 60)"
    )
    p.add_argument("--requests-c16", type=int, default=0, help="requests per side at c=16 (2000; quick 320)")
    p.add_argument("--quick", action="store_true", help="a short smoke run")
    p.add_argument(
        "--tmp-dir", type=Path, default=None, help="where the temporary data dir goes (default: $TMPDIR)"
    )
    p.add_argument("--keep", action="store_true", help="keep the temporary directory (logs, data)")
    return p.parse_args()


def new_event_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


@contextmanager
def sigterm_as_exit() -> Iterator[None]:
    previous = signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def bench(tmp: Path, plan: Plan, children: list[Child], stacks: list[Stack]) -> None:
    print(f"capturing one Claude Code request (bundled CLI) in {tmp}", flush=True)
    req = capture_request(tmp)
    print(f"captured POST /v1/messages?{req.query}: {len(req.body)} bytes, {len(req.headers)} headers")
    fake, fake_url = start_fake(tmp, "fake", ["--events", str(EVENTS), "--stamp"])
    children.append(fake)
    print(f"fake upstream {fake_url}; starting nexus dev", flush=True)
    stack = start_nexus(tmp, fake_url)
    stacks.append(stack)
    print(f"nexus dev up: proxy {stack.proxy_url} (pid {stack.proxy_pid})", flush=True)
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        results = runner.run(Bench(stack, fake, fake_url, req, plan).run())
    print_report(results)


def main() -> int:
    args = parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="nexus-bench-", dir=args.tmp_dir))
    children: list[Child] = []
    stacks: list[Stack] = []
    ok = False
    started = time.monotonic()
    try:
        with sigterm_as_exit():
            bench(tmp, Plan.from_args(args), children, stacks)
        print(f"\n(run took {time.monotonic() - started:.0f} s)")
        ok = True
    except KeyboardInterrupt:
        print("\ninterrupted; stopping everything", file=sys.stderr)
        return 130
    finally:
        for stack in stacks:
            stop_nexus(stack)
        for child in children:
            stop_group(child, 5)
        if ok and not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print(f"logs and data kept in {tmp}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
