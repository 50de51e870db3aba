"""The gateway's AWS shape, run here (``tests.support.cloud``): the front (started by ``front.sh``,
as the Lambda Web Adapter starts it) in front of the router, in front of two workers started with
the container's own command (the Dockerfile's CMD). The only hop that differs from AWS is front ->
router, which is HTTP here and InvokeWithResponseStream there (``tests/unit/test_gateway_cloud.py``
covers that framing).

What a user of the gateway must see: a conversation stays on the worker holding it warm; when that
worker dies, the next turn lands on the other one and resumes from the session store with its
context; a stopping worker finishes its turn while new turns go elsewhere.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Iterator

import pytest
from nexus_gateway.cloud import routing

from tests.gateway.conftest import _make_key
from tests.support.cloud import Cloud, accepts, opening_key, running_cloud
from tests.support.fake_upstream import text_reply
from tests.support.stack import running_stack


@pytest.fixture(scope="module")
def cloud(pg_server, fake_upstream, tmp_path_factory) -> Iterator[Cloud]:
    root = tmp_path_factory.mktemp("gwcloud")
    keys: list[str] = []
    with (
        running_stack(
            pg_server, fake_upstream, root / "stack", before_start=lambda s: keys.append(_make_key(s))
        ) as stack,
        running_cloud(stack, keys[0], root, env={"NEXUS_GATEWAY_WARM_SPARES": "0"}) as c,
    ):
        yield c


@pytest.fixture
def both(cloud: Cloud) -> Cloud:
    """Both workers running (a test before may have killed or stopped one)."""
    for w in cloud.workers:
        if not w.alive:
            w.start()
    return cloud


def _turns(cloud: Cloud) -> dict[str, int]:
    return {w.name: w.stats()["turns"] for w in cloud.workers}


def test_a_responses_chain_stays_on_the_worker_holding_it(both: Cloud, upstream):
    client = both.client()
    before = _turns(both)
    first = client.responses.create(model="sonnet", input="Remember the colour teal.")
    key = routing.key_of_response(first.id)
    assert key is not None
    holder = both.holder(key)
    warm_before = holder.stats()["warm_hits"]
    second = client.responses.create(model="sonnet", input="Which colour?", previous_response_id=first.id)
    third = client.responses.create(model="sonnet", input="Again?", previous_response_id=second.id)
    assert routing.key_of_response(third.id) == key  # the chain keeps its route
    after = _turns(both)
    assert after[holder.name] - before[holder.name] == 3
    assert sum(after.values()) - sum(before.values()) == 3  # nothing went to the other worker
    assert holder.stats()["warm_hits"] - warm_before == 2  # and each follow-up found its session warm


def test_when_the_holder_dies_the_conversation_resumes_on_the_other_worker(both: Cloud, upstream):
    client = both.client()
    history = [
        {"role": "system", "content": "Remember things."},
        {"role": "user", "content": "The word is 'heron'."},
    ]
    first = client.chat.completions.create(model="sonnet", messages=history)
    history += [{"role": "assistant", "content": first.choices[0].message.content}]
    holder = both.holder(opening_key(both, history))
    other = next(w for w in both.workers if w is not holder)
    assert holder.stats()["turns"] >= 1

    # The holder dies in the middle of the next turn: that turn fails, and only that one.
    history += [{"role": "user", "content": "What was the word?"}]
    upstream.enqueue(text_reply("thinking about it " * 20, delay_s=0.5))
    seen = len(upstream.messages_requests())
    failed: list[BaseException] = []

    def slow_turn() -> None:
        try:
            stream = client.chat.completions.create(model="sonnet", messages=history, stream=True)
            for _ in stream:
                pass
        except Exception as exc:  # what the client sees of the turn in flight
            failed.append(exc)
        else:
            failed.append(AssertionError("the turn in flight finished"))

    t = threading.Thread(target=slow_turn)
    t.start()
    deadline = time.monotonic() + 30
    while len(upstream.messages_requests()) == seen:
        assert time.monotonic() < deadline, "the turn never reached the upstream"
        time.sleep(0.05)
    holder.kill()
    t.join(30)
    assert failed and not isinstance(failed[0], AssertionError), failed

    resumes = other.stats()["resumes"]
    again = client.chat.completions.create(model="sonnet", messages=history)  # the client retries
    assert again.choices[0].message.content.endswith("What was the word?")
    assert other.stats()["resumes"] == resumes + 1
    body = upstream.messages_requests()[-1].json()
    assert "heron" in json.dumps(body["messages"])  # the context came back from the store
    # and the conversation reads back whole from any worker (workspace_root: one path for all)
    conversation = client.conversations.retrieve(again.model_extra["conversation_id"])
    assert "heron" in json.dumps(conversation.model_extra["messages"])


def test_a_stopping_worker_finishes_its_turn_while_new_turns_go_elsewhere(both: Cloud, upstream):
    client = both.client()
    messages = [{"role": "user", "content": "Tell me a long story."}]
    holder = both.holder(opening_key(both, messages))
    other = next(w for w in both.workers if w is not holder)
    upstream.enqueue(text_reply("once upon a time " * 10, delay_s=0.4))
    seen = len(upstream.messages_requests())
    got: list[str] = []

    def long_turn() -> None:
        stream = client.chat.completions.create(model="sonnet", messages=messages, stream=True)
        got.append("".join(c.choices[0].delta.content or "" for c in stream if c.choices))

    t = threading.Thread(target=long_turn)
    t.start()
    deadline = time.monotonic() + 30
    while len(upstream.messages_requests()) == seen:
        assert time.monotonic() < deadline, "the turn never reached the upstream"
        time.sleep(0.05)
    assert holder.proc is not None
    holder.proc.send_signal(signal.SIGTERM)  # ECS stopping the task: its main process gets SIGTERM
    deadline = time.monotonic() + 10
    while accepts(holder.address):  # within a tick of its event loop it stops listening
        assert time.monotonic() < deadline, "the stopping worker kept listening"
        time.sleep(0.02)

    # A new conversation whose first choice is the stopping worker goes to the other one.
    n = 0
    while True:
        fresh = [{"role": "user", "content": f"A new question, number {n}."}]
        if both.holder(opening_key(both, fresh)) is holder:
            break
        n += 1
    before = other.stats()["turns"]
    reply = client.chat.completions.create(model="sonnet", messages=fresh)
    assert reply.choices[0].message.content.endswith(f"number {n}.")
    assert other.stats()["turns"] == before + 1

    t.join(60)
    assert got == ["once upon a time " * 10]  # the turn in flight finished, whole
    # ...and the worker left on its own once it had (uvicorn exits with the signal it was stopped by).
    assert holder.proc.wait(30) in (0, -signal.SIGTERM)
