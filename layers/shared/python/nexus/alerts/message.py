"""How an alert reads: a Slack message (text plus blocks) and an SNS subject and body (what email
subscribers get). Pure. Whatever a source wrote goes through ``redact`` first: a credential that
slipped into a message or a fact is masked before it can reach a channel or the log."""

from __future__ import annotations

import re
from typing import Any

from nexus.alert_events import AlertEvent

ICON = {"info": ":information_source:", "warning": ":warning:", "critical": ":rotating_light:"}
# Anthropic keys and OAuth tokens, Nexus client and dashboard keys, Slack webhooks and tokens.
_SECRET = re.compile(
    r"sk-ant-[A-Za-z0-9_\-]+|nx[kd]_[A-Za-z0-9_\-]+|https?://hooks\.slack\.com/\S+|xox[abposr]-[A-Za-z0-9\-]+"
)
SUBJECT_MAX = 100  # SNS's limit


def redact(text: str) -> str:
    return _SECRET.sub("[redacted]", text)


def redact_facts(facts: dict[str, Any]) -> dict[str, Any]:
    """The facts with every text value redacted (numbers and the rest as they are)."""
    return {k: redact(v) if isinstance(v, str) else v for k, v in facts.items()}


def _fact(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return redact(str(value))


def facts(event: AlertEvent) -> list[tuple[str, str]]:
    return [(k, _fact(v)) for k, v in event.facts.items() if v is not None]


def title(event: AlertEvent, stage: str | None = None) -> str:
    where = f"Nexus {stage}" if stage else "Nexus"
    who = f"team {event.team}" if event.team is not None else "operators"
    return redact(f"[{where}] {event.level}: {event.kind.replace('_', ' ')} ({who})")


def slack(event: AlertEvent, stage: str | None = None) -> dict[str, Any]:
    """``WebhookClient.send`` arguments: a plain ``text`` (notifications) and readable blocks."""
    head = f"{ICON.get(event.level, '')} *{title(event, stage)}*".strip()
    body = redact(event.message)
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": f"{head}\n{body}"}},
    ]
    fields = [{"type": "mrkdwn", "text": f"*{k}*\n{v}"} for k, v in facts(event)[:10]]
    if fields:
        blocks.append({"type": "section", "fields": fields})
    blocks.append(
        {
            "type": "context",
            "elements": [{"type": "mrkdwn", "text": redact(f"{event.subject} · {event.kind}")}],
        }
    )
    return {"text": f"{title(event, stage)}: {body}", "blocks": blocks}


def email(event: AlertEvent, stage: str | None = None) -> tuple[str, str]:
    """SNS ``Subject`` (one line, at most 100 characters) and ``Message`` (plain text)."""
    subject = title(event, stage).replace("\n", " ")[:SUBJECT_MAX]
    lines = [redact(event.message), "", *(f"{k}: {v}" for k, v in facts(event)), ""]
    lines += [f"subject: {redact(event.subject)}", f"kind: {event.kind}", f"level: {event.level}"]
    return subject, "\n".join(lines)
