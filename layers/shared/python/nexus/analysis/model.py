"""The model call: Claude through the Nexus proxy (recorded and costed like any request, under the
analysis identity's Nexus key, a key of a team-key team), or Bedrock when the stage says so.

Errors come back as the types the pipeline retries (``pipeline.RETRYABLE``) or not.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from nexus.analysis.pipeline import MAX_OUTPUT_TOKENS, MODEL_TIMEOUT_S
from nexus.analysis.settings import AnalysisSettings
from nexus.pricing import Usage, cost_usd


class ModelError(Exception):
    """The model call failed (the subclass says whether a retry may help)."""


class ModelThrottled(ModelError):
    """429: rate-limited."""


class ModelOverloaded(ModelError):
    """529: the API is overloaded."""


class ModelTimeout(ModelError):
    """No answer in time, or the connection broke."""


class ModelUnavailable(ModelError):
    """A 5xx answer other than 529."""


class ModelRefused(ModelError):
    """A 4xx answer other than 429 (bad key, bad request): retrying will not help."""


@dataclass(frozen=True, slots=True)
class Answer:
    text: str
    model: str
    input_tokens: int
    output_tokens: int
    cache_creation_input_tokens: int
    cache_read_input_tokens: int
    cost_usd: float | None

    def usage(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cache_creation_input_tokens": self.cache_creation_input_tokens,
            "cache_read_input_tokens": self.cache_read_input_tokens,
            "cost_usd": self.cost_usd,
        }


def _client(settings: AnalysisSettings, proxy_url: str | None) -> Any:
    import anthropic

    if settings.provider == "bedrock":
        return anthropic.AnthropicBedrock(
            aws_region=settings.bedrock_region, max_retries=0, timeout=MODEL_TIMEOUT_S
        )
    if not proxy_url:
        raise ModelRefused("no proxy URL for the analysis model calls")
    if not settings.key:
        raise ModelRefused("no analysis key configured (nexus analysis setup --team TEAM)")
    return anthropic.Anthropic(
        base_url=proxy_url,
        api_key=settings.key,
        max_retries=0,  # retries are the pipeline's (state machine Retry, or the local runner)
        timeout=MODEL_TIMEOUT_S,
        default_headers={"x-nexus-purpose": "analysis"},
    )


def call(
    settings: AnalysisSettings, proxy_url: str | None, system: str, messages: list[dict[str, Any]]
) -> Answer:
    import anthropic

    client = _client(settings, proxy_url)
    try:
        msg = client.messages.create(
            model=settings.model,
            system=system,
            messages=messages,
            max_tokens=MAX_OUTPUT_TOKENS,
        )
    except anthropic.RateLimitError as exc:
        raise ModelThrottled(str(exc)) from None
    except anthropic.APITimeoutError as exc:
        raise ModelTimeout(str(exc)) from None
    except anthropic.APIConnectionError as exc:
        raise ModelTimeout(str(exc)) from None
    except anthropic.APIStatusError as exc:
        if exc.status_code == 529:
            raise ModelOverloaded(str(exc)) from None
        if exc.status_code >= 500:
            raise ModelUnavailable(str(exc)) from None
        raise ModelRefused(f"{exc.status_code}: {exc}") from None
    text = "".join(b.text for b in msg.content if getattr(b, "type", None) == "text")
    u = msg.usage
    usage = Usage.from_api(u.model_dump())
    # Bedrock may name the model differently from the id asked for: either prices it.
    cost: Decimal | None = cost_usd(msg.model, usage)
    if cost is None:
        cost = cost_usd(settings.model, usage)
    return Answer(
        text=text,
        model=msg.model,
        input_tokens=u.input_tokens,
        output_tokens=u.output_tokens,
        cache_creation_input_tokens=u.cache_creation_input_tokens or 0,
        cache_read_input_tokens=u.cache_read_input_tokens or 0,
        cost_usd=float(cost) if cost is not None else None,
    )
