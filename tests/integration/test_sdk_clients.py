"""The official `anthropic` SDK, pointed at the proxy, behaves exactly as against the upstream."""

from __future__ import annotations

import anthropic
import pytest

from tests.support.fake_upstream import Usage, error_reply

pytestmark = pytest.mark.shared_stack

MODEL = "claude-opus-5-5"


@pytest.fixture
def client(stack) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=stack.proxy_url, api_key="sk-ant-test-sdk", max_retries=0)


def test_streaming_text_and_usage(client, stack, upstream):
    upstream.usage = Usage(
        input_tokens=1200, output_tokens=40, cache_read_input_tokens=5000, cache_creation_input_tokens=300
    )
    with client.messages.stream(
        model=MODEL, max_tokens=100, messages=[{"role": "user", "content": "sdk streaming"}]
    ) as s:
        text = "".join(s.text_stream)
        final = s.get_final_message()
    assert text == "Hello from the fake upstream: sdk streaming"
    assert final.usage.input_tokens == 1200 and final.usage.output_tokens == 40
    row = stack.wait_for(lambda rows: any(r["input_tokens"] == 1200 for r in rows))[0]
    assert row["output_tokens"] == 40 and row["cache_read_input_tokens"] == 5000
    assert row["cache_creation_input_tokens"] == 300
    # Opus 5.5 list prices per million tokens: $4 in, $20 out, $5 5m cache write, $0.20 cache read
    expected = (1200 * 4 + 300 * 5 + 5000 * 0.2 + 40 * 20) / 1e6
    assert row["cost_usd"] == pytest.approx(expected, abs=1e-8)
    assert row["model"] == MODEL and row["stop_reason"] == "end_turn" and row["error"] is None


def test_non_streaming(client, upstream):
    msg = client.messages.create(model=MODEL, max_tokens=50, messages=[{"role": "user", "content": "plain"}])
    assert msg.content[0].text == "Hello from the fake upstream: plain"
    assert "stream" not in upstream.messages_requests()[-1].json()


def test_count_tokens(client, stack, upstream):
    result = client.messages.count_tokens(model=MODEL, messages=[{"role": "user", "content": "count me"}])
    assert result.input_tokens > 0
    rows = stack.wait_for(lambda rows: any(r["kind"] == "count_tokens" for r in rows))
    assert next(r for r in rows if r["kind"] == "count_tokens")["status"] == 200


def test_errors_surface_as_sdk_exceptions(client, upstream):
    upstream.enqueue(error_reply(429, "rate_limit_error", "slow down", {"retry-after": "3"}))
    with pytest.raises(anthropic.RateLimitError) as exc:
        client.messages.create(model=MODEL, max_tokens=5, messages=[{"role": "user", "content": "x"}])
    assert exc.value.status_code == 429
    assert exc.value.response.headers["retry-after"] == "3"
    assert exc.value.body["error"]["message"] == "slow down"
    assert exc.value.request_id.startswith("req_fake_")

    upstream.enqueue(error_reply(529, "overloaded_error", "Overloaded"))
    with pytest.raises(anthropic.APIStatusError) as exc:
        client.messages.create(model=MODEL, max_tokens=5, messages=[{"role": "user", "content": "x"}])
    assert exc.value.status_code == 529


def test_sdk_default_retries_are_the_clients_not_the_proxys(stack, upstream):
    """The SDK retries a 529 itself; every attempt is a separate upstream call and a separate record."""
    client = anthropic.Anthropic(base_url=stack.proxy_url, api_key="sk-ant-test-sdk", max_retries=1)
    upstream.enqueue(error_reply(529, "overloaded_error", "Overloaded"))
    msg = client.messages.create(
        model=MODEL, max_tokens=5, messages=[{"role": "user", "content": "retry me"}]
    )
    assert msg.content[0].text.endswith("retry me")
    assert len(upstream.messages_requests()) == 2
