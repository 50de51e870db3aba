"""`/v1/chat/completions` driven by the official `openai` SDK, with the real Claude Code CLI as the
engine behind it, talking through the Nexus proxy to the scripted upstream."""

from __future__ import annotations

import asyncio
import itertools
import json
import time

import pytest

from tests.gateway.conftest import TEAM_KEY, Gateway
from tests.support.fake_upstream import Reply, Usage, message_events, text_reply, tool_use_block

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"]}},
            "required": ["city"],
            "additionalProperties": False,
        },
    },
}


def _upstream_messages(upstream) -> list[dict]:
    """Request bodies the upstream got, without the inline role-system messages the CLI adds (for
    newer models it carries its effort setting there)."""
    bodies = [s.json() for s in upstream.messages_requests()]
    for b in bodies:
        b["messages"] = [m for m in b["messages"] if m["role"] != "system"]
    return bodies


def test_a_chat_completion_is_answered_by_claude_code_with_the_clients_system_prompt(
    gateway: Gateway, upstream
):
    usage = Usage(
        input_tokens=40, output_tokens=7, cache_read_input_tokens=900, cache_creation_input_tokens=60
    )
    upstream.enqueue(text_reply("Bonjour !", usage=usage))
    r = gateway.client().chat.completions.create(
        model="sonnet",
        messages=[
            {"role": "system", "content": "Answer in French."},
            {"role": "developer", "content": "Be brief."},
            {"role": "user", "content": "Say hello"},
        ],
    )
    assert r.choices[0].message.content == "Bonjour !"
    assert r.choices[0].finish_reason == "stop" and r.model == "sonnet"
    assert r.usage.prompt_tokens == 1000 and r.usage.completion_tokens == 7 and r.usage.total_tokens == 1007
    assert r.usage.prompt_tokens_details.cached_tokens == 900
    (body,) = _upstream_messages(upstream)  # one upstream call: no title generation, no side calls
    # Exactly the client's system prompt: no billing block, no agent prompt, no SDK preamble line.
    assert [b["text"] for b in body["system"]] == ["Answer in French.\n\nBe brief."]
    assert body["messages"] == [
        {
            "role": "user",
            "content": [{"type": "text", "text": "Say hello", "cache_control": {"type": "ephemeral"}}],
        }
    ]
    assert body["tools"] == [] and body["model"] == "claude-sonnet-5-5"
    # The engine's call went through the Nexus proxy under the caller's team: the team's key upstream.
    assert upstream.messages_requests()[0].header("x-api-key") == TEAM_KEY
    assert upstream.messages_requests()[0].header("x-nexus-client") is None  # Nexus' own header stays home


