"""Memory for the gateway, driven by the official `openai` SDK against `nexus dev`, with the real
Claude Code CLI as the engine and the scripted upstream recording what Claude Code sent: a fact from
yesterday's conversation reaches today's prompt in a marked block; another user's (or team's) turns
never do, unless the team shares; bad input gets OpenAI-shaped errors."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import openai
import psycopg
import pytest
from nexus.access import AccessStore, parse_key_id
from nexus.secret_store import LocalSecretStore

from tests.gateway.conftest import TEAM_KEY, Gateway
from tests.support.fake_upstream import Reply, message_events, text_reply, tool_use_block
from tests.support.stack import Stack, running_stack

CWD = "/home/ada/src/billing"


@dataclass
class Team:
    stack: Stack
    keys: dict[str, str]  # user -> Nexus key
    notes: Path  # a directory Claude Code's Read tool may read

    def gateway(self, user: str) -> Gateway:
        return Gateway(self.stack, self.keys[user])

    def client(self, user: str | None, **headers: str) -> openai.OpenAI:
        return openai.OpenAI(
            base_url=self.stack.gateway_url,
            api_key=self.keys[user] if user else "no-key",
            max_retries=0,
            default_headers=headers or None,
        )

    def search(self, user: str | None, **params: Any) -> dict[str, Any]:
        return self.client(user).get("/memory/search", cast_to=object, options={"params": params})  # type: ignore[return-value]

    def access(self) -> AccessStore:
        return AccessStore(LocalSecretStore.in_data_dir(self.stack.data_dir))

    def sql(self, query: str, *args: Any) -> list[tuple]:
        with psycopg.connect(self.stack.database_url, autocommit=True) as conn:
            cur = conn.execute(query, args)
            return cur.fetchall() if cur.description else []


@pytest.fixture(scope="module")
def team(pg_server, fake_upstream, tmp_path_factory) -> Iterator[Team]:
    """Team "gw" (ada, bob; memory on) and team "rival" (eve; memory on), in one `nexus dev`."""
    root = tmp_path_factory.mktemp("gwmem")
    notes = root / "notes"
    notes.mkdir()
    (notes / "staging.md").write_text("# Staging\n\nThe staging database is orca-7.\n")
    keys: dict[str, str] = {}

    def before(s: Stack) -> None:
        # What `nexus keys create` and `nexus teams set-mode|set-api-key|set-memory` do, in-process (a
        # CLI start each costs a second; the tests below drive the memory commands through the CLI).
        access = AccessStore(LocalSecretStore.in_data_dir(s.data_dir))
        for t, user in (("gw", "ada"), ("gw", "bob"), ("gw", "cat"), ("rival", "eve")):
            keys[user] = access.create_key(t, user)[0]
        for t in ("gw", "rival"):
            access.set_team(t, "team-key")
            access.set_team_api_key(t, TEAM_KEY)
            access.set_team_memory(t, "on")

    env = {
        "NEXUS_GATEWAY_WARM_SPARES": "1",
        "NEXUS_GATEWAY_BUILTIN_TOOLS": '["Read"]',
        "NEXUS_GATEWAY_EXTRA_DIRS": json.dumps([str(notes)]),
    }
    with running_stack(
        pg_server, fake_upstream, root / "nexus", env=env, gateway=True, before_start=before
    ) as s:
        yield Team(s, keys, notes)


def _sent_prompt(upstream, n: int = -1) -> list[dict]:
    """The content blocks of the last user message Claude Code sent upstream in request ``n``."""
    body = upstream.messages_requests()[n].json()
    user = [m for m in body["messages"] if m["role"] == "user"][-1]
    content = user["content"]
    return [{"type": "text", "text": content}] if isinstance(content, str) else content


def _ask(client: openai.OpenAI, messages: list[dict], **kw: Any) -> tuple[Any, dict[str, str]]:
    raw = client.chat.completions.with_raw_response.create(model="sonnet", messages=messages, **kw)
    return raw.parse(), {k.lower(): v for k, v in raw.headers.items()}


def _wait(predicate, timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


def test_a_fact_from_yesterdays_conversation_is_recalled_into_todays_prompt(team: Team, upstream):
    ada = team.client("ada", **{"X-Nexus-Cwd": CWD})
    # Yesterday: Claude Code reads the notes with its Read tool, and answers.
    read = tool_use_block("Read", {"file_path": str(team.notes / "staging.md")})
    upstream.enqueue(
        Reply(events=message_events([read], stop_reason="tool_use")),
        text_reply("Noted: the staging database is called orca-7."),
    )
    yesterday_q = [
        {"role": "user", "content": "Read the staging notes: what is our staging database called?"}
    ]
    r, headers = _ask(ada, yesterday_q)
    assert r.choices[0].message.content == "Noted: the staging database is called orca-7."
    assert headers["x-nexus-memory-injected"] == "0"  # memory is on; nothing to recall yet
    yesterdays_conv = r.model_extra["conversation_id"]

    found = team.search("ada", q="staging database name")["data"]
    (item,) = found
    assert item["conversation_id"] == yesterdays_conv and item["user"] == "ada" and item["cwd"] == CWD
    assert item["files"] == [str(team.notes / "staging.md")]  # named by Claude Code's Read call
    assert "orca-7" in item["answer"] and "staging notes" in item["prompt"]
    # It happened yesterday.
    team.sql("UPDATE gateway_memory SET created_at = created_at - interval '1 day' WHERE id = %s", item["id"])
    yesterday = datetime.now(UTC) - timedelta(days=1)

    # Today, in a new conversation from the same directory.
    upstream.reset()
    upstream.enqueue(text_reply("It is orca-7."))
    r, headers = _ask(ada, [{"role": "user", "content": "Which name does the staging database have?"}])
    assert r.choices[0].message.content == "It is orca-7."
    assert headers["x-nexus-memory-injected"] == "1" and headers["x-nexus-memory-items"] == item["id"]
    block, asked = _sent_prompt(upstream)[:2]
    assert asked["text"] == "Which name does the staging database have?"  # the user's words, after it
    text = block["text"]
    assert text.startswith("<nexus-memory>") and text.rstrip().endswith("</nexus-memory>")
    assert "the staging database is called orca-7" in text
    assert f'conversation="{yesterdays_conv}"' in text and f'id="{item["id"]}"' in text
    assert f'date="{yesterday:%Y-%m-%d}' in text and f'cwd="{CWD}"' in text
    assert 'relevance="0.' in text and "staging.md" in text
    todays_conv = r.model_extra["conversation_id"]

    # Its score, as the search shows it: yesterday's recency, the same directory, the text.
    listed = team.search("ada", q="Which name does the staging database have?", cwd=CWD)["data"]
    (scored,) = [i for i in listed if i["id"] == item["id"]]
    assert scored["scores"]["cwd"] == 1.0
    assert scored["scores"]["recency"] == pytest.approx(math.exp(-1), abs=0.01)
    assert scored["scores"]["text"] > 0.3 and scored["score"] >= 0.3

    # The conversation's own turns are never recalled into it: the next turn (streamed, the client
    # resending its history) gets yesterday's item again, not today's first turn, which matches too.
    _wait(lambda: len(team.search("ada", q="staging database name", min_score=0)["data"]) == 2)
    upstream.reset()
    upstream.enqueue(text_reply("Still orca-7."))
    history = [
        {"role": "user", "content": "Which name does the staging database have?"},
        {"role": "assistant", "content": "It is orca-7."},
        {"role": "user", "content": "Sure about the staging database name?"},
    ]
    raw = ada.chat.completions.with_raw_response.create(model="sonnet", messages=history, stream=True)
    assert raw.headers["x-nexus-memory-items"] == item["id"]
    assert "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices) == "Still orca-7."
    blocks = _sent_prompt(upstream)
    assert sum("<nexus-memory>" in b.get("text", "") for b in blocks) == 1
    assert todays_conv not in blocks[0]["text"]

    # The conversation as the API lists it shows what the user wrote, not the injected block.
    conv = ada.get(f"/conversations/{todays_conv}", cast_to=object)
    user_texts = [m["content"] for m in conv["messages"] if m["role"] == "user"]
    assert user_texts[0] == "Which name does the staging database have?"
    assert not any("nexus-memory" in (t or "") for t in user_texts)


def test_another_users_or_teams_memory_is_never_seen_unless_the_team_shares(team: Team, upstream):
    fact = "The deploy passphrase hint is blue-falcon."
    upstream.enqueue(text_reply(f"Got it. {fact}"))
    _ask(team.client("ada"), [{"role": "user", "content": f"Remember for later: {fact}"}])
    adas = _wait(lambda: team.search("ada", q="deploy passphrase hint")["data"])
    assert [i["user"] for i in adas] == ["ada"]
    question = [{"role": "user", "content": "What is the deploy passphrase hint?"}]

    # Bob, her teammate, and Eve, of another team, ask: nothing of Ada's is recalled or listed.
    for user in ("bob", "eve"):
        upstream.reset()
        upstream.enqueue(text_reply("I do not know."))
        _, headers = _ask(team.client(user), question)
        assert headers["x-nexus-memory-injected"] == "0" and "x-nexus-memory-items" not in headers
        assert not any("nexus-memory" in b.get("text", "") for b in _sent_prompt(upstream))
        assert "blue-falcon" not in upstream.messages_requests()[-1].body.decode()
        # What they can search is their own question, remembered for them alone.
        own = _wait(lambda u=user: team.search(u, q="deploy passphrase hint", min_score=0)["data"])
        assert [i["user"] for i in own] == [user]

    # The team turns sharing on: Bob now recalls Ada's turn (marked as hers); Eve still never does.
    assert team.stack.nexus("teams", "set-memory", "gw", "--sharing", "on").returncode == 0
    try:
        shared = _wait(
            lambda: [i for i in team.search("bob", q="deploy passphrase hint")["data"] if i["user"] == "ada"]
        )
        assert [i["id"] for i in shared] == [adas[0]["id"]]
        upstream.reset()
        upstream.enqueue(text_reply("blue-falcon"))
        _, headers = _ask(team.client("bob"), question)
        assert adas[0]["id"] in headers["x-nexus-memory-items"].split(",")
        block = _sent_prompt(upstream)[0]["text"]
        assert "blue-falcon" in block and 'user="ada"' in block
        assert all(
            i["user"] == "eve" for i in team.search("eve", q="deploy passphrase hint", min_score=0)["data"]
        )
        upstream.reset()
        upstream.enqueue(text_reply("Still do not know."))
        _ask(team.client("eve"), question)
        assert "blue-falcon" not in upstream.messages_requests()[-1].body.decode()
    finally:
        team.access().set_team_memory("gw", sharing=False)


def test_memory_is_per_request_per_key_and_bad_input_is_refused_in_openais_shape(team: Team, upstream):
    cat_id = parse_key_id(team.keys["cat"])
    listed = team.stack.nexus("keys", "set-memory", cat_id, "per-request")
    assert listed.returncode == 0 and "memory per-request" in listed.stdout
    time.sleep(1.1)  # the gateway reads access settings again within a second
    cat = team.client("cat")
    upstream.enqueue(text_reply("The cache TTL is 90 s."), text_reply("90 s."))
    # Not asked: remembered, not recalled (no memory headers).
    _, headers = _ask(cat, [{"role": "user", "content": "The cache TTL is 90 seconds, remember."}])
    assert "x-nexus-memory-injected" not in headers
    # Asked in the body of a Responses request (chat takes it too, and the header): recalled.
    raw = cat.responses.with_raw_response.create(
        model="sonnet", input="What is the cache TTL?", extra_body={"nexus_memory": True}
    )
    assert raw.parse().output_text == "90 s." and raw.headers["x-nexus-memory-injected"] == "1"
    assert "90 seconds" in _sent_prompt(upstream)[0]["text"]

    # A key whose memory is off cannot ask for it; a caller without a key has none.
    team.access().set_key_memory(cat_id, "off")
    time.sleep(1.1)
    with pytest.raises(openai.PermissionDeniedError) as denied:
        _ask(cat, [{"role": "user", "content": "x"}], extra_headers={"X-Nexus-Memory": "on"})
    assert denied.value.body["type"] == "permission_error" and "set-memory" in denied.value.body["message"]
    with pytest.raises(openai.PermissionDeniedError):
        team.search("cat", q="cache")
    with pytest.raises(openai.PermissionDeniedError) as open_caller:
        team.search(None, q="cache")
    assert "Nexus key" in open_caller.value.body["message"]

    ada = team.client("ada")
    bad_requests = [
        lambda: team.search("ada"),
        lambda: team.search("ada", q="   "),
        lambda: team.search("ada", q="x", limit=0),
        lambda: team.search("ada", q="x", min_score=2),
        lambda: team.search("ada", q="x" * 5000),
        lambda: _ask(ada, [{"role": "user", "content": "x"}], extra_headers={"X-Nexus-Memory": "maybe"}),
        lambda: _ask(ada, [{"role": "user", "content": "x"}], extra_body={"nexus_memory": "sometimes"}),
        lambda: _ask(ada, [{"role": "user", "content": "x"}], extra_headers={"X-Nexus-Cwd": "/a\tb"}),
    ]
    for call in bad_requests:
        with pytest.raises(openai.BadRequestError) as bad:
            call()
        assert bad.value.body["type"] == "invalid_request_error" and bad.value.body["message"]
    with pytest.raises(openai.BadRequestError) as missing:
        team.search("ada")
    assert missing.value.body["param"] == "q" and missing.value.body["code"] == "missing_required_parameter"

    # Forgetting: one's own item only; a teammate's id is not found.
    (own,) = team.search("ada", q="deploy passphrase hint")["data"][:1]
    with pytest.raises(openai.NotFoundError):
        team.client("bob").delete(f"/memory/{own['id']}", cast_to=object)
    assert ada.delete(f"/memory/{own['id']}", cast_to=object) == {
        "id": own["id"],
        "object": "memory.item.deleted",
        "deleted": True,
    }
    assert own["id"] not in [
        i["id"] for i in team.search("ada", q="deploy passphrase hint", min_score=0)["data"]
    ]


def test_a_team_keeps_memory_for_its_set_days_then_it_is_never_recalled_and_is_deleted(team: Team, upstream):
    """`nexus teams set-memory rival --keep-days 30`: a turn from 40 days ago is no longer found or
    injected, and the team's next remembered turn deletes it; a recent turn stays."""
    team.sql(
        "INSERT INTO gateway_memory (id, team, user_id, key_id, conversation_id, state_key, prompt, answer,"
        " created_at) VALUES ('mem_old', 'rival', 'eve', 'k', 'conv_old', '\\x00', %s, %s,"
        " now() - interval '40 days')",
        "What is the vault unlock phrase?",
        "The vault unlock phrase is amber-walrus.",
    )
    try:
        found = _wait(lambda: team.search("eve", q="vault unlock phrase")["data"])
        assert [i["id"] for i in found] == ["mem_old"]  # kept for good until the team says otherwise
        done = team.stack.nexus("teams", "set-memory", "rival", "--keep-days", "30")
        assert done.returncode == 0 and "kept 30 days" in done.stdout
        time.sleep(1.1)  # the gateway reads access settings again within a second
        assert team.search("eve", q="vault unlock phrase", min_score=0)["data"] == []
        upstream.reset()
        upstream.enqueue(text_reply("I do not know the vault phrase."))
        _, headers = _ask(
            team.client("eve"), [{"role": "user", "content": "What is the vault unlock phrase?"}]
        )
        assert headers["x-nexus-memory-injected"] == "0"
        assert "amber-walrus" not in upstream.messages_requests()[-1].body.decode()
        # Her turn is remembered, and remembering it applied the team's retention.
        assert _wait(lambda: not team.sql("SELECT 1 FROM gateway_memory WHERE id = 'mem_old'"))
        [(vault_turns,)] = team.sql(
            "SELECT count(*) FROM gateway_memory WHERE team = 'rival' AND prompt LIKE %s", "%vault%"
        )
        assert vault_turns == 1  # hers, just now
        bad = team.stack.nexus("teams", "set-memory", "rival", "--keep-days", "-3")
        assert bad.returncode != 0 and "give 1 to 36500, or 'forever'" in bad.stderr
    finally:
        team.access().set_team_memory("rival", keep_days=0)
        team.sql("DELETE FROM gateway_memory WHERE id = 'mem_old'")
