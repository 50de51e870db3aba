"""Versioned model price table and the cost of one request's usage.

USD per million tokens, from Anthropic's published pricing page (model pricing, prompt caching and
long-context sections) as of the version date. Rates are explicit per model: cache-read and
cache-write ratios are no longer the same for every model (Opus 5.5 and Fable 5.1 read the cache at
0.05x and 0.025x). A model the table does not know gets cost None and is flagged: a guessed price is
worse than none. Stored costs keep the table version they were computed with.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

PRICE_VERSION = "2026-11-01"


@dataclass(frozen=True, slots=True)
class Rates:
    input: Decimal
    output: Decimal
    cache_write_5m: Decimal
    cache_write_1h: Decimal
    cache_read: Decimal


@dataclass(frozen=True, slots=True)
class Price:
    base: Rates
    # Long-context tier: prompts above ``threshold`` input tokens are billed at ``long`` for the whole
    # request (Sonnet 4/4.5 beyond 200k, Haiku 5.5 beyond 100k).
    threshold: int | None = None
    long: Rates | None = None

    def rates(self, prompt_tokens: int) -> Rates:
        if self.threshold is not None and self.long is not None and prompt_tokens > self.threshold:
            return self.long
        return self.base


def _r(i: str, o: str, w5: str | None = None, w1: str | None = None, rd: str | None = None) -> Rates:
    """Rates; cache prices default to the standard 1.25x / 2x / 0.1x of input."""
    d = Decimal(i)
    return Rates(
        d,
        Decimal(o),
        Decimal(w5) if w5 else d * Decimal("1.25"),
        Decimal(w1) if w1 else d * 2,
        Decimal(rd) if rd else d / 10,
    )


_SONNET_4 = Price(_r("3", "15"), 200_000, _r("6", "22.5"))
_OPUS_NEW = Price(_r("5", "25"))
_OPUS_OLD = Price(_r("15", "75"))

# Keys are model ids without date suffix (see ``normalise``); exact match only, because prefixes
# lie here (``claude-fable-5`` is not ``claude-fable-5-2``).
PRICES: dict[str, Price] = {
    "claude-fable-5-1": Price(_r("10", "50", rd="0.25")),
    "claude-mythos-5-1": Price(_r("10", "50", rd="0.25")),
    "claude-fable-5": Price(_r("10", "50", rd="1")),
    "claude-mythos-5": Price(_r("10", "50", rd="1")),
    "claude-opus-5-5": Price(_r("4", "20", rd="0.2")),
    "claude-opus-5": _OPUS_NEW,
    "claude-opus-4-8": _OPUS_NEW,
    "claude-opus-4-7": _OPUS_NEW,
    "claude-opus-4-6": _OPUS_NEW,
    "claude-opus-4-5": _OPUS_NEW,
    "claude-opus-4-1": _OPUS_OLD,
    "claude-opus-4": _OPUS_OLD,
    "claude-opus-4-0": _OPUS_OLD,
    "claude-3-opus": _OPUS_OLD,
    "claude-sonnet-5-5": Price(_r("2", "10")),
    "claude-sonnet-5": Price(_r("2", "10")),
    "claude-sonnet-4-6": Price(_r("3", "15")),  # 1M context at standard rates
    "claude-sonnet-4-5": _SONNET_4,
    "claude-sonnet-4": _SONNET_4,
    "claude-sonnet-4-0": _SONNET_4,
    "claude-3-7-sonnet": Price(_r("3", "15")),
    "claude-3-5-sonnet": Price(_r("3", "15")),
    "claude-haiku-5-5": Price(_r("0.10", "0.50"), 100_000, _r("0.50", "2.50")),
    "claude-haiku-4-5": Price(_r("1", "5")),
    "claude-3-5-haiku": Price(_r("0.80", "4")),
    "claude-3-haiku": Price(_r("0.25", "1.25", "0.30", "0.50", "0.03")),
}
_SUFFIX = re.compile(r"(-\d{8}|-latest)$")
# Bedrock: ``[arn:...:inference-profile/][us.|eu.|apac.|global.|...]anthropic.<id>-v1[:0]``; Vertex AI:
# ``<id>@20250929``. Both name the same models at Anthropic's list rates (Bedrock's regional-endpoint
# premium on some models is not applied: the table prices the model, not the endpoint).
_BEDROCK = re.compile(r"^(?:[a-z]{2,6}\.)?anthropic\.(?P<id>.+?)(?:-v\d+(?::\d+)?)?$")
_VERTEX_DATE = re.compile(r"@(\d{8}|latest)$")
_MILLION = Decimal(1_000_000)


def normalise(model: str) -> str:
    """``claude-sonnet-4-5-20250929`` and ``claude-sonnet-4-5[1m]`` -> ``claude-sonnet-4-5``; so are
    Bedrock's ``us.anthropic.claude-sonnet-4-5-20250929-v1:0`` (or an inference profile's ARN) and
    Vertex AI's ``claude-sonnet-4-5@20250929``."""
    name = model.strip().lower().split("[", 1)[0]
    if name.startswith("arn:"):
        name = name.rsplit("/", 1)[-1]
    if bedrock := _BEDROCK.match(name):
        name = bedrock["id"]
    return _SUFFIX.sub("", _VERTEX_DATE.sub("", name))


