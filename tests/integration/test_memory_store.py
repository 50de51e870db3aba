"""The memory index on the real PostgreSQL, with fixed turns at fixed times: recall measures the
factors nexus.memory.scoring defines, ranks by the score (exactly, though it reads few documents),
stays inside what the caller may read, and never returns the current conversation."""

from __future__ import annotations

import asyncio
import dataclasses
import math
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from nexus.db.migrate import migrate
from nexus.memory import scoring
from nexus.memory.scoring import Weights
from nexus.memory.store import Entry, MemoryStore, Query
from psycopg_pool import AsyncConnectionPool

NOW = datetime(2025, 6, 2, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)
FIXED = [
    # (id-ish label, team, user, conversation, hours ago, cwd, files, prompt, answer)
    (
        "orca",
        "gw",
        "ada",
        "conv_a",
        24,
        "/repo",
        ["/repo/db.py"],
        "What is the staging database called?",
        "The staging database is orca-7.",
    ),
    (
        "billing",
        "gw",
        "ada",
        "conv_b",
        2,
        "/repo/billing",
        ["/repo/billing/config.yaml"],
        "Which port does the billing service listen on?",
        "Port 8443, set in billing/config.yaml.",
    ),
    (
        "rounding",
        "gw",
        "ada",
        "conv_c",
        1,
        "/elsewhere",
        [],
        "Explain invoice rounding",
        "Invoices round half-even to cents in the billing module. " * 20,
    ),
    ("hello", "gw", "ada", "conv_d", 0, "/repo", [], "hello", "Hello! How can I help?"),
    (
        "bobs",
        "gw",
        "bob",
        "conv_e",
        3,
        "/repo",
        [],
        "Where is the staging database hosted?",
        "The staging database runs on host pg-staging-2.",
    ),
    (
        "rivals",
        "rival",
        "ada",
        "conv_f",
        3,
        "/repo",
        [],
        "What is the staging database password rotation?",
        "Rotated weekly for the staging database.",
    ),
]


def _run(coro):
    return asyncio.run(coro)


@pytest.fixture(scope="module")
def memory_db(pg_server):
    from tests.support import pg

    url = pg.create_database(pg_server.get_uri())
    migrate(url)

    async def fill() -> dict[str, str]:
        async with AsyncConnectionPool(url, min_size=1, max_size=2, open=False) as pool:
            store = MemoryStore(pool)
            ids = {}
            for label, team, user, conv, hours, cwd, files, prompt, answer in FIXED:
                ids[label] = await store.add(
                    Entry(
                        team,
                        user,
                        "k_" + user,
                        conv,
                        label.encode(),
                        prompt,
                        answer,
                        cwd,
                        files,
                        NOW - timedelta(hours=hours),
                    )
                )
            return ids

    return url, _run(fill())


SEED = Weights()


def _recall(url: str, q: Query, weights: Weights = SEED, min_score: float = 0.0, limit: int = 10):
    async def go():
        async with AsyncConnectionPool(url, min_size=1, max_size=1, open=False) as pool:
            return await MemoryStore(pool).recall(q, weights, min_score, limit, now=NOW)

    return _run(go())


def _labels(ids: dict[str, str], items) -> list[str]:
    back = {v: k for k, v in ids.items()}
    return [back[i.id] for i in items]


def test_the_factors_are_the_defined_ones_and_the_rank_is_the_score(memory_db):
    url, ids = memory_db
    q = Query(
        "what is the staging database called", "gw", "ada", cwd="/repo/", files=["/repo/db.py", "/repo/x.py"]
    )
    items = _recall(url, q)
    assert _labels(ids, items) == ["orca"]  # ada's own only: bob's and the other team's are not hers
    (orca,) = items
    f = orca.factors
    assert f.cwd == 1.0 and f.files == pytest.approx(scoring.jaccard(["/repo/db.py"], q.files)) == 0.5
    assert f.recency == pytest.approx(scoring.recency(24)) == pytest.approx(math.exp(-1))
    assert 0.5 < f.text < 1  # every word of the question, normalised into 0..1
    assert orca.score == pytest.approx(0.4 * f.text + 0.3 + 0.2 * 0.5 + 0.1 * math.exp(-1))
    assert orca.created_at == NOW - DAY and orca.cwd == "/repo" and orca.files == ["/repo/db.py"]


def test_a_subdirectory_is_half_a_match_and_unrelated_turns_are_not_candidates(memory_db):
    url, ids = memory_db
    items = _recall(url, Query("billing port", "gw", "ada", cwd="/repo"))
    assert _labels(ids, items) == ["billing", "rounding"]  # "hello", in /repo, shares no word
    billing, rounding = items
    assert billing.factors.cwd == 0.5 and rounding.factors.cwd == 0
    # Long and repetitive does not beat short and to the point (length-normalised rank).
    assert billing.factors.text > rounding.factors.text > 0
    assert billing.score > rounding.score


