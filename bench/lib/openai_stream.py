"""Time to the first text delta of a streamed chat completion, as an ``openai`` SDK user sees it."""

from __future__ import annotations

import time

from openai import OpenAI


def first_delta(client: OpenAI, messages: list[dict], model: str = "sonnet") -> tuple[float, str]:
    """(ms from the call to the first text delta, the whole answer)."""
    started = time.perf_counter()
    first = None
    text = []
    for chunk in client.chat.completions.create(model=model, messages=messages, stream=True):
        if chunk.choices and chunk.choices[0].delta.content:
            if first is None:
                first = (time.perf_counter() - started) * 1000
            text.append(chunk.choices[0].delta.content)
    return first or float("nan"), "".join(text)
