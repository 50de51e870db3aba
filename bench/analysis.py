"""What an AI analysis costs: a 50-turn and a 300-turn synthetic Claude Code conversation (realistic
bodies: tool calls, long tool output, system reminders; bench/lib/traffic.py) ingested into a
temporary embedded Postgres through the real ingest path, then analysed by the pipeline's own steps
(``nexus_analysis.runner``, as ``nexus dev`` runs them). Model calls go to the tests' scripted
upstream, whose usage follows the size of what is sent; cost comes from Nexus's price table.

Reported per conversation: transcript tokens before and after condensation (the ratio), chunks,
model calls, input/output tokens and cost of the analysis, and the wall time of the steps.

    .venv/bin/python bench/analysis.py                 # claude-sonnet-5, the default 24k-token budget
    .venv/bin/python bench/analysis.py --model claude-haiku-4-5 --budget 12000
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

import psycopg
from nexus.analysis import settings as analysis_settings
from nexus.analysis import store
from nexus.analysis.condense import DEFAULT_BUDGET
from nexus.db.migrate import migrate
from nexus.db.records import KnownHashes, write_batch
from nexus.derive import prepare
from nexus.secret_store import LocalSecretStore

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.lib.report import print_sections
from bench.lib.traffic import Generator, Shapes, Text
from tests.support.fake_upstream import FakeAnthropic
from tests.support.pg import create_database, temporary_server

TURNS = (50, 300)


def conversation(conn: psycopg.Connection, gen: Generator, turns: int) -> str:
    convo = gen.new_main(gen.rng.choice(gen.identities), turns)
    known = KnownHashes()
    first = None
    for _ in range(turns):
        rec = gen.step(convo, agent=False)
        first = first or rec.id
        write_batch(conn, [prepare(rec)], known)
    row = conn.execute("SELECT conversation_id::text FROM requests WHERE id = %s", (first,)).fetchone()
    assert row is not None
    return str(row[0])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=analysis_settings.DEFAULT_MODEL)
    ap.add_argument("--budget", type=int, default=DEFAULT_BUDGET, help="condensed tokens per model call")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--data-dir", type=Path, default=Path("/tmp/nexus-bench-analysis"))
    args = ap.parse_args()

    from nexus_analysis import runner

    rng = random.Random(args.seed)
    text = Text(rng)
    gen = Generator(rng, text, Shapes.build(text))
    fake = FakeAnthropic().start()
    fake.record = False
    secrets = LocalSecretStore(args.data_dir / "secrets.json")
    analysis_settings.save(
        secrets,
        analysis_settings.AnalysisSettings(
            team="bench", key="nxk_bench", model=args.model, budget_tokens=args.budget
        ),
    )
    rows = [
        f"{'turns':>5} {'requests':>8} {'source tok':>10} {'condensed':>9} {'ratio':>6} {'chunks':>6} "
        f"{'calls':>5} {'in tok':>7} {'out tok':>7} {'cost $':>8} {'time s':>6}"
    ]
    try:
        with temporary_server() as server:
            url = create_database(server.get_uri())
            migrate(url)
            ctx = runner.local_context(url, secrets, fake.url)
            with psycopg.connect(url, autocommit=True) as conn:
                for turns in TURNS:
                    cid = conversation(conn, gen, turns)
                    queued = store.enqueue(conn, cid, "cli")
                    assert queued is not None
                    t0 = time.perf_counter()
                    result = runner.run(ctx, queued.id)
                    took = time.perf_counter() - t0
                    if result.get("status") == "failed":
                        raise SystemExit(f"analysis failed: {result['reason']}")
                    a = conn.execute("SELECT analysis FROM analyses WHERE id = %s", (queued.id,)).fetchone()
                    assert a is not None
                    f = a[0]["facts"]
                    ratio = f["condensed_tokens"] / f["source_tokens"]
                    rows.append(
                        f"{turns:>5} {f['request_count']:>8} {f['source_tokens']:>10,} "
                        f"{f['condensed_tokens']:>9,} "
                        f"{ratio:>6.3f} {f['chunks']:>6} {f['calls']:>5} {f['input_tokens']:>7,} "
                        f"{f['output_tokens']:>7,} {f['cost_usd']:>8.4f} {took:>6.2f}"
                    )
    finally:
        fake.stop()
    print_sections(
        [
            [
                f"Analysis cost and condensation ({args.model}, budget {args.budget:,} tokens per call; "
                "usage from the scripted upstream, sized by what is sent; prices from nexus.pricing)",
                *rows,
            ],
            [
                "source tok: the conversation's messages and answers as JSON, estimated at 4 characters a "
                "token; condensed: the transcript the model reads (all chunks). The scripted upstream's "
                "answer is short (~200 tokens); a real model writes more, so output cost is a floor."
            ],
        ]
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