def test_streaming_sends_each_token_delta_as_it_arrives(gateway: Gateway, upstream):
    upstream.enqueue(
        Reply(events=message_events([{"type": "text", "text": "one two three four"}], split=4), delay_s=0.4)
    )
    started = time.monotonic()
    arrivals: list[tuple[float, str]] = []
    stream = gateway.client().chat.completions.create(
        model="sonnet",
        messages=[{"role": "user", "content": "count"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = []
    for chunk in stream:
        chunks.append(chunk)
        if chunk.choices and chunk.choices[0].delta.content:
            arrivals.append((time.monotonic() - started, chunk.choices[0].delta.content))
    assert "".join(t for _, t in arrivals) == "one two three four"
    assert len(arrivals) == 4, arrivals  # the upstream's deltas, not re-chunked
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(arrivals)]
    assert all(g > 0.25 for g in gaps), gaps  # each delta left when the upstream sent it
    assert chunks[0].choices[0].delta.role == "assistant"
    finals = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert [c.choices[0].finish_reason for c in finals] == ["stop"]
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 12


def test_tools_two_rounds_with_parallel_calls_stay_in_one_session(gateway: Gateway, upstream):
    client = gateway.client()
    calls = [
        tool_use_block("get_weather", {"city": "Paris"}),
        tool_use_block("get_weather", {"city": "Rome"}),
    ]
    upstream.enqueue(
        Reply(
            events=message_events(
                [{"type": "text", "text": "Checking both."}, *calls], stop_reason="tool_use"
            )
        ),
        text_reply("Paris 21C, Rome 25C."),
    )
    messages = [{"role": "user", "content": "Weather in Paris and Rome?"}]
    first = client.chat.completions.create(model="sonnet", messages=messages, tools=[WEATHER])
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert [(c.id, c.function.name, json.loads(c.function.arguments)) for c in choice.message.tool_calls] == [
        (calls[0]["id"], "get_weather", {"city": "Paris"}),
        (calls[1]["id"], "get_weather", {"city": "Rome"}),
    ]
    assert choice.message.content == "Checking both."
    # The model saw the client's function with its schema unchanged, under its own name.
    tools = _upstream_messages(upstream)[0]["tools"]
    assert [(t["name"], t["input_schema"]) for t in tools] == [
        ("get_weather", WEATHER["function"]["parameters"])
    ]

    messages += [
        choice.message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": calls[0]["id"], "content": "21C"},
        {"role": "tool", "tool_call_id": calls[1]["id"], "content": "25C"},
    ]
    second = client.chat.completions.create(model="sonnet", messages=messages, tools=[WEATHER])
    assert second.choices[0].message.content == "Paris 21C, Rome 25C."
    assert second.choices[0].finish_reason == "stop"
    bodies = _upstream_messages(upstream)
    assert len(bodies) == 2
    last = bodies[1]["messages"][-1]["content"]
    assert [(b["tool_use_id"], b["content"][0]["text"]) for b in last] == [
        (calls[0]["id"], "21C"),
        (calls[1]["id"], "25C"),
    ]
    # Same Claude Code session for both rounds: the turn stayed open while the client ran the tools.
    sessions = {s.header("x-claude-code-session-id") for s in upstream.messages_requests()}
    assert len(sessions) == 1


def test_streamed_tool_calls_carry_their_arguments_as_deltas(gateway: Gateway, upstream):
    call = tool_use_block("get_weather", {"city": "Lisbon", "unit": "c"})
    upstream.enqueue(Reply(events=message_events([call], stop_reason="tool_use", split=3)))
    stream = gateway.client().chat.completions.create(
        model="sonnet", messages=[{"role": "user", "content": "Lisbon?"}], tools=[WEATHER], stream=True
    )
    deltas = [c.choices[0].delta for c in stream if c.choices]
    calls = [tc for d in deltas for tc in d.tool_calls or []]
    assert calls[0].id == call["id"] and calls[0].function.name == "get_weather"
    pieces = [tc.function.arguments for tc in calls[1:]]
    assert len(pieces) == 3 and json.loads("".join(pieces)) == {"city": "Lisbon", "unit": "c"}
    assert {tc.index for tc in calls} == {0}


def test_json_schema_answers_come_from_structured_output(gateway: Gateway, upstream):
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "temp_c": {"type": "number"}},
        "required": ["city", "temp_c"],
        "additionalProperties": False,
    }
    upstream.enqueue(
        Reply(
            events=message_events(
                [tool_use_block("StructuredOutput", {"city": "Oslo", "temp_c": -3})], stop_reason="tool_use"
            )
        )
    )
    r = gateway.client().chat.completions.create(
        model="sonnet",
        messages=[{"role": "user", "content": "Weather in Oslo as JSON"}],
        response_format={"type": "json_schema", "json_schema": {"name": "weather", "schema": schema}},
    )
    assert json.loads(r.choices[0].message.content) == {"city": "Oslo", "temp_c": -3}
    assert r.choices[0].finish_reason == "stop"
    tools = _upstream_messages(upstream)[0]["tools"]
    assert [(t["name"], t["input_schema"]) for t in tools] == [("StructuredOutput", schema)]


def test_an_image_data_url_reaches_claude_as_an_image_block(gateway: Gateway, upstream):
    png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
    upstream.enqueue(text_reply("A single pixel."))
    r = gateway.client().chat.completions.create(
        model="sonnet",
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{png}"}},
                ],
            }
        ],
    )
    assert r.choices[0].message.content == "A single pixel."
    content = _upstream_messages(upstream)[0]["messages"][-1]["content"]
    assert len(content) == 2, content  # no note with a local file path next to the image
    assert content[0]["text"] == "What is this?"
    assert content[1]["type"] == "image" and content[1]["source"] == {
        "type": "base64",
        "media_type": "image/png",
        "data": png,
    }