def test_sharing_opens_the_team_never_another_team(memory_db):
    url, ids = memory_db
    q = Query("staging database", "gw", "ada", shared=True)
    assert sorted(_labels(ids, _recall(url, q))) == ["bobs", "orca"]
    as_bob = Query("staging database", "gw", "bob")
    assert _labels(ids, _recall(url, as_bob)) == ["bobs"]
    assert _labels(ids, _recall(url, Query("staging database", "rival", "ada", shared=True))) == ["rivals"]


def test_the_threshold_the_limit_and_the_current_conversation(memory_db):
    url, ids = memory_db
    q = Query("billing invoice rounding port", "gw", "ada")
    assert _labels(ids, _recall(url, q)) == ["rounding", "billing"]
    assert _labels(ids, _recall(url, q, limit=1)) == ["rounding"]
    assert _recall(url, q, min_score=0.99) == []
    excluded = Query("billing invoice rounding port", "gw", "ada", exclude=["conv_c"])
    assert _labels(ids, _recall(url, excluded)) == ["billing"]


@pytest.mark.parametrize(
    "text", ["billing invoice rounding port", "staging database", "what is the staging database called"]
)
def test_recalling_a_few_gives_the_best_of_all(memory_db, text):
    url, _ = memory_db
    q = Query(text, "gw", "ada", shared=True, cwd="/repo")
    everything = _recall(url, q, limit=100)
    for k in (1, 2, 3):
        assert [i.id for i in _recall(url, q, limit=k)] == [i.id for i in everything[:k]]
    scores = [i.score for i in everything]
    assert scores == sorted(scores, reverse=True)


def test_a_query_of_stop_words_or_symbols_finds_only_by_files_and_never_breaks(memory_db):
    url, ids = memory_db
    assert _recall(url, Query("the and of", "gw", "ada")) == []
    by_file = _recall(url, Query("the", "gw", "ada", files=["/repo/billing/config.yaml"]))
    assert _labels(ids, by_file) == ["billing"] and by_file[0].factors.text == 0
    for odd in ["it's o'clock \\ back\\slash", "a:b & c | !d <-> (e)", "\x00 nul", "ü" * 5000]:
        _recall(url, Query(odd, "gw", "ada"))


def test_the_current_conversation_is_found_from_its_history_keys(memory_db):
    url, _ = memory_db

    async def go():
        async with AsyncConnectionPool(url, min_size=1, max_size=1, open=False) as pool:
            store = MemoryStore(pool)
            by_key = await store.current([b"orca", b"unknown"], None)
            by_id = await store.current([], "conv_x")
            return by_key, by_id

    (convs, files), (convs2, files2) = _run(go())
    assert convs == ["conv_a"] and files == ["/repo/db.py"]
    assert convs2 == ["conv_x"] and files2 == []
    with psycopg.connect(url) as conn:  # the index is searched through its GIN index
        conn.execute("SET enable_seqscan = off")
        plan = conn.execute(
            "EXPLAIN SELECT id FROM gateway_memory WHERE document @@ 'orca'::tsquery"
        ).fetchall()
    assert "gateway_memory_document" in "\n".join(r[0] for r in plan)


def test_a_teams_retention_hides_older_turns_and_adding_one_deletes_them(pg_server):
    from tests.support import pg

    url = pg.create_database(pg_server.get_uri())
    migrate(url)

    def entry(label: str, team: str, days_ago: int, keep: int | None = None) -> Entry:
        return Entry(team, "ada", "k", "c_" + label, label.encode(), f"staging database {label}",
                     "orca-7", created_at=NOW - days_ago * DAY, keep_days=keep)  # fmt: skip

    async def go() -> tuple[list[str], list[str], list[tuple]]:
        async with AsyncConnectionPool(url, min_size=1, max_size=1, open=False) as pool:
            store = MemoryStore(pool)
            for e in (entry("old", "gw", 40), entry("recent", "gw", 5), entry("theirs", "rival", 40)):
                await store.add(e)
            q = Query("staging database", "gw", "ada")
            kept_all = await store.recall(q, SEED, 0.0, 10, now=NOW)
            kept_30 = await store.recall(dataclasses.replace(q, keep_days=30), SEED, 0.0, 10, now=NOW)
            await store.add(entry("new", "gw", 0, keep=30))
            async with pool.connection() as conn:
                rows = await (
                    await conn.execute("SELECT team, prompt FROM gateway_memory ORDER BY 1, 2")
                ).fetchall()
            return [i.prompt for i in kept_all], [i.prompt for i in kept_30], rows

    kept_all, kept_30, rows = _run(go())
    assert sorted(kept_all) == ["staging database old", "staging database recent"]
    assert kept_30 == ["staging database recent"]
    assert rows == [
        ("gw", "staging database new"),
        ("gw", "staging database recent"),
        ("rival", "staging database theirs"),  # another team's retention is its own
    ]
