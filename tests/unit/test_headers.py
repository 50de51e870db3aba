"""nexus.headers: credentials never reach stored headers; only a fingerprint does."""

from __future__ import annotations

import re

import pytest
from nexus.headers import fingerprint, redact, redacted_pairs

SECRETS = {
    "x-api-key": "sk-ant-api03-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789",
    "Authorization": "Bearer sk-ant-oat01-ZyXwVuTsRqPoNmLkJiHgFeDcBa9876543210",
    "X-Nexus-Key": "nxk_a1b2c3d4e5_Zm9vYmFyYmF6cXV4cXV1eHF1dXo",
    "Cookie": "session=s3cr3t-cookie-value-123456",
    "set-cookie": "sid=another-s3cr3t-value-654321; HttpOnly",
    "X-API-KEY": "sk-ant-api03-UPPERCASE-HEADER-NAME-000000",
}


@pytest.mark.parametrize(("name", "value"), list(SECRETS.items()))
def test_secret_headers_are_replaced_by_fingerprint(name, value):
    out = redact(name, value)
    assert re.fullmatch(r"\[redacted [0-9a-f]{12}\]", out)
    assert out == f"[redacted {fingerprint(value)}]"
    assert value not in out
    token = value.split()[-1].split("=")[-1]
    assert token not in out


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("content-type", "application/json"),
        ("anthropic-version", "2023-06-01"),
        ("x-claude-code-session-id", "0193a1b2-c3d4"),
        ("user-agent", "claude-cli/2.0.0 (external, cli)"),
    ],
)
def test_other_headers_pass_unchanged(name, value):
    assert redact(name, value) == value


def test_fingerprint_is_stable_and_distinguishes_credentials():
    a, b = SECRETS["x-api-key"], SECRETS["X-API-KEY"]
    assert fingerprint(a) == fingerprint(a)
    assert fingerprint(a) != fingerprint(b)
    assert redact("x-api-key", a) == redact("X-Api-Key", a)


def test_redacted_pairs_keeps_order_and_duplicates_and_hides_every_secret():
    pairs = [
        ("Content-Type", "application/json"),
        *SECRETS.items(),
        ("anthropic-beta", "x"),
        ("anthropic-beta", "y"),
    ]
    out = redacted_pairs(pairs)
    assert [k for k, _ in out] == [k for k, _ in pairs]
    assert out[0] == ["Content-Type", "application/json"]
    assert out[-2:] == [["anthropic-beta", "x"], ["anthropic-beta", "y"]]
    dump = repr(out)
    for secret in SECRETS.values():
        assert secret not in dump


def test_key_like_query_parameters_are_redacted_for_storage_and_the_rest_kept_exactly():
    from nexus.headers import fingerprint, redact_query

    assert redact_query("beta=true") == "beta=true"
    assert redact_query("") == ""
    assert redact_query("beta=true&api_key=sk-1&Token=t%2B2&x=1&key") == (
        f"beta=true&api_key=[redacted {fingerprint('sk-1')}]&Token=[redacted {fingerprint('t+2')}]&x=1&key"
    )
    assert redact_query("access%5Ftoken=abc") == f"access%5Ftoken=[redacted {fingerprint('abc')}]"
