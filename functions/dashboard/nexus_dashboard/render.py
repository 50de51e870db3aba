"""Anthropic Messages content made readable: markdown with highlighted code, tool calls paired with
their results, system reminders set apart, images inline.

Output is a list of parts per message that the templates lay out. Everything a model or a user wrote
is escaped: markdown runs with raw HTML off, and only image media types a browser cannot script are
inlined.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

import orjson
from markdown_it import MarkdownIt
from markupsafe import Markup, escape
from nexus import pg_text
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import get_lexer_by_name
from pygments.util import ClassNotFound

MARKDOWN_MAX_CHARS = 60_000  # past this, plain text: markdown and highlighting cost grows with size
HIGHLIGHT_MAX_CHARS = 20_000
IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
REMINDER = re.compile(r"<system-reminder>(.*?)</system-reminder>", re.S)
_FORMATTER = HtmlFormatter(nowrap=True)


def _highlight(code: str, lang: str, _attrs: Any) -> str:
    if not lang or len(code) > HIGHLIGHT_MAX_CHARS:
        return ""  # markdown-it escapes it as plain code
    try:
        lexer = get_lexer_by_name(lang.split()[0], stripnl=False)
    except ClassNotFound:
        return ""
    return highlight(code, lexer, _FORMATTER)


_MD = MarkdownIt("commonmark", {"html": False, "highlight": _highlight}).enable(["table", "strikethrough"])


@lru_cache(maxsize=4096)
def markdown(text: str) -> Markup:
    """Markdown to safe HTML. Cached: a conversation resends the same messages on every turn."""
    if len(text) > MARKDOWN_MAX_CHARS:
        return Markup('<pre class="plain">') + escape(text) + Markup("</pre>")
    return Markup(_MD.render(text))


def pretty_json(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS).decode()


def _clip(text: str, limit: int | None) -> tuple[str, bool]:
    if limit is None or len(text) <= limit:
        return text, False
    return text[:limit], True


def text_parts(text: str, limit: int | None = None) -> list[dict[str, Any]]:
    """A text block: its system reminders as parts of their own, the rest as markdown."""
    text = pg_text.text(text)  # markdown would turn a NUL into U+FFFD; show it as what it is
    parts: list[dict[str, Any]] = []
    pos = 0
    for m in REMINDER.finditer(text):
        before = text[pos : m.start()].strip()
        if before:
            parts.append(_markdown_part(before, limit))
        parts.append({"kind": "reminder", "text": m.group(1).strip()})
        pos = m.end()
    rest = text[pos:].strip()
    if rest:
        parts.append(_markdown_part(rest, limit))
    return parts


def _markdown_part(text: str, limit: int | None) -> dict[str, Any]:
    shown, clipped = _clip(text, limit)
    return {"kind": "text", "html": markdown(shown), "clipped": clipped}


def _image(block: dict[str, Any]) -> dict[str, Any]:
    src = block.get("source") or {}
    if src.get("type") == "base64" and src.get("media_type") in IMAGE_TYPES:
        return {"kind": "image", "src": f"data:{src['media_type']};base64,{src.get('data', '')}"}
    # A URL image is never fetched by the dashboard (CSP blocks it, and it would leak the view).
    return {"kind": "image_ref", "text": src.get("url") or src.get("type") or "image"}


def _result_parts(content: Any, limit: int | None) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return text_parts(content, limit)
    parts: list[dict[str, Any]] = []
    for block in content or []:
        if block.get("type") == "text":
            parts.extend(text_parts(block.get("text", ""), limit))
        elif block.get("type") == "image":
            parts.append(_image(block))
        else:
            parts.append({"kind": "json", "text": _clip(pretty_json(block), limit)[0]})
    return parts


def block_parts(block: Any, limit: int | None, calls: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """One content block as parts. Tool calls are remembered in ``calls`` so their results, which
    come in the next user message, are attached to them."""
    if isinstance(block, str):
        return text_parts(block, limit)
    kind = block.get("type")
    if kind == "text":
        return text_parts(block.get("text", ""), limit)
    if kind in ("thinking", "redacted_thinking"):
        thinking = pg_text.text(block.get("thinking") or "(redacted)")
        return [{"kind": "thinking", "text": _clip(thinking, limit)[0]}]
    if kind in ("tool_use", "server_tool_use"):
        call = {
            "kind": "tool_use",
            "id": block.get("id", ""),
            "name": block.get("name", ""),
            "input": _clip(pretty_json(block.get("input", {})), limit)[0],
            "result": None,
        }
        calls[call["id"]] = call
        return [call]
    if kind == "tool_result":
        result = {
            "kind": "tool_result",
            "id": block.get("tool_use_id", ""),
            "is_error": bool(block.get("is_error")),
            "parts": _result_parts(block.get("content"), limit),
        }
        called = calls.get(result["id"])
        if called is not None:
            called["result"] = result
            return [
                {
                    "kind": "result_ref",
                    "id": result["id"],
                    "name": called["name"],
                    "is_error": result["is_error"],
                }
            ]
        return [result]
    if kind == "image":
        return [_image(block)]
    return [{"kind": "json", "text": _clip(pretty_json(block), limit)[0]}]


def message_parts(
    message: dict[str, Any], limit: int | None = None, calls: dict[str, dict[str, Any]] | None = None
) -> list[dict[str, Any]]:
    calls = {} if calls is None else calls
    content = message.get("content")
    if isinstance(content, str):
        return text_parts(content, limit)
    return [p for block in content or [] for p in block_parts(block, limit, calls)]


def conversation(body: dict[str, Any], response: Any) -> dict[str, Any]:
    """A request body and its response as the page shows them: system prompt, tools, and every
    message (the response last), tool calls paired with their results."""
    calls: dict[str, dict[str, Any]] = {}
    messages = []
    for i, m in enumerate(body.get("messages") or []):
        if isinstance(m, dict):
            messages.append({"n": i, "role": m.get("role", "?"), "parts": message_parts(m, None, calls)})
    answer = None
    if isinstance(response, dict) and response.get("type") == "message":
        answer = {"n": len(messages), "role": "assistant", "parts": message_parts(response, None, calls)}
    system = body.get("system")
    if isinstance(system, list):
        system_parts = [p for b in system for p in block_parts(b, None, {})]
    elif isinstance(system, str):
        system_parts = text_parts(system)
    else:
        system_parts = []
    tools = [
        {
            "name": t.get("name", t.get("type", "?")),
            "description": t.get("description", ""),
            "json": pretty_json(t),
        }
        for t in body.get("tools") or []
        if isinstance(t, dict)
    ]
    return {"system": system_parts, "tools": tools, "messages": messages, "answer": answer}
