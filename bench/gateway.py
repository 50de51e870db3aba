"""What the gateway adds to Claude Code: time to the first token, per-turn cost along a conversation,
and behaviour under concurrent conversations, each against a floor measured in the same run.

Floor: the same bundled Claude Code CLI kept warm by hand (one ``ClaudeSDKClient``, the gateway's
own engine settings), talking to the same Nexus proxy and the same scripted upstream. Gateway: the
``openai`` SDK streaming from ``nexus dev``'s gateway. Time to first delta is measured from the call
to the first text delta the caller receives.

    .venv/bin/python bench/gateway.py            # full run, a few minutes on 2 CPUs
    .venv/bin/python bench/gateway.py --quick    # smoke run
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from openai import OpenAI

from bench.lib.openai_stream import first_delta
from bench.lib.procs import find_child, tree_rss_kb
from bench.lib.report import ratio, verdict
from bench.lib.stats import mean, pct
from tests.support import pg
from tests.support.fake_upstream import FakeAnthropic
from tests.support.stack import Stack

TARGET_CONTINUING_MS = 10.0
TARGET_NEW_MS = 20.0
TARGET_FLAT_PCT = 10.0
IDLE_S = 4
SYSTEM = "You are a benchmark assistant. Answer briefly."


def _floor_options(proxy_url: str, root: Path, name: str):
    """The gateway's own engine settings for a hand-driven client (the floor)."""
    from nexus_gateway.engine.client_tools import PendingCalls
    from nexus_gateway.engine.options import EngineConfig, Isolation, SessionStart, build

    home, cwd = root / f"{name}-home", root / f"{name}-cwd"
    (home / "tmp").mkdir(parents=True, exist_ok=True)
    cwd.mkdir(parents=True, exist_ok=True)
    config = EngineConfig("floor", SYSTEM, (), None, None, "claude-sonnet-5-5")
    opts = build(
        config,
        Isolation(),
        home=home,
        cwd=cwd,
        base_url=proxy_url,
        pending=PendingCalls(60),
        start=SessionStart.new(),
    )
    opts.env["ANTHROPIC_API_KEY"] = "sk-ant-bench"
    return opts


async def _first_delta(client, prompt: str) -> float:
    from claude_agent_sdk import StreamEvent

    started = time.perf_counter()
    first = None
    await client.query(prompt)
    async for m in client.receive_response():
        if first is None and isinstance(m, StreamEvent) and m.event.get("type") == "content_block_delta":
            first = (time.perf_counter() - started) * 1000
    return first if first is not None else float("nan")


async def floor_turns(proxy_url: str, root: Path, prompts: list[str]) -> list[float]:
    """One warm client driven by hand along ``prompts``: query() to the first text delta, per turn."""
    from claude_agent_sdk import ClaudeSDKClient

    async with ClaudeSDKClient(_floor_options(proxy_url, root, f"floor{len(prompts)}")) as client:
        await asyncio.sleep(1)
        return [await _first_delta(client, p) for p in prompts]


async def floor_first_turns(proxy_url: str, root: Path, n: int) -> list[float]:
    """The first turn of clients started and connected in advance (what a warm spare is)."""
    from claude_agent_sdk import ClaudeSDKClient

    out = []
    for i in range(n):
        async with ClaudeSDKClient(_floor_options(proxy_url, root, f"floornew{i}")) as client:
            await asyncio.sleep(1)
            out.append(await _first_delta(client, f"first {i}"))
    return out


def settle(url: str, timeout: float = 30) -> None:
    """Until no Claude Code process is starting (spares being replaced cost CPU on a small machine)."""
    deadline = time.monotonic() + timeout
    while stats(url)["pool"]["starting"] and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.2)


def stats(url: str) -> dict:
    with urllib.request.urlopen(url.removesuffix("/v1") + "/stats", timeout=10) as r:
        return json.loads(r.read())


