"""The model's answer checked: JSON, the schema, and tips that quote the prompts they cite.

A failure is a ``InvalidAnalysis`` whose message is written for the model (it is sent back once,
with the bad answer, for a corrected one) and for the stored failure reason.
"""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic import ValidationError

from nexus.analysis.schema import ModelAnalysis

_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.S)


class InvalidAnalysis(Exception):
    """The answer is not a valid analysis (the message says why)."""


def _norm(text: str) -> str:
    return " ".join(text.replace("\u2019", "'").split()).casefold()


def parse(text: str) -> dict[str, Any]:
    text = text.strip()
    m = _FENCE.match(text)
    if m:
        text = m.group(1)
    if not text.startswith("{"):
        start = text.find("{")
        if start < 0:
            raise InvalidAnalysis("the answer holds no JSON object")
        text = text[start:]
    try:
        doc, _ = json.JSONDecoder().raw_decode(text)
    except json.JSONDecodeError as exc:
        raise InvalidAnalysis(f"the answer is not valid JSON ({exc.msg} at character {exc.pos})") from None
    if not isinstance(doc, dict):
        raise InvalidAnalysis("the answer must be a JSON object")
    return doc


def check(text: str, quotable: dict[int, str]) -> ModelAnalysis:
    """The analysis in ``text``; every tip must quote the prompt of the request it names, which
    ``quotable`` holds (request number -> prompt text, or quotes allowed for it)."""
    doc = parse(text)
    try:
        analysis = ModelAnalysis.model_validate(doc)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'answer'}: {e['msg']}" for e in exc.errors()[:8]
        )
        raise InvalidAnalysis(f"the JSON does not match the schema: {problems}") from None
    for i, tip in enumerate(analysis.tips):
        source = quotable.get(tip.request)
        if source is None:
            known = ", ".join(f"#{n}" for n in sorted(quotable)[:30]) or "none"
            raise InvalidAnalysis(
                f"tips.{i}.request: #{tip.request} is not a request with a user prompt here "
                f"(those are: {known})"
            )
        if _norm(tip.quote) not in _norm(source):
            raise InvalidAnalysis(
                f"tips.{i}.quote: {tip.quote!r} is not copied exactly from the prompt of "
                f"request #{tip.request}"
            )
    return analysis
