"""The analysis prompt, versioned: a new ``PROMPT_VERSION`` re-analyses conversations whose stored
analysis came from an older one (the input hash includes it).

``MARKER`` opens every system prompt: the tests' fake upstream recognises analysis calls by it.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from nexus.analysis.condense import Stats
from nexus.analysis.schema import json_schema

PROMPT_VERSION = "2026-11-30.1"
MARKER = "You review Claude Code conversations for a team."

SYSTEM = f"""{MARKER}
You read a condensed transcript of one conversation between a developer and Claude Code (an AI
coding agent) and judge how it went, to help the developer prompt and work better next time.

The transcript: lines start with [#n role], where #n is the number of the request that added the
line. "user" lines are the developer's prompts; "assistant" lines are final answers; "assistant
step", "tool call", "tool result" and "tool error" lines are the agent's work (cut short); "compaction
summary" lines are the context summaries written when the context filled up; "sub-agent" lines are
delegated tasks and their results. "[... chars cut]" marks text left out.

Answer with one JSON object and nothing else, matching this JSON Schema:
{json.dumps(json_schema(), separators=(",", ":"))}

Rules:
- summary: what was asked and what happened, in 2-5 sentences.
- outcome: resolved (the request was met), partly, not (attempted, not met), abandoned (the developer
  stopped or moved on).
- scores: integers 1-5, each with a one-line reason. efficiency counts tokens spent on retries, failed
  tool calls and context churn (compactions, re-reading), not the length of the task.
- tips: concrete advice on prompting and workflow (at most 5). Each names the request number n of the
  user prompt it is about and quotes 3-20 words copied exactly from that prompt's [#n user] line.
- went_well: short lines on what worked.
- sentiment: the developer's apparent mood.
"""

COMBINE = f"""{MARKER}
The conversation was too long for one reading, so it was analysed in parts, in order. Combine the
partial analyses below into one analysis of the whole conversation, with the same JSON Schema and
rules as each part. Tips must be taken from the parts' tips, with their request number and quote
unchanged (keep the most useful, at most 5). Answer with one JSON object and nothing else:
{json.dumps(json_schema(), separators=(",", ":"))}
"""


def facts_line(stats: Stats) -> str:
    return (
        f"Facts: {stats.requests} requests, {stats.tool_calls} tool calls "
        f"({stats.failed_tool_calls} failed), "
        f"{stats.compactions} compactions, {stats.retries} retried requests, {stats.subagents} sub-agents."
    )


def chunk_message(chunk: str, index: int, count: int, facts: str) -> str:
    part = f"Part {index + 1} of {count} of the conversation.\n" if count > 1 else ""
    return f"{part}{facts}\n\nTranscript:\n{chunk}"


def combine_message(partials: list[dict[str, Any]], facts: str) -> str:
    parts = "\n".join(f"Part {i + 1}: {json.dumps(p, sort_keys=True)}" for i, p in enumerate(partials))
    return f"{facts}\n\nPartial analyses:\n{parts}"


def retry_message(error: str) -> str:
    return (
        f"That answer was not valid: {error}\n"
        "Answer again with only the corrected JSON object, following the schema and the rules."
    )


def input_hash(model: str, chunks: list[str], facts: str) -> str:
    """What decides whether a stored analysis is still current: prompt version, model, transcript."""
    h = hashlib.sha256()
    for part in (PROMPT_VERSION, model, facts, *chunks):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()
