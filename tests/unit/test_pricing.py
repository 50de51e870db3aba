"""nexus.pricing: model price lookup and the cost of one request.

Expected costs are computed by hand here (USD per million tokens from Anthropic's price list),
never with the module's own formula.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from nexus.pricing import Usage, cost_usd, price_for


@pytest.mark.parametrize(
    ("model", "inp", "out"),
    [
        ("claude-sonnet-4-5-20250929", "3", "15"),
        ("claude-sonnet-4-5", "3", "15"),
        ("claude-sonnet-4-5[1m]", "3", "15"),
        ("claude-sonnet-4-5-20250929[1m]", "3", "15"),
        ("claude-sonnet-4-20250514", "3", "15"),
        ("claude-opus-4-5-20251101", "5", "25"),  # not the claude-opus-4 price
        ("claude-opus-4-1-20250805", "15", "75"),
        ("claude-opus-4-20250514", "15", "75"),
        ("claude-opus-4-0", "15", "75"),
        ("claude-haiku-4-5-20251001", "1", "5"),
        ("claude-3-5-haiku-20241022", "0.8", "4"),  # not claude-3-haiku
        ("claude-3-5-haiku-latest", "0.8", "4"),
        ("claude-3-haiku-20240307", "0.25", "1.25"),
        ("claude-3-7-sonnet-20250219", "3", "15"),
        ("Claude-Sonnet-4-5-20250929", "3", "15"),
        (" claude-sonnet-4-5-20250929 ", "3", "15"),
        # Bedrock model ids, cross-region inference profiles and their ARNs; Vertex AI ids
        ("anthropic.claude-sonnet-4-5-20250929-v1:0", "3", "15"),
        ("us.anthropic.claude-sonnet-4-5-20250929-v1:0", "3", "15"),
        ("global.anthropic.claude-opus-4-5-20251101-v1:0", "5", "25"),
        ("eu.anthropic.claude-haiku-4-5-20251001-v1:0", "1", "5"),
        ("apac.anthropic.claude-3-5-haiku-20241022-v1:0", "0.8", "4"),
        ("anthropic.claude-sonnet-5", "2", "10"),
        (
            "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-opus-4-1-20250805-v1:0",
            "15",
            "75",
        ),
        ("claude-sonnet-4-5@20250929", "3", "15"),
        ("claude-opus-4-1@20250805", "15", "75"),
    ],
)
def test_price_for_resolves_dated_and_suffixed_ids(model, inp, out):
    price = price_for(model)
    assert price is not None
    assert (price.base.input, price.base.output) == (Decimal(inp), Decimal(out))


@pytest.mark.parametrize(
    "model",
    [
        None,
        "",
        "gpt-4o",
        "claude-2.1",
        "claude-instant-1.2",
        "sonnet",
        # Ids that merely start with a listed id are different models: no guessed price.
        "claude-opus-4-9",
        "claude-sonnet-4-5-turbo",
        "claude-fable-5-2",
        "claude-sonnet-4-5-2025",  # not a date suffix
        "anthropic.claude-v2:1",  # Bedrock's legacy models are not in the table
        "us.anthropic.claude-opus-4-9-v1:0",
        "meta.llama3-70b-instruct-v1:0",
    ],
)
def test_price_for_unknown_model_is_none(model):
    assert price_for(model) is None


def test_cost_unknown_model_is_none_not_a_guess():
    assert cost_usd("gpt-4o", Usage(input_tokens=1000, output_tokens=1000)) is None
    assert cost_usd(None, Usage(input_tokens=1000)) is None


def test_cost_combines_input_output_and_every_cache_kind():
    usage = Usage(
        input_tokens=1000,
        output_tokens=500,
        cache_creation_input_tokens=5000,
        cache_creation_5m=2000,
        cache_creation_1h=3000,
        cache_read_input_tokens=4000,
    )
    # Sonnet 4.5, $3 in / $15 out per MTok:
    #   input      1000 * 3          = 3000
    #   5m write   2000 * 3 * 1.25   = 7500
    #   1h write   3000 * 3 * 2      = 18000
    #   cache read 4000 * 3 * 0.1    = 1200
    #   output      500 * 15         = 7500
    #   total 37200 / 1e6            = 0.0372
    assert cost_usd("claude-sonnet-4-5-20250929", usage) == Decimal("0.0372")


def test_cost_haiku_3_5_small_request():
    usage = Usage(input_tokens=123, output_tokens=45, cache_read_input_tokens=10_000)
    # 123 * 0.8 = 98.4; 45 * 4 = 180; 10000 * 0.8 * 0.1 = 800 -> 1078.4 / 1e6
    assert cost_usd("claude-3-5-haiku-20241022", usage) == Decimal("0.0010784")


def test_cost_is_rounded_to_eight_decimals():
    # claude-3-haiku: 3 input tokens * $0.25 / 1e6 = 0.00000075; 1 output token * 1.25 = 0.00000125
    assert cost_usd("claude-3-haiku-20240307", Usage(input_tokens=3, output_tokens=1)) == Decimal(
        "0.00000200"
    )
    cost = cost_usd("claude-3-haiku-20240307", Usage(input_tokens=1))
    assert cost == Decimal("0.00000025")
    assert cost.as_tuple().exponent == -8


def test_sonnet_4_long_context_tier_above_200k_prompt_tokens():
    usage = Usage(input_tokens=150_000, cache_read_input_tokens=60_000, output_tokens=1000)
    # prompt = 210k > 200k: $6 in / $22.5 out
    # 150000 * 6 = 900000; 60000 * 6 * 0.1 = 36000; 1000 * 22.5 = 22500 -> 958500 / 1e6
    assert cost_usd("claude-sonnet-4-5-20250929[1m]", usage) == Decimal("0.9585")
    assert cost_usd("claude-sonnet-4-20250514", usage) == Decimal("0.9585")


def test_long_context_threshold_is_exclusive_at_200k():
    usage = Usage(input_tokens=200_000, output_tokens=1000)
    # 200000 * 3 = 600000; 1000 * 15 = 15000 -> base rates
    assert cost_usd("claude-sonnet-4-5", usage) == Decimal("0.615")


def test_cache_writes_count_towards_long_context_threshold():
    usage = Usage(input_tokens=1000, cache_creation_input_tokens=250_000, cache_creation_5m=250_000)
    # prompt 251k: 1000 * 6 = 6000; 250000 * 6 * 1.25 = 1875000 -> 1881000 / 1e6
    assert cost_usd("claude-sonnet-4-5", usage) == Decimal("1.881")


def test_models_without_long_tier_keep_base_price_above_200k():
    usage = Usage(input_tokens=300_000, output_tokens=1000)
    # Opus 4.5: 300000 * 5 + 1000 * 25 = 1525000
    assert cost_usd("claude-opus-4-5-20251101", usage) == Decimal("1.525")


def test_usage_from_api_without_breakdown_treats_cache_writes_as_5m():
    usage = Usage.from_api(
        {
            "input_tokens": 10,
            "cache_creation_input_tokens": 400,
            "cache_read_input_tokens": 20,
            "output_tokens": 5,
        }
    )
    assert usage == Usage(
        input_tokens=10,
        output_tokens=5,
        cache_creation_input_tokens=400,
        cache_creation_5m=400,
        cache_creation_1h=0,
        cache_read_input_tokens=20,
    )
    # 10 * 3 = 30; 400 * 3 * 1.25 = 1500; 20 * 3 * 0.1 = 6; 5 * 15 = 75 -> 1611
    assert cost_usd("claude-sonnet-4-5", usage) == Decimal("0.001611")


def test_usage_from_api_with_breakdown_prices_1h_writes_at_2x():
    usage = Usage.from_api(
        {
            "input_tokens": 0,
            "cache_creation_input_tokens": 400,
            "cache_creation": {"ephemeral_5m_input_tokens": 100, "ephemeral_1h_input_tokens": 300},
            "output_tokens": 0,
        }
    )
    assert (usage.cache_creation_5m, usage.cache_creation_1h) == (100, 300)
    # 100 * 3 * 1.25 = 375; 300 * 3 * 2 = 1800 -> 2175
    assert cost_usd("claude-sonnet-4-5", usage) == Decimal("0.002175")


def test_usage_from_api_tolerates_missing_and_null_fields():
    assert Usage.from_api(None) == Usage()
    assert Usage.from_api({}) == Usage()
    assert Usage.from_api(
        {"input_tokens": 3, "output_tokens": None, "cache_read_input_tokens": None, "cache_creation": None}
    ) == Usage(input_tokens=3)


def test_prompt_tokens_sums_uncached_cache_write_and_cache_read():
    usage = Usage(
        input_tokens=1, cache_creation_input_tokens=20, cache_read_input_tokens=300, output_tokens=4000
    )
    assert usage.prompt_tokens == 321


def test_claude_3_haiku_uses_its_own_cache_rates():
    usage = Usage(
        input_tokens=1000,
        output_tokens=1000,
        cache_creation_input_tokens=3000,
        cache_creation_5m=1000,
        cache_creation_1h=2000,
        cache_read_input_tokens=10_000,
    )
    # $0.25 in, $1.25 out, 5m write $0.30, 1h write $0.50, read $0.03:
    # 250 + 1250 + 300 + 1000 + 300 = 3100
    assert cost_usd("claude-3-haiku-20240307", usage) == Decimal("0.0031")


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        # $4 in, read $0.2 (0.05x): 1000 * 4 + 100000 * 0.2 + 1000 * 20 = 44000
        ("claude-opus-5-5", "0.044"),
        # $10 in, read $0.25 (0.025x): 1000 * 10 + 100000 * 0.25 + 1000 * 50 = 85000
        ("claude-fable-5-1", "0.085"),
        # $10 in, read $1 (0.1x): 1000 * 10 + 100000 * 1 + 1000 * 50 = 160000
        ("claude-fable-5", "0.16"),
    ],
)
def test_models_with_non_standard_cache_read_ratio(model, expected):
    usage = Usage(input_tokens=1000, cache_read_input_tokens=100_000, output_tokens=1000)
    assert cost_usd(model, usage) == Decimal(expected)


def test_long_context_tier_applies_cache_multipliers_to_the_long_rate():
    usage = Usage(
        input_tokens=10_000,
        cache_creation_input_tokens=100_000,
        cache_creation_5m=60_000,
        cache_creation_1h=40_000,
        cache_read_input_tokens=150_000,
        output_tokens=2000,
    )
    # prompt 260k > 200k on Sonnet 4.5: $6 in, $22.5 out, writes 7.5 / 12, read 0.6
    # 60000 + 450000 + 480000 + 90000 + 45000 = 1125000
    assert cost_usd("claude-sonnet-4-5-20250929", usage) == Decimal("1.125")


def test_sonnet_4_6_has_no_long_context_surcharge():
    usage = Usage(input_tokens=300_000, output_tokens=1000)
    # 300000 * 3 + 1000 * 15 = 915000
    assert cost_usd("claude-sonnet-4-6", usage) == Decimal("0.915")


def test_haiku_5_5_long_tier_starts_above_100k():
    at = Usage(input_tokens=100_000, output_tokens=1000)
    above = Usage(input_tokens=100_001, output_tokens=1000)
    # at 100k: 100000 * 0.10 + 1000 * 0.50 = 10500
    assert cost_usd("claude-haiku-5-5", at) == Decimal("0.0105")
    # above: 100001 * 0.50 + 1000 * 2.50 = 52500.5
    assert cost_usd("claude-haiku-5-5", above) == Decimal("0.0525005")
