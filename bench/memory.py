"""What memory adds before a gateway turn: the recall (the current conversation's lookup and the scored
full-text query) on an index of 10 000 remembered turns, against the lookup every turn already makes
(the gateway's state store finding the session that holds a history), measured in the same run.

    make bench-memory                 # 10 000 turns, 300 recalls per case
    make bench-memory ARGS=--quick    # 2 000 turns, 60 recalls per case

An embedded PostgreSQL in a temporary directory, migrated; turns of 3 teams x 10 users with prose
and code-like text (bench.lib.traffic.Text), spread over 30 days, 3 working directories per user and a
few files each; as many gateway states. Queries are 4 to 14 words cut from the same text.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import random
import time
from datetime import UTC, datetime, timedelta

import psycopg
from nexus.db.migrate import migrate
from nexus.memory.scoring import Weights
from nexus.memory.store import MemoryStore, Query
from nexus_gateway.engine.state import PostgresState
from psycopg_pool import AsyncConnectionPool

from bench.lib import report, stats
from bench.lib.traffic import Text
from tests.support import pg

TEAMS = ("platform", "data", "mobile")
USERS = 10
NOW = datetime.now(UTC)


def _key(i: int) -> bytes:
    return hashlib.sha256(f"state-{i}".encode()).digest()


def fill(url: str, turns: int, text: Text, rng: random.Random) -> None:
    """``turns`` remembered turns and as many gateway states, with COPY."""
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        with cur.copy(
            "COPY gateway_memory (id, team, user_id, key_id, conversation_id, state_key, cwd, files,"
            " prompt, answer, created_at) FROM STDIN"
        ) as copy:
            for i in range(turns):
                team = TEAMS[i % len(TEAMS)]
                user = f"u{rng.randrange(USERS)}"
                cwd = f"/src/{team}/{user}/proj{rng.randrange(3)}"
                files = [f"{cwd}/{text.words(1, 12).replace(' ', '_')}.py" for _ in range(rng.randrange(4))]
                answer = text.words(80, 1500) + ("\n" + text.lines(40, 600) if rng.random() < 0.4 else "")
                copy.write_row(
                    (
                        f"mem_{i:024x}",
                        team,
                        user,
                        f"k_{user}",
                        f"conv_{i // 4:08d}",  # four turns per conversation
                        _key(i),
                        cwd,
                        files,
                        text.words(20, 300),
                        answer,
                        NOW - timedelta(minutes=rng.randrange(30 * 24 * 60)),
                    )
                )
        with cur.copy(
            "COPY gateway_states (key, session_id, conversation_id, config_key, project) FROM STDIN"
        ) as copy:
            for i in range(turns):
                copy.write_row((_key(i), f"s{i // 4}", f"conv_{i // 4:08d}", "cfg", f"p{i // 4}"))
        conn.commit()
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE gateway_memory")
        conn.execute("VACUUM ANALYZE gateway_states")


async def measure(url: str, runs: int, turns: int, text: Text, rng: random.Random) -> dict[str, list[float]]:
    async with AsyncConnectionPool(url, min_size=1, max_size=2, open=False) as pool:
        state, store = PostgresState(pool), MemoryStore(pool)
        times: dict[str, list[float]] = {"baseline": [], "own": [], "shared": []}

        async def one(case: str) -> None:
            history = [_key(rng.randrange(turns)) for _ in range(9)] + [b"new" * 8]
            t0 = time.perf_counter()
            if case == "baseline":  # what every turn does: the longest known prefix of its history
                await state.find(history[:-1])
            else:
                exclude, files = await store.current(history, None)
                team = rng.choice(TEAMS)
                q = Query(
                    text.words(20, 90),
                    team,
                    f"u{rng.randrange(USERS)}",
                    shared=case == "shared",
                    cwd=f"/src/{team}/u1/proj0",
                    files=files,
                    exclude=exclude,
                )
                await store.recall(q, Weights(), 0.3, 5, 1500)
            times[case].append((time.perf_counter() - t0) * 1000)

        for _ in range(max(10, runs // 10)):  # warm-up: connections, plans, caches
            for case in times:
                await one(case)
        for v in times.values():
            v.clear()
        for _ in range(runs):
            for case in times:  # interleaved, so drift hits every case alike
                await one(case)
        return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="2 000 turns, 60 recalls per case")
    ap.add_argument("--turns", type=int, help="remembered turns (default 10 000)")
    ap.add_argument("--runs", type=int, help="recalls per case (default 300)")
    args = ap.parse_args()
    turns = args.turns or (2_000 if args.quick else 10_000)
    runs = args.runs or (60 if args.quick else 300)
    rng = random.Random(24)
    text = Text(rng)
    with pg.temporary_server("nexus-bench-memory-") as server:
        url = pg.create_database(server.get_uri())
        migrate(url)
        t0 = time.perf_counter()
        fill(url, turns, text, rng)
        filled = time.perf_counter() - t0
        with psycopg.connect(url) as conn:
            size = conn.execute("SELECT pg_total_relation_size('gateway_memory')").fetchone()
        times = asyncio.run(measure(url, runs, turns, text, rng))

    base = stats.pct(times["baseline"], 50)
    lines = [
        f"Memory recall on {turns} remembered turns ({turns / filled:,.0f} turns/s indexed, "
        f"{(size[0] if size else 0) / turns / 1024:.1f} KiB per turn with its indexes), {runs} per case",
        f"  {'case':<34} {'p50 ms':>8} {'p95 ms':>8} {'x baseline p50':>15}",
    ]
    names = {
        "baseline": "state lookup (every turn, baseline)",
        "own": "recall, own turns",
        "shared": "recall, team sharing",
    }
    for case, label in names.items():
        p50, p95 = stats.pct(times[case], 50), stats.pct(times[case], 95)
        lines.append(f"  {label:<34} {p50:8.2f} {p95:8.2f} {report.ratio(p50, base):15.1f}")
    own95, shared95 = stats.pct(times["own"], 95), stats.pct(times["shared"], 95)
    # A turn that recalls waits for it before Claude Code is asked; a warm turn's first token from the
    # real API takes about a second, of which memory should be a small part.
    checks: list[report.Check] = [
        ("recall p95, own turns", f"{own95:.1f} ms", "< 25 ms", own95 < 25),
        ("recall p95, team sharing", f"{shared95:.1f} ms", "< 100 ms", shared95 < 100),
    ]
    report.print_sections([lines, report.checks_table(checks)])


if __name__ == "__main__":
    main()
