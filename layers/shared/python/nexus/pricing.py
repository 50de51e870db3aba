"""Versioned model price table and the cost of one request's usage.

Prices are USD per million tokens from Anthropic's published list. A model the table does not know
gets cost None and is flagged: a guessed price is worse than none. Update by adding a new table
version; stored costs keep the version they were computed with.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

PRICE_VERSION = "2025-11-24"

# Multipliers of the base input price (Anthropic prompt caching pricing).
CACHE_WRITE_5M = Decimal("1.25")
CACHE_WRITE_1H = Decimal("2")
CACHE_READ = Decimal("0.1")
LONG_CONTEXT_THRESHOLD = 200_000


@dataclass(frozen=True, slots=True)
class Price:
    input: Decimal
    output: Decimal
    # Sonnet 4.x with the 1M-context beta: prompts over 200k input tokens are billed at these rates.
    long_input: Decimal | None = None
    long_output: Decimal | None = None


def _p(i: str, o: str, li: str | None = None, lo: str | None = None) -> Price:
    return Price(Decimal(i), Decimal(o), Decimal(li) if li else None, Decimal(lo) if lo else None)


# Keys are model-id prefixes; the longest matching prefix wins (so dated ids resolve).
PRICES: dict[str, Price] = {
    "claude-opus-4-5": _p("5", "25"),
    "claude-opus-4-1": _p("15", "75"),
    "claude-opus-4": _p("15", "75"),
    "claude-sonnet-4-5": _p("3", "15", "6", "22.5"),
    "claude-sonnet-4": _p("3", "15", "6", "22.5"),
    "claude-3-7-sonnet": _p("3", "15"),
    "claude-3-5-sonnet": _p("3", "15"),
    "claude-haiku-4-5": _p("1", "5"),
    "claude-3-5-haiku": _p("0.8", "4"),
    "claude-3-opus": _p("15", "75"),
    "claude-3-haiku": _p("0.25", "1.25"),
}
_BY_LENGTH = sorted(PRICES, key=len, reverse=True)
_MILLION = Decimal(1_000_000)


def price_for(model: str | None) -> Price | None:
    if not model:
        return None
    name = model.lower().split("[", 1)[0]  # "claude-sonnet-4-5[1m]" -> "claude-sonnet-4-5"
    for prefix in _BY_LENGTH:
        if name.startswith(prefix):
            return PRICES[prefix]
    return None


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
        if not detail:  # older responses: all cache writes are the default 5-minute kind
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
    inp, out = price.input, price.output
    if price.long_input is not None and usage.prompt_tokens > LONG_CONTEXT_THRESHOLD:
        inp, out = price.long_input, price.long_output or out
    total = (
        usage.input_tokens * inp
        + usage.cache_creation_5m * inp * CACHE_WRITE_5M
        + usage.cache_creation_1h * inp * CACHE_WRITE_1H
        + usage.cache_read_input_tokens * inp * CACHE_READ
        + usage.output_tokens * out
    )
    return (total / _MILLION).quantize(Decimal("0.00000001"))