# Context window in tokens, where it is not the 200k of most models (1M: current generation).
CONTEXT_1M = frozenset(
    {
        "claude-fable-5-1",
        "claude-mythos-5-1",
        "claude-fable-5",
        "claude-mythos-5",
        "claude-opus-5-5",
        "claude-opus-5",
        "claude-opus-4-8",
        "claude-opus-4-7",
        "claude-opus-4-6",
        "claude-sonnet-5-5",
        "claude-sonnet-5",
        "claude-sonnet-4-6",
        "claude-haiku-5-5",
    }
)


def context_window(model: str | None) -> int | None:
    """The model's context window, or None for a model the table does not know. A ``[1m]`` model id
    (Sonnet 4/4.5 with the 1M-context beta) counts as 1M."""
    if not model:
        return None
    name = normalise(model)
    if name not in PRICES:
        return None
    return 1_000_000 if name in CONTEXT_1M or "[1m]" in model.lower() else 200_000


def price_for(model: str | None) -> Price | None:
    return PRICES.get(normalise(model)) if model else None


@dataclass(frozen=True, slots=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_creation_5m: int = 0
    cache_creation_1h: int = 0
    cache_read_input_tokens: int = 0

    @classmethod
    def from_api(cls, usage: dict[str, Any] | None) -> Usage:
        u = usage or {}
        created = int(u.get("cache_creation_input_tokens") or 0)
        detail = u.get("cache_creation") or {}
        five = int(detail.get("ephemeral_5m_input_tokens") or 0)
        hour = int(detail.get("ephemeral_1h_input_tokens") or 0)
        if not detail:  # older responses: every cache write is the default 5-minute kind
            five = created
        return cls(
            input_tokens=int(u.get("input_tokens") or 0),
            output_tokens=int(u.get("output_tokens") or 0),
            cache_creation_input_tokens=created,
            cache_creation_5m=five,
            cache_creation_1h=hour,
            cache_read_input_tokens=int(u.get("cache_read_input_tokens") or 0),
        )

    @property
    def prompt_tokens(self) -> int:
        return self.input_tokens + self.cache_creation_input_tokens + self.cache_read_input_tokens


def cost_usd(model: str | None, usage: Usage) -> Decimal | None:
    """Cost of one request, or None when the model's price is unknown."""
    price = price_for(model)
    if price is None:
        return None
    r = price.rates(usage.prompt_tokens)
    total = (
        usage.input_tokens * r.input
        + usage.cache_creation_5m * r.cache_write_5m
        + usage.cache_creation_1h * r.cache_write_1h
        + usage.cache_read_input_tokens * r.cache_read
        + usage.output_tokens * r.output
    )
    return (total / _MILLION).quantize(Decimal("0.00000001"))