def test_a_stateless_client_resending_its_history_resumes_one_session(gateway: Gateway, upstream):
    client = gateway.client()
    messages = [{"role": "system", "content": "You count turns."}]
    for turn in range(10):
        messages.append({"role": "user", "content": f"turn {turn}"})
        r = client.chat.completions.create(model="sonnet", messages=messages)
        messages.append({"role": "assistant", "content": r.choices[0].message.content})
        assert r.choices[0].message.content == f"Hello from the fake upstream: turn {turn}"
    seen = upstream.messages_requests()
    assert len(seen) == 10
    assert len({s.header("x-claude-code-session-id") for s in seen}) == 1  # one session, resumed
    for turn, body in enumerate(_upstream_messages(upstream)):  # real alternating turns, never flattened
        assert [m["role"] for m in body["messages"]] == ["user", "assistant"] * turn + ["user"]
        if turn:
            (answer,) = body["messages"][-2]["content"]
            assert answer["text"] == f"Hello from the fake upstream: turn {turn - 1}"


def test_async_client_and_concurrent_conversations(gateway: Gateway, upstream):
    async def one(n: int) -> str:
        async with gateway.async_client() as client:
            r = await client.chat.completions.create(
                model="haiku", messages=[{"role": "user", "content": f"conv {n}"}]
            )
            return r.choices[0].message.content

    async def all_of_them() -> list[str]:
        return await asyncio.gather(*(one(n) for n in range(3)))

    answers = asyncio.run(all_of_them())
    assert sorted(answers) == [f"Hello from the fake upstream: conv {n}" for n in range(3)]
    assert len({s.header("x-claude-code-session-id") for s in upstream.messages_requests()}) == 3


def test_the_dashboard_shows_gateway_calls_under_the_callers_team_and_user(gateway: Gateway, upstream):
    r = gateway.client().chat.completions.create(
        model="sonnet", messages=[{"role": "user", "content": "recorded?"}]
    )
    assert r.choices[0].message.content.endswith("recorded?")
    session = upstream.messages_requests()[-1].header("x-claude-code-session-id")
    (row,) = gateway.stack.wait_count(1, session_id=session)
    assert (row["team"], row["user"]) == ("gw", "ada")
    assert row["status"] == 200 and row["output_tokens"] == 12 and row["cost_usd"] > 0
    assert row["conversation_id"] is not None


@pytest.mark.parametrize(
    ("body", "status", "code", "says"),
    [
        (b'{"model": "sonnet", "messages": [', 400, None, "could not parse the JSON"),
        ({"model": "sonnet", "messages": []}, 400, "empty_array", "at least one message"),
        ({"model": "gpt-9", "messages": [{"role": "user", "content": "x"}]}, 404, "model_not_found", "gpt-9"),
        (
            {"model": "sonnet", "n": 2, "messages": [{"role": "user", "content": "x"}]},
            400,
            "unsupported_parameter",
            "n:",
        ),
        (
            {"model": "sonnet", "logprobs": True, "messages": [{"role": "user", "content": "x"}]},
            400,
            "unsupported_parameter",
            "logprobs",
        ),
        (
            {"model": "sonnet", "temperature": 0.2, "messages": [{"role": "user", "content": "x"}]},
            400,
            "unsupported_parameter",
            "temperature",
        ),
        (
            {"model": "sonnet", "frobnicate": 1, "messages": [{"role": "user", "content": "x"}]},
            400,
            "unknown_parameter",
            "frobnicate",
        ),
        ({"messages": [{"role": "user", "content": "x"}]}, 400, "missing_required_parameter", "model"),
        ({"model": "sonnet", "messages": [{"role": "assistant", "content": "x"}]}, 400, None, "last message"),
        # Found by the OpenAPI suite: these answered 500.
        (
            {
                "model": "sonnet",
                "messages": [
                    {"role": "user", "content": "a"},
                    {"role": "assistant", "tool_calls": 5},
                    {"role": "user", "content": "b"},
                ],
            },
            400,
            None,
            "messages[1].tool_calls: must be a list",
        ),
        (
            {
                "model": "sonnet",
                "messages": [
                    {"role": "user", "content": "a"},
                    {
                        "role": "assistant",
                        "tool_calls": [
                            {"id": "c", "type": "function", "function": {"name": "f", "arguments": []}}
                        ],
                    },
                    {"role": "tool", "tool_call_id": "c", "content": "r"},
                ],
            },
            400,
            None,
            "function.arguments (a JSON text)",
        ),
    ],
)
def test_bad_input_gets_openai_shaped_errors(gateway: Gateway, upstream, body, status, code, says):
    import urllib.error
    import urllib.request

    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    req = urllib.request.Request(gateway.url + "/chat/completions", data=data, method="POST")
    req.add_header("authorization", f"Bearer {gateway.key}")
    req.add_header("content-type", "application/json")
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(req, timeout=30)
    assert info.value.code == status
    doc = json.loads(info.value.read())
    assert set(doc["error"]) == {"message", "type", "param", "code"}
    assert doc["error"]["code"] == code and says in doc["error"]["message"]
    assert upstream.messages_requests() == []


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/iam",
        "http://127.0.0.1:9/x.png",
        "http://[::1]/x.png",
        "http://[::ffff:127.0.0.1]/x.png",
        "http://10.0.0.8/x.png",
        "file:///etc/passwd",
        "/etc/passwd",
        "http://[::1/x.png",  # not a URL: answered 500 before
        "http://a..b/x.png",  # a host name IDNA cannot encode: answered 500 before
    ],
)
def test_image_urls_to_private_addresses_and_local_paths_are_refused(gateway: Gateway, upstream, url):
    import openai

    with pytest.raises(openai.BadRequestError) as info:
        gateway.client().chat.completions.create(
            model="sonnet",
            messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]}],
        )
    assert info.value.body["code"] in ("invalid_image_url",)
    assert upstream.messages_requests() == []


