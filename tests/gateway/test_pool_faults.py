"""The pool under faults: a Claude Code process killed mid-turn, a client that goes away, more
conversations than sessions; and the opt-in response cache (on in this module's stack)."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from tests.gateway.conftest import Gateway, gateway_stack
from tests.support.fake_upstream import Reply, message_events, text_reply


@pytest.fixture(scope="module")
def small_pool(pg_server, fake_upstream, tmp_path_factory) -> Iterator[Gateway]:
    env = {
        "NEXUS_GATEWAY_MAX_SESSIONS": "2",
        "NEXUS_GATEWAY_QUEUE_SIZE": "0",
        "NEXUS_GATEWAY_WARM_SPARES": "0",
        "NEXUS_GATEWAY_CACHE_ENABLED": "true",
        "NEXUS_GATEWAY_CACHE_TTL_S": "600",
        "NEXUS_GATEWAY_IDLE_TIMEOUT_S": "3",
    }
    with gateway_stack(pg_server, fake_upstream, tmp_path_factory.mktemp("gwpool"), env) as g:
        yield g


def _cli_serving(session_id: str) -> int:
    """The Claude Code process whose working directory is that session's."""
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cwd = os.readlink(f"/proc/{pid}/cwd")
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if cwd.endswith(session_id) and b"claude" in cmd:
            return int(pid)
    raise AssertionError(f"no Claude Code process for session {session_id}")


def _wait_request(upstream, n: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while len(upstream.messages_requests()) < n:
        assert time.monotonic() < deadline, "the upstream was not called"
        time.sleep(0.02)


def test_a_process_killed_before_answering_is_replaced_and_the_turn_retried(small_pool: Gateway, upstream):
    upstream.enqueue(text_reply("never sent", first_byte_delay_s=30), text_reply("Answered on retry."))
    result: dict = {}

    def ask() -> None:
        result["r"] = small_pool.client(timeout=60).chat.completions.create(
            model="sonnet", messages=[{"role": "user", "content": "kill me"}]
        )

    t = threading.Thread(target=ask)
    t.start()
    _wait_request(upstream, 1)
    os.kill(_cli_serving(upstream.messages_requests()[0].header("x-claude-code-session-id")), signal.SIGKILL)
    t.join(60)
    assert result["r"].choices[0].message.content == "Answered on retry."
    stats = small_pool.stats()
    assert stats["retries"] == 1 and stats["worker_failures"] >= 1


def test_a_process_killed_mid_answer_ends_the_stream_with_a_clear_error(small_pool: Gateway, upstream):
    upstream.enqueue(
        Reply(events=message_events([{"type": "text", "text": "one two three four"}], split=4), delay_s=2)
    )
    stream = small_pool.client(timeout=60).chat.completions.create(
        model="sonnet", messages=[{"role": "user", "content": "stream then die"}], stream=True
    )
    got = []
    with pytest.raises(openai.APIError) as info:
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                got.append(chunk.choices[0].delta.content)
                if len(got) == 1:
                    session = upstream.messages_requests()[-1].header("x-claude-code-session-id")
                    os.kill(_cli_serving(session), signal.SIGKILL)
    assert len(got) == 1 and "one two three four".startswith(got[0])
    assert "Claude Code session failed" in str(info.value)


def test_a_client_that_disconnects_frees_its_session(small_pool: Gateway, upstream):
    upstream.enqueue(
        Reply(events=message_events([{"type": "text", "text": "a b c d e f"}], split=6), delay_s=2)
    )
    before = small_pool.stats()["interrupted"]
    stream = small_pool.client(timeout=60).chat.completions.create(
        model="sonnet", messages=[{"role": "user", "content": "I will hang up"}], stream=True
    )
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            break
    stream.close()
    hung_up = time.monotonic()
    stats = small_pool.wait_idle(timeout=8)
    assert stats["pool"]["busy"] == 0 and time.monotonic() - hung_up < 8  # not the 10 s of the answer
    assert stats["interrupted"] == before + 1


def test_more_conversations_than_sessions_get_429_with_retry_after(small_pool: Gateway, upstream):
    upstream.enqueue(*(text_reply("slow", first_byte_delay_s=4) for _ in range(2)))
    done: list = []

    def ask(n: int) -> None:
        done.append(
            small_pool.client(timeout=60).chat.completions.create(
                model="sonnet", messages=[{"role": "user", "content": f"hold {n}"}]
            )
        )

    threads = [threading.Thread(target=ask, args=(n,)) for n in range(2)]
    for t in threads:
        t.start()
    _wait_request(upstream, 2)
    with pytest.raises(openai.RateLimitError) as info:
        small_pool.client().chat.completions.create(
            model="sonnet", messages=[{"role": "user", "content": "third"}]
        )
    assert info.value.response.headers["retry-after"] == "5"
    assert info.value.body["type"] == "rate_limit_error"
    for t in threads:
        t.join(60)
    assert len(done) == 2
    assert small_pool.stats()["rejected"] >= 1


def test_the_same_question_again_is_answered_from_the_cache(small_pool: Gateway, upstream):
    client = small_pool.client()
    ask = {
        "model": "haiku",
        "messages": [{"role": "system", "content": "Cache me."}, {"role": "user", "content": "2+2?"}],
    }
    upstream.enqueue(text_reply("4"))
    first = client.chat.completions.with_raw_response.create(**ask)
    assert first.headers["x-nexus-cache"] == "miss" and first.parse().choices[0].message.content == "4"
    again = client.chat.completions.with_raw_response.create(**ask)
    assert again.headers["x-nexus-cache"] == "hit" and again.parse().choices[0].message.content == "4"
    stream = client.chat.completions.create(**ask, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "4"
    assert len(upstream.messages_requests()) == 1  # only the first one ran a turn
    upstream.enqueue(text_reply("four"))
    bypass = client.chat.completions.with_raw_response.create(**ask, extra_headers={"x-nexus-cache": "no"})
    assert bypass.parse().choices[0].message.content == "four" and "x-nexus-cache" not in bypass.headers
    stats = small_pool.stats()
    assert stats["cache_hits"] == 2 and stats["cache_misses"] >= 1


def test_an_idle_session_is_recycled_and_its_conversation_resumed_from_the_store(
    small_pool: Gateway, upstream
):
    client = small_pool.client()
    history = [
        {"role": "system", "content": "Remember things."},
        {"role": "user", "content": "The word is 'heron'."},
    ]
    first = client.chat.completions.create(model="sonnet", messages=history)
    history += [{"role": "assistant", "content": first.choices[0].message.content}]
    before = small_pool.stats()
    deadline = time.monotonic() + 30
    while small_pool.stats()["pool"]["workers"]:  # idle for 3 s: every process is stopped (no spares here)
        assert time.monotonic() < deadline, "the idle session was not recycled"
        time.sleep(0.5)
    history += [{"role": "user", "content": "What was the word?"}]
    second = client.chat.completions.create(model="sonnet", messages=history)
    assert second.choices[0].message.content.endswith("What was the word?")
    assert small_pool.stats()["resumes"] == before["resumes"] + 1
    body = upstream.messages_requests()[-1].json()
    roles = [m["role"] for m in body["messages"] if m["role"] != "system"]
    assert roles == ["user", "assistant", "user"]  # the history came back from the store, not resent
    assert "heron" in json.dumps(body["messages"][0])
    first_session = upstream.messages_requests()[0].header("x-claude-code-session-id")
    assert upstream.messages_requests()[-1].header("x-claude-code-session-id") == first_session
