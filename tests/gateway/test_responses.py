"""`/v1/responses` (what Codex CLI and newer OpenAI agents speak), driven by the `openai` SDK."""

from __future__ import annotations

import json

import openai
import pytest

from tests.gateway.conftest import Gateway
from tests.support.fake_upstream import Reply, message_events, text_reply, tool_use_block

WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Current weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


def _bodies(upstream) -> list[dict]:
    bodies = [s.json() for s in upstream.messages_requests()]
    for b in bodies:
        b["messages"] = [m for m in b["messages"] if m["role"] != "system"]
    return bodies


def test_input_string_with_instructions(gateway: Gateway, upstream):
    upstream.enqueue(text_reply("Hi there."))
    r = gateway.client().responses.create(model="sonnet", instructions="Be terse.", input="Hello")
    assert r.status == "completed" and r.output_text == "Hi there."
    assert r.output[0].type == "message" and r.output[0].content[0].type == "output_text"
    assert r.usage.input_tokens == 100 and r.usage.output_tokens == 12
    (body,) = _bodies(upstream)
    assert body["system"][-1]["text"] == "Be terse."


def test_previous_response_id_continues_the_same_session(gateway: Gateway, upstream):
    client = gateway.client()
    first = client.responses.create(model="sonnet", input="My name is Ada.")
    second = client.responses.create(model="sonnet", input="What is my name?", previous_response_id=first.id)
    assert second.output_text == "Hello from the fake upstream: What is my name?"
    assert second.previous_response_id == first.id
    seen = upstream.messages_requests()
    assert len({s.header("x-claude-code-session-id") for s in seen}) == 1
    assert [m["role"] for m in _bodies(upstream)[1]["messages"]] == ["user", "assistant", "user"]
    assert client.responses.retrieve(second.id).output_text == second.output_text
    # Branching from the first response again: the session forks there; the model never sees turn two.
    third = client.responses.create(model="sonnet", input="Who am I?", previous_response_id=first.id)
    assert third.output_text.endswith("Who am I?")
    last = _bodies(upstream)[-1]["messages"]
    texts = [json.dumps(m["content"]) for m in last]
    assert len(last) == 3 and "What is my name" not in " ".join(texts)


def test_function_tools_round_trip(gateway: Gateway, upstream):
    call = tool_use_block("get_weather", {"city": "Paris"})
    upstream.enqueue(
        Reply(events=message_events([call], stop_reason="tool_use")), text_reply("Sunny in Paris.")
    )
    client = gateway.client()
    first = client.responses.create(model="sonnet", input="Weather in Paris?", tools=[WEATHER])
    (fc,) = [o for o in first.output if o.type == "function_call"]
    assert (fc.call_id, fc.name, json.loads(fc.arguments)) == (call["id"], "get_weather", {"city": "Paris"})
    second = client.responses.create(
        model="sonnet",
        previous_response_id=first.id,
        tools=[WEATHER],
        input=[{"type": "function_call_output", "call_id": fc.call_id, "output": "21C and sunny"}],
    )
    assert second.output_text == "Sunny in Paris."
    results = _bodies(upstream)[1]["messages"][-1]["content"]
    assert results[0]["type"] == "tool_result" and results[0]["tool_use_id"] == call["id"]
    assert len({s.header("x-claude-code-session-id") for s in upstream.messages_requests()}) == 1


def test_a_stateless_client_resending_items_resumes(gateway: Gateway, upstream):
    """Codex CLI's way: store=false and the whole input every time."""
    client = gateway.client()
    items: list[dict] = [{"role": "user", "content": [{"type": "input_text", "text": "first"}]}]
    r1 = client.responses.create(model="sonnet", input=items, store=False)
    items += [
        {"role": "assistant", "content": [{"type": "output_text", "text": r1.output_text}]},
        {"role": "user", "content": [{"type": "input_text", "text": "second"}]},
    ]
    r2 = client.responses.create(model="sonnet", input=items, store=False)
    assert r2.output_text.endswith("second")
    assert len({s.header("x-claude-code-session-id") for s in upstream.messages_requests()}) == 1
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(r2.id)  # store=false: not kept


def test_streaming_events(gateway: Gateway, upstream):
    call = tool_use_block("get_weather", {"city": "Rome"})
    upstream.enqueue(
        Reply(events=message_events([{"type": "text", "text": "Let me look."}, call], stop_reason="tool_use"))
    )
    stream = gateway.client().responses.create(model="sonnet", input="Rome?", tools=[WEATHER], stream=True)
    events = list(stream)
    kinds = [e.type for e in events]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] == "response.completed"
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == "Let me look."
    args = "".join(e.delta for e in events if e.type == "response.function_call_arguments.delta")
    assert json.loads(args) == {"city": "Rome"}
    assert [e.sequence_number for e in events] == list(range(len(events)))
    final = events[-1].response
    assert [o.type for o in final.output] == ["message", "function_call"]
    assert final.output[1].call_id == call["id"]


def test_responses_bad_input(gateway: Gateway, upstream):
    client = gateway.client()
    with pytest.raises(openai.NotFoundError):
        client.responses.create(model="sonnet", input="x", previous_response_id="resp_doesnotexist")
    with pytest.raises(openai.BadRequestError) as info:
        client.responses.create(model="sonnet", input="x", tools=[{"type": "shell_of_the_future"}])
    assert info.value.body["code"] == "unsupported_parameter"
    with pytest.raises(openai.BadRequestError):
        client.responses.create(model="sonnet", input="x", temperature=0.1)
    # Found by the OpenAPI suite: these answered 500.
    with pytest.raises(openai.BadRequestError) as info:
        client.responses.create(model="sonnet", input="x", reasoning={"effort": []})
    assert info.value.body["param"] == "reasoning.effort"
    with pytest.raises(openai.BadRequestError) as info:
        client.responses.create(model="sonnet", input="x", tools=[{"type": []}])
    assert info.value.body["param"] == "tools[0].type"
    call = {"type": "function_call", "call_id": "c1", "name": "f", "arguments": []}
    with pytest.raises(openai.BadRequestError) as info:
        client.responses.create(
            model="sonnet",
            input=[call, {"type": "function_call_output", "call_id": "c1", "output": "o"}],
        )
    assert info.value.body["param"] == "input[0].arguments"
    with pytest.raises(openai.NotFoundError):  # a NUL: no stored id has one (PostgreSQL refused it: 500)
        client.responses.create(model="sonnet", input="x", previous_response_id="resp_\u0000")
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve("resp_\u0000")
    assert upstream.messages_requests() == []


def test_hosted_tools_are_not_offered_to_the_model_and_the_response_says_so(gateway: Gateway, upstream):
    upstream.enqueue(text_reply("No search needed."))
    raw = gateway.client().responses.with_raw_response.create(
        model="sonnet", input="hi", tools=[WEATHER, {"type": "web_search"}]
    )
    assert raw.headers["x-nexus-unsupported-tools"] == "web_search"
    assert raw.parse().output_text == "No search needed."
    assert [t["name"] for t in _bodies(upstream)[0]["tools"]] == ["get_weather"]