def line(
    name: str, values: list[float], floor: list[float] | None = None, target: float | None = None
) -> str:
    p50, p95 = pct(values, 50), pct(values, 95)
    out = f"  {name:<44} p50 {p50:7.1f} ms  p95 {p95:7.1f} ms"
    if floor:
        f50 = pct(floor, 50)
        out += f"   floor p50 {f50:6.1f} ms  added {p50 - f50:+6.1f} ms"
        if target is not None:
            out += f"  (target <= +{target:g} ms: {verdict(p50 - f50 <= target)})"
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    turns = 8 if args.quick else 30
    long_turns = 12 if args.quick else 50
    concurrent = 4 if args.quick else 16

    fake = FakeAnthropic().start()
    fake.record = False
    with pg.temporary_server("nexus-bench-gw-") as server, tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        env = {
            "NEXUS_GATEWAY_MAX_SESSIONS": str(concurrent + 4),
            "NEXUS_GATEWAY_WARM_SPARES": "2",
            "NEXUS_GATEWAY_IDLE_TIMEOUT_S": str(IDLE_S),  # short, to measure resuming a recycled session
        }
        stack = Stack(root / "nexus", fake.url, pg.create_database(server.get_uri()), env=env, gateway=True)
        stack.start(timeout=120)
        try:
            print(f"nexus dev up: proxy {stack.proxy_url}, gateway {stack.gateway_url}")
            floor = asyncio.run(
                floor_turns(stack.proxy_url, root, [f"floor turn {n}" for n in range(turns + 2)])
            )[2:]
            floor_new = asyncio.run(floor_first_turns(stack.proxy_url, root, 3 if args.quick else 6))
            long_prompts = [f"long turn {n} " + "context " * 40 for n in range(long_turns)]
            floor_long = asyncio.run(floor_turns(stack.proxy_url, root, long_prompts))
            client = OpenAI(base_url=stack.gateway_url, api_key="bench", max_retries=0, timeout=120)

            settle(stack.gateway_url)
            # Continuing turns: a stateless client resending its whole history every time.
            history = [{"role": "system", "content": SYSTEM}]
            continuing = []
            for n in range(turns + 2):
                history.append({"role": "user", "content": f"turn {n}"})
                ms, text = first_delta(client, history)
                history.append({"role": "assistant", "content": text})
                if n >= 2:
                    continuing.append(ms)

            # New conversations of a configuration seen before (warm spares), one at a time.
            new = []
            for n in range(turns):
                settle(stack.gateway_url)  # the spare used by the last one has been replaced
                ms, _ = first_delta(
                    client, [{"role": "system", "content": SYSTEM}, {"role": "user", "content": f"new {n}"}]
                )
                new.append(ms)

            # First-seen configurations: a system prompt never seen, so no spare fits.
            first_seen = []
            for n in range(3 if args.quick else 6):
                ms, _ = first_delta(
                    client,
                    [{"role": "system", "content": f"Unseen prompt {n}"}, {"role": "user", "content": "hi"}],
                )
                first_seen.append(ms)

            # Per-turn cost along one long conversation: turn 2 vs the last turns.
            settle(stack.gateway_url)
            history = [{"role": "system", "content": SYSTEM}]
            by_turn = []
            for n in range(long_turns):
                history.append({"role": "user", "content": long_prompts[n]})
                ms, text = first_delta(client, history)
                history.append({"role": "assistant", "content": text})
                by_turn.append(ms)
            added = [g - f for g, f in zip(by_turn, floor_long, strict=True)]
            early, late = by_turn[1:4], by_turn[-3:]

            # Sessions no worker holds: a history the gateway never ran (written into a new session),
            # and a conversation whose worker was recycled while idle (resumed from the store).
            rebuilt, resumed = [], []
            for n in range(3):
                h = [
                    {"role": "system", "content": SYSTEM},
                    {"role": "user", "content": f"x{n}"},
                    {"role": "assistant", "content": "an answer from elsewhere"},
                    {"role": "user", "content": "go on"},
                ]
                rebuilt.append(first_delta(client, h)[0])
                h = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": f"resume {n}"}]
                h.append({"role": "assistant", "content": first_delta(client, h)[1]})
                time.sleep(IDLE_S + 2.5)  # the idle worker is recycled; the session stays in the store
                h.append({"role": "user", "content": "again"})
                resumed.append(first_delta(client, h)[0])

            # Concurrency: conversations at once, each a few turns.
            lock = threading.Lock()
            conc_first: list[float] = []
            done_turns = 0

            def conversation(i: int) -> None:
                nonlocal done_turns
                own = OpenAI(base_url=stack.gateway_url, api_key="bench", max_retries=0, timeout=120)
                h = [{"role": "system", "content": SYSTEM}]
                for t in range(3):
                    h.append({"role": "user", "content": f"c{i} t{t}"})
                    ms, text = first_delta(own, h)
                    h.append({"role": "assistant", "content": text})
                    with lock:
                        conc_first.append(ms)
                        done_turns += 1

            began = time.perf_counter()
            threads = [threading.Thread(target=conversation, args=(i,)) for i in range(concurrent)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            wall = time.perf_counter() - began
            st = stats(stack.gateway_url)
            workers = st["pool"]["workers"]
            assert stack.proc is not None
            gw_pid = find_child(stack.proc.pid, "nexus_gateway.app:create_from_env")
            rss = tree_rss_kb(gw_pid) / 1024  # the gateway and its Claude Code processes

            print("\nTime to first delta (same CLI, same proxy, same upstream):")
            print(line("floor: warm ClaudeSDKClient by hand", floor))
            print(line("continuing turn (stateless resend)", continuing, floor, TARGET_CONTINUING_MS))
            print(line("floor: first turn of a hand-started client", floor_new))
            print(line("new conversation, seen configuration", new, floor_new, TARGET_NEW_MS))
            print(line("first-seen configuration (process start)", first_seen, floor))
            print(line("history the gateway never ran (rebuilt)", rebuilt, floor))
            print(line("session resumed from the store (recycled)", resumed, floor))
            growth = (ratio(mean(late), mean(early)) - 1) * 100
            flat = verdict(abs(growth) <= TARGET_FLAT_PCT)
            fl_early, fl_late = floor_long[1:4], floor_long[-3:]
            print(
                f"\nAlong one {long_turns}-turn conversation (each turn resends the whole history):"
                f"\n  gateway first delta: turns 2-4 {mean(early):.1f} ms, last 3 {mean(late):.1f} ms:"
                f" {growth:+.1f}% (target within {TARGET_FLAT_PCT:g}%: {flat})"
                f"\n  floor, same conversation: turns 2-4 {mean(fl_early):.1f} ms,"
                f" last 3 {mean(fl_late):.1f} ms"
                f"\n  added by the gateway: turns 2-4 {mean(added[1:4]):+.1f} ms,"
                f" last 3 {mean(added[-3:]):+.1f} ms"
            )
            print(
                f"\n{concurrent} concurrent conversations x 3 turns: {done_turns / wall:.1f} turns/s,"
                f" first delta p50 {pct(conc_first, 50):.0f} ms p95 {pct(conc_first, 95):.0f} ms"
            )
            print(
                f"gateway process tree RSS {rss:.0f} MB with {workers} Claude Code processes:"
                f" {rss / max(1, workers):.0f} MB per warm worker"
            )
            counts = ("warm_hits", "spare_hits", "cold_starts", "resumes", "rebuilt", "errors")
            print(f"pool stats: {json.dumps({k: st[k] for k in counts})}")
        finally:
            stack.stop()
            fake.stop()


if __name__ == "__main__":
    main()
