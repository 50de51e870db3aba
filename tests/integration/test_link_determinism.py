"""Linking gives one tree whatever order records arrive in: two sub-agents started with the same
prompt in one turn, and a side request sent before the session's first turn, ingested in time order,
reversed, shuffled, one per batch and all in one batch, and again."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from nexus.db.migrate import migrate
from nexus.db.records import KnownHashes
from nexus.record import RawRecord
from nexus_ingest.pipeline import ingest_batch

from tests.support.fake_upstream import message_events

SESSION = "5e55e55e-0000-4000-8000-000000000001"
T0 = 1_780_000_000.0
PROMPT = "Count the files in the repository and report the number."
TOOLS = [
    {"name": "Agent", "description": "Delegate", "input_schema": {"type": "object", "properties": {}}},
    {"name": "Bash", "description": "Run", "input_schema": {"type": "object", "properties": {}}},
]


def _record(
    n: int, at: float, messages: list[dict[str, Any]], blocks: list[dict[str, Any]] | None, **kw: Any
) -> RawRecord:
    path = kw.pop("path", "/v1/messages")
    headers = [["x-claude-code-session-id", SESSION], ["content-type", "application/json"]]
    if agent := kw.pop("agent", None):
        headers.append(["x-claude-code-agent-id", agent])
    body = {"model": "claude-opus-5-5", "max_tokens": 100, "messages": messages, "tools": TOOLS}
    if blocks is not None:
        body["stream"] = True
    return RawRecord(
        id=f"00000000-0000-7000-8000-{n:012d}",
        received_at=at,
        method="POST",
        path=path,
        query="beta=true",
        request_headers=headers,
        status=200,
        response_headers=[
            ["content-type", "text/event-stream" if blocks is not None else "application/json"]
        ],
        ttfb_ms=1.0,
        duration_ms=2.0,
        team="web",
        user="ann",
        request_body=json.dumps(body).encode(),
        response_body=b"".join(message_events(blocks)) if blocks is not None else b'{"input_tokens": 12}',
    )


def _tool(tool_id: str, name: str, input_: dict[str, Any]) -> dict[str, Any]:
    return {"type": "tool_use", "id": tool_id, "name": name, "input": input_}


def _user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": [{"type": "text", "text": text}]}


def records() -> list[RawRecord]:
    """Time order: a count_tokens before any turn; a turn starting two sub-agents with one prompt;
    each sub-agent's two requests (a1 starts first); the turn that gets their results."""
    calls = [
        _tool("toolu_first", "Agent", {"description": "count", "prompt": PROMPT}),
        _tool("toolu_second", "Agent", {"description": "count", "prompt": PROMPT}),
    ]
    first_turn = [_user("How many files are there? Ask two helpers.")]
    out = [
        _record(1, T0, [_user("hi")], None, path="/v1/messages/count_tokens"),
        _record(2, T0 + 1, first_turn, [{"type": "text", "text": "Asking."}, *calls]),
    ]
    for n, (agent, at, answer) in enumerate((("a1", T0 + 2, "12"), ("a2", T0 + 2.5, "13")), start=3):
        tool = [_tool(f"toolu_ls_{agent}", "Bash", {"command": "ls | wc -l"})]
        out.append(_record(n, at, [_user(PROMPT)], tool, agent=agent))
        history = [
            _user(PROMPT),
            {"role": "assistant", "content": tool},
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": tool[0]["id"], "content": answer}],
            },
        ]
        out.append(
            _record(n + 2, at + 1, history, [{"type": "text", "text": f"{answer} files"}], agent=agent)
        )
    results = [
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": c["id"], "content": "12"}]}
        for c in calls
    ]
    second = [*first_turn, {"role": "assistant", "content": [{"type": "text", "text": "Asking."}, *calls]}]
    out.append(_record(7, T0 + 5, second + results, [{"type": "text", "text": "12 or 13."}]))
    return out


def _tree(url: str) -> dict[str, tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT id::text, conversation_id::text, parent_request_id::text, link, branch, task_tool_use_id"
            " FROM requests ORDER BY id"
        ).fetchall()
    return {r[0]: r[1:] for r in rows}


def _ingest(url: str, batches: list[list[RawRecord]]) -> dict[str, tuple[Any, ...]]:
    migrate(url)
    known = KnownHashes()
    with psycopg.connect(url) as conn:
        for batch in batches:
            ingest_batch(conn, batch, known)
            conn.commit()
    return _tree(url)


def _shuffled(seed: int) -> Callable[[list[RawRecord]], list[list[RawRecord]]]:
    return lambda rs: [[r] for r in random.Random(seed).sample(rs, len(rs))]


ORDERS: dict[str, Callable[[list[RawRecord]], list[list[RawRecord]]]] = {
    "time order": lambda rs: [[r] for r in rs],
    "one batch": lambda rs: [rs],
    "reversed": lambda rs: [[r] for r in reversed(rs)],
    "sub-agents swapped": lambda rs: [[r] for r in (rs[0], rs[1], rs[3], rs[4], rs[2], rs[5], rs[6])],
    **{f"shuffled {seed}": _shuffled(seed) for seed in (1, 2, 3, 4, 5)},
}


@pytest.fixture(scope="module")
def expected(pg_server) -> dict[str, tuple[Any, ...]]:
    from tests.support import pg

    return _ingest(pg.create_database(pg_server.get_uri()), [[r] for r in records()])


def test_the_tree_in_time_order_is_the_one_users_expect(expected) -> None:
    ids = {n: f"00000000-0000-7000-8000-{n:012d}" for n in range(1, 8)}
    conv = expected[ids[2]][0]
    assert {row[0] for row in expected.values()} == {conv}  # one conversation, the side request too
    side = expected[ids[1]]
    assert side[2] == "side" and side[1] == ids[2]  # sent before the first turn: attached to it
    a1, a2 = expected[ids[3]], expected[ids[4]]
    assert (a1[2], a2[2]) == ("subtask", "subtask") and a1[1] == a2[1] == ids[2]
    # the earlier sub-agent takes the first call, each keeps its branch for its next request
    assert (a1[4], a2[4]) == ("toolu_first", "toolu_second") and a1[3] != a2[3]
    assert expected[ids[5]][3] == a1[3] and expected[ids[6]][3] == a2[3]


@pytest.mark.parametrize("order", list(ORDERS))
def test_every_arrival_order_gives_the_same_tree(order, expected, database_url) -> None:
    assert _ingest(database_url, ORDERS[order](records())) == expected
