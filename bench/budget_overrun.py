"""How long a team keeps spending after it crosses its budget (ADR 0017), on `nexus dev`.

A client of a capped team sends requests back to back (one at a time, ``--interval-ms`` apart), each
costing the same (the fake upstream's usage). Per round the cap is set above the spend so far by a
random number of requests (so the crossing falls anywhere in the proxy's refresh interval);
the request that crosses it is recorded as its response ends. The overrun window is the time from
that response to the first answer the proxy refuses (429): the spool consumer's poll, ingest, the
evaluation and the state write, then the proxy's next look at the state (``NEXUS_ACCESS_REFRESH_S``,
1 s locally). Also printed: the requests (and dollars) forwarded in that window.

    .venv/bin/python bench/budget_overrun.py [--rounds 10] [--interval-ms 50] [--quick]
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

from bench.lib.stats import mean, pct
from tests.integration.http import CLAUDE_HEADERS, post
from tests.support import pg
from tests.support.fake_upstream import FakeAnthropic, Usage
from tests.support.stack import Stack

MODEL = "claude-opus-5-5"  # $20 per million output tokens
COST_USD = 0.30  # 15,000 output tokens (plus a 10-token prompt, $0.00004)
BODY = json.dumps(
    {"model": MODEL, "max_tokens": 5, "stream": True, "messages": [{"role": "user", "content": "hi"}]}
).encode()


def round_once(
    stack: Stack, headers: dict[str, str], spent: float, interval_s: float, before: int
) -> tuple[float, int, float]:
    """One crossing after ``before`` + 2 requests: (overrun seconds, requests forwarded after the
    crossing one, spend after). ``before`` varies per round, so the crossing falls anywhere in the
    proxy's refresh interval (its checks follow the request that saw the raised cap)."""
    cap = spent + (before + 2.5) * COST_USD
    out = stack.nexus("budgets", "set", "--team", "bench", "--monthly-usd", f"{cap:.6f}")
    assert out.returncode == 0, out.stderr
    deadline = time.monotonic() + 10
    while post(stack.proxy_url, "/v1/messages", BODY, headers).status == 429:  # the raised cap applies
        assert time.monotonic() < deadline, "the raised cap did not apply"
        time.sleep(0.05)
    spent += COST_USD
    crossed_at: float | None = None
    after = 0
    while True:
        r = post(stack.proxy_url, "/v1/messages", BODY, headers)
        now = time.monotonic()
        if r.status == 429:
            assert crossed_at is not None, r.body
            return now - crossed_at, after, spent
        assert r.status == 200, r.body
        spent += COST_USD
        if crossed_at is not None:
            after += 1
        elif spent >= cap:
            crossed_at = now  # the crossing request's response has ended: it is recorded
        time.sleep(interval_s)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--interval-ms", type=float, default=50.0, help="pause between a client's requests")
    ap.add_argument("--quick", action="store_true", help="3 rounds")
    args = ap.parse_args()
    rounds = 3 if args.quick else args.rounds

    upstream = FakeAnthropic().start()
    upstream.usage = Usage(input_tokens=10, output_tokens=15_000)
    with pg.temporary_server("nexus-bench-pg-") as server, tempfile.TemporaryDirectory() as tmp:
        stack = Stack(
            Path(tmp) / "nexus", upstream.url, pg.create_database(server.get_uri()), keys="required"
        )
        stack.data_dir.mkdir(parents=True)
        key = stack.nexus("keys", "create", "--team", "bench", "--user", "bench").stdout.strip()
        headers = {**CLAUDE_HEADERS, "x-nexus-key": key}
        stack.start()
        try:
            windows, extra = [], []
            spent = 0.0
            rng = random.Random(17)
            for i in range(rounds):
                before = rng.randrange(25)
                window, after, spent = round_once(stack, headers, spent, args.interval_ms / 1000, before)
                windows.append(window)
                extra.append(after)
                ms = window * 1000
                print(f"round {i + 1}: refused {ms:.0f} ms after the crossing; {after} more forwarded")
        finally:
            stack.stop()
            upstream.stop()
    print()
    print(f"overrun window, {rounds} rounds, one client every {args.interval_ms:g} ms:")
    print(
        f"  p50 {pct(windows, 50) * 1000:.0f} ms   max {max(windows) * 1000:.0f} ms   "
        f"mean {mean(windows) * 1000:.0f} ms"
    )
    print(
        f"  requests forwarded after the crossing one: mean {mean([float(e) for e in extra]):.1f}, "
        f"max {max(extra)} (${max(extra) * COST_USD:.2f} at ${COST_USD:.2f} each)"
    )


if __name__ == "__main__":
    main()
