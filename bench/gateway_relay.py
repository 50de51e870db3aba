"""What the gateway's AWS shape adds per turn here: the front and the router in the way of a turn.

The cloud shape runs as local processes (``tests.support.cloud``): one worker started with the
container's command, the router, and the front started by ``front.sh``. Two conversations go to the
same worker, turn by turn, interleaved: one through front -> router -> worker, one straight to the
worker (the baseline, measured in the same run). Time to the first text delta, as an ``openai`` SDK
user sees it, and the whole turn. In AWS the front -> router hop is a Lambda invoke instead of local
HTTP (docs/adr/0016-gateway-routing.md puts a figure on it); what this measures is the relays' own
cost: two extra HTTP hops, a body parse and a hash.

    .venv/bin/python bench/gateway_relay.py             # 40 turns per path
    .venv/bin/python bench/gateway_relay.py --turns 10
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from openai import OpenAI

from bench.lib.openai_stream import first_delta
from bench.lib.report import verdict
from bench.lib.stats import pct
from tests.support import pg
from tests.support.cloud import running_cloud
from tests.support.fake_upstream import FakeAnthropic
from tests.support.stack import Stack

TARGET_ADDED_MS = 10.0  # the relays must stay well under a warm turn's own first-delta time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--turns", type=int, default=40)
    args = ap.parse_args()
    upstream = FakeAnthropic().start()
    with pg.temporary_server() as server, tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        stack = Stack(root / "stack", upstream.url, pg.create_database(server.get_uri())).start()
        try:
            env = {"NEXUS_GATEWAY_REQUIRE_KEYS": "false", "NEXUS_GATEWAY_WARM_SPARES": "1"}
            with running_cloud(stack, "bench", root, workers=1, env=env) as cloud:
                worker = cloud.workers[0]
                paths = {
                    "direct": OpenAI(base_url=f"http://{worker.address}/v1", api_key="bench", max_retries=0),
                    "relayed": OpenAI(base_url=cloud.front_url + "/v1", api_key="bench", max_retries=0),
                }
                histories = {name: [{"role": "system", "content": f"Bench {name}."}] for name in paths}
                deltas: dict[str, list[float]] = {name: [] for name in paths}
                turns: dict[str, list[float]] = {name: [] for name in paths}
                for i in range(args.turns + 1):
                    for name, client in paths.items():
                        h = histories[name]
                        h.append({"role": "user", "content": f"Turn {i} of {name}."})
                        began = time.perf_counter()
                        ms, text = first_delta(client, h)
                        total = (time.perf_counter() - began) * 1000
                        h.append({"role": "assistant", "content": text})
                        if i:  # the first turn starts the session: not a continuing turn
                            deltas[name].append(ms)
                            turns[name].append(total)
        finally:
            stack.stop()
    upstream.stop()

    print(f"\nContinuing turns through the cloud shape, {args.turns} per path (p50, p95):")
    for name in paths:
        print(
            f"  {name:<8} first delta {pct(deltas[name], 50):7.1f} ms {pct(deltas[name], 95):7.1f} ms"
            f"   whole turn {pct(turns[name], 50):7.1f} ms {pct(turns[name], 95):7.1f} ms"
        )
    added = pct(deltas["relayed"], 50) - pct(deltas["direct"], 50)
    ratio = pct(deltas["relayed"], 50) / pct(deltas["direct"], 50)
    print(f"\nfront + router add {added:+.1f} ms to the first delta (p50), {ratio:.2f}x the worker alone")
    print(f"target: <= +{TARGET_ADDED_MS:g} ms: {verdict(added <= TARGET_ADDED_MS)}")


if __name__ == "__main__":
    main()
