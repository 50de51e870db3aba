"""What an analysis is: one JSON document, validated by these models.

The model writes ``ModelAnalysis``; Nexus adds the facts it was computed from (``Facts``) and stores
both (``StoredAnalysis``). Tips quote the user prompt they come from, named by its request number in
the conversation (``#n``, as the conversation page numbers requests).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

Outcome = Literal["resolved", "partly", "not", "abandoned"]
Sentiment = Literal["positive", "neutral", "negative", "mixed"]
OUTCOMES: tuple[Outcome, ...] = ("resolved", "partly", "not", "abandoned")
SCORE_NAMES = ("task_success", "prompt_clarity", "efficiency")

OneLine = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300, pattern=r"^[^\n]*$")
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Score(_Strict):
    value: int = Field(ge=1, le=5, description="1 (poor) to 5 (excellent)")
    reason: OneLine


class Scores(_Strict):
    task_success: Score
    prompt_clarity: Score
    efficiency: Score = Field(
        description="tokens spent on retries, failed tool calls and context churn (compactions)"
    )


class Tip(_Strict):
    advice: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]
    request: int = Field(ge=1, description="the number #n of the request whose prompt the tip is about")
    quote: Annotated[str, StringConstraints(strip_whitespace=True, min_length=3, max_length=300)] = Field(
        description="words copied exactly from that request's user prompt"
    )


class ModelAnalysis(_Strict):
    """What the model must answer, as JSON."""

    summary: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]
    outcome: Outcome
    scores: Scores
    tips: list[Tip] = Field(max_length=8)
    went_well: list[OneLine] = Field(max_length=8)
    sentiment: Sentiment


class Facts(_Strict):
    """What the analysis was computed from, added by Nexus (never by the model)."""

    model: str
    prompt_version: str
    input_hash: str
    input_tokens: int
    output_tokens: int
    cost_usd: float | None
    calls: int  # model calls made, retries and chunk calls included
    chunks: int
    source_tokens: int  # estimated tokens of the transcript before condensation
    condensed_tokens: int
    request_count: int  # the conversation's requests when it was loaded


class StoredTip(Tip):
    request_id: str | None  # the request #n is, for links (None if it is gone)


class StoredAnalysis(ModelAnalysis):
    tips: list[StoredTip] = Field(max_length=8)  # type: ignore[assignment]
    facts: Facts


def json_schema() -> dict[str, object]:
    """The schema the prompt shows the model."""
    return ModelAnalysis.model_json_schema()
