"""tool_choice honoured (not just passed along), and the gateway used the way LangChain users do."""

from __future__ import annotations

import json

from tests.gateway.conftest import Gateway
from tests.support.fake_upstream import Reply, message_events, text_reply, tool_use_block

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


def _last_user_texts(upstream, n: int) -> list[str]:
    body = upstream.messages_requests()[n].json()
    user = [m for m in body["messages"] if m["role"] == "user"][-1]["content"]
    return [b.get("text", "") for b in user if b.get("type") == "text"]


def test_tool_choice_none_never_returns_a_tool_call(gateway: Gateway, upstream):
    upstream.enqueue(
        Reply(
            events=message_events([tool_use_block("get_weather", {"city": "Oslo"})], stop_reason="tool_use")
        ),
        text_reply("I will answer without tools: cold."),
    )
    r = gateway.client().chat.completions.create(
        model="sonnet", messages=[{"role": "user", "content": "Oslo?"}], tools=[WEATHER], tool_choice="none"
    )
    assert r.choices[0].finish_reason == "stop" and r.choices[0].message.tool_calls is None
    assert r.choices[0].message.content == "I will answer without tools: cold."
    assert any("do not call any tool" in t for t in _last_user_texts(upstream, 0))
    result = upstream.messages_requests()[1].json()["messages"][-1]["content"][0]
    assert result["type"] == "tool_result" and result["is_error"] is True


def test_tool_choice_required_gets_a_call_even_from_a_reluctant_model(gateway: Gateway, upstream):
    call = tool_use_block("get_weather", {"city": "Bergen"})
    upstream.enqueue(
        text_reply("It is probably rainy."), Reply(events=message_events([call], stop_reason="tool_use"))
    )
    r = gateway.client().chat.completions.create(
        model="sonnet",
        messages=[{"role": "user", "content": "Bergen?"}],
        tools=[WEATHER],
        tool_choice="required",
    )
    assert r.choices[0].finish_reason == "tool_calls"
    assert [c.function.name for c in r.choices[0].message.tool_calls] == ["get_weather"]
    assert len(upstream.messages_requests()) == 2  # one reminder inside the same turn
    assert any("Call one or more" in t for t in _last_user_texts(upstream, 1))


def test_a_named_tool_choice_is_asked_for_by_name(gateway: Gateway, upstream):
    upstream.enqueue(
        Reply(
            events=message_events([tool_use_block("get_weather", {"city": "Nice"})], stop_reason="tool_use")
        )
    )
    r = gateway.client().chat.completions.create(
        model="sonnet",
        messages=[{"role": "user", "content": "Nice?"}],
        tools=[WEATHER],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
    )
    assert r.choices[0].message.tool_calls[0].function.name == "get_weather"
    assert any("Call the tool `get_weather`" in t for t in _last_user_texts(upstream, 0))


def test_langchain_invoke_stream_and_bound_tools(gateway: Gateway, upstream):
    from langchain_core.messages import HumanMessage, SystemMessage, ToolMessage
    from langchain_openai import ChatOpenAI

    llm = ChatOpenAI(base_url=gateway.url, api_key=gateway.key, model="sonnet", max_retries=0)
    upstream.enqueue(text_reply("LangChain says hi."))
    out = llm.invoke([SystemMessage("Be kind."), HumanMessage("hello")])
    assert out.content == "LangChain says hi."
    assert out.usage_metadata["input_tokens"] == 100 and out.usage_metadata["output_tokens"] == 12

    upstream.enqueue(Reply(events=message_events([{"type": "text", "text": "streamed words here"}], split=3)))
    pieces = [c.content for c in llm.stream("stream please")]
    assert "".join(pieces) == "streamed words here" and len([p for p in pieces if p]) == 3

    def get_weather(city: str) -> str:
        """Current weather for a city."""
        return "sunny"

    call = tool_use_block("get_weather", {"city": "Paris"})
    upstream.enqueue(
        Reply(events=message_events([call], stop_reason="tool_use")), text_reply("Paris is sunny.")
    )
    bound = llm.bind_tools([get_weather])
    history = [HumanMessage("Weather in Paris?")]
    first = bound.invoke(history)
    assert first.tool_calls == [
        {"name": "get_weather", "args": {"city": "Paris"}, "id": call["id"], "type": "tool_call"}
    ]
    history += [first, ToolMessage(get_weather("Paris"), tool_call_id=call["id"])]
    second = bound.invoke(history)
    assert second.content == "Paris is sunny."
    sent = upstream.messages_requests()[-1].json()["messages"][-1]["content"][0]
    assert sent["tool_use_id"] == call["id"] and json.dumps(sent["content"]).count("sunny") == 1