def test_models_list_and_lookup(gateway: Gateway):
    import openai

    client = gateway.client()
    ids = [m.id for m in client.models.list()]
    assert {"sonnet", "opus", "haiku", "claude-sonnet-4-5"} <= set(ids)
    assert client.models.retrieve("claude-opus-4-8").id == "claude-opus-4-8"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("gpt-4o")


def test_a_wrong_key_is_refused_in_openai_shape(gateway: Gateway):
    import openai

    with pytest.raises(openai.AuthenticationError) as info:
        gateway.client(api_key="nxk_deadbeef_wrong").chat.completions.create(
            model="sonnet", messages=[{"role": "user", "content": "x"}]
        )
    assert info.value.body["code"] == "invalid_api_key"


def test_max_tokens_caps_the_answer_with_finish_reason_length(gateway: Gateway, upstream):
    upstream.enqueue(
        Reply(
            events=message_events([{"type": "text", "text": "This answer is cut"}], stop_reason="max_tokens")
        ),
        text_reply("(Claude Code would go on here on its own)"),
    )
    r = gateway.client().chat.completions.create(
        model="sonnet", messages=[{"role": "user", "content": "Write a lot"}], max_completion_tokens=5
    )
    assert r.choices[0].finish_reason == "length"
    assert r.choices[0].message.content == "This answer is cut"
    gateway.wait_idle()
    body = upstream.messages_requests()[0].json()
    assert body["max_tokens"] == 5


def test_regenerating_the_last_answer_forks_the_session_before_it(gateway: Gateway, upstream):
    """A chat UI's "regenerate": the same history again. The model must see it once, not with the
    first answer and the repeated question appended."""
    client = gateway.client()
    history = [{"role": "user", "content": "Tell me a joke"}]
    first = client.chat.completions.create(model="sonnet", messages=history).choices[0].message.content
    history += [{"role": "assistant", "content": first}, {"role": "user", "content": "Another one"}]
    client.chat.completions.create(model="sonnet", messages=history)
    again = client.chat.completions.create(model="sonnet", messages=history)  # regenerate
    assert again.choices[0].message.content == "Hello from the fake upstream: Another one"
    bodies = _upstream_messages(upstream)
    assert len(bodies) == 3
    assert [m["role"] for m in bodies[2]["messages"]] == ["user", "assistant", "user"]
    texts = json.dumps(bodies[2]["messages"])
    assert texts.count("Another one") == 1
    sessions = [s.header("x-claude-code-session-id") for s in upstream.messages_requests()]
    assert sessions[0] == sessions[1] != sessions[2]  # a fork: a new session from the first answer


def test_the_model_named_is_the_model_used(gateway: Gateway, upstream):
    for name, upstream_model in (("claude-sonnet-4-5", "claude-sonnet-4-5"), ("haiku", "claude-haiku-5-5")):
        r = gateway.client().chat.completions.create(
            model=name, messages=[{"role": "user", "content": f"which {name}"}]
        )
        assert r.model == name
        assert upstream.messages_requests()[-1].json()["model"] == upstream_model
