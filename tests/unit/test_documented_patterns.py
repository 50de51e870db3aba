"""The text rules the OpenAPI document states (JSON Schema patterns, ECMA-262 regular expressions)
are exactly the rules the dashboard applies (Python), so a client that follows the document is never
refused, and one that does not always is. Checked character by character with jsonschema-rs, the
validator schemathesis uses."""

from __future__ import annotations

import jsonschema_rs
import pytest
from nexus_dashboard import filters, keys
from pydantic import TypeAdapter, ValidationError

CHARS = [chr(c) for c in range(0x3100)] + ["\ufeff", "\U0001f600"]


def _accepts(adapter: TypeAdapter, value: str) -> bool:
    try:
        adapter.validate_python(value)
    except ValidationError:
        return False
    return True


@pytest.mark.parametrize(
    ("pattern", "type_"),
    [(filters.PRINTABLE_PATTERN, filters.Name), (keys.ONE_LINE, keys.KeyName)],
    ids=["text filter", "key name"],
)
def test_the_documented_pattern_is_the_rule_applied(pattern: str, type_: object) -> None:
    documented = jsonschema_rs.validator_for({"type": "string", "pattern": pattern})
    applied = TypeAdapter(type_)
    for c in CHARS:
        for value in (f"a{c}b", f"{c}", f" {c} "):
            assert documented.is_valid(value) == _accepts(applied, value), (pattern, hex(ord(c)), value)
