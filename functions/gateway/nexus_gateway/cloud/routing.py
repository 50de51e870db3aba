"""Which worker serves a request: a route key computed from the request, ranked over the workers by
rendezvous (highest random weight) hashing.

The key is stable across the turns of one conversation, so its turns reach the worker holding it
warm; rendezvous hashing moves only the keys of a worker that joins or leaves, and gives every key an
order of fallbacks (when the first worker is gone, the next resumes the session from the store).

Keys, by what the request names:
- a conversation (``/v1/conversations/{id}``, ``conversation`` or ``conversation_id`` in the body):
  the conversation;
- a stored response (``previous_response_id``, ``/v1/responses/{id}``): the key embedded in the
  response's id (the worker writes the route key it was given into the ids it creates);
- otherwise (a client resending its history): the caller's credential and the conversation's
  opening (system prompt and first message), which every later turn of it resends unchanged.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

import orjson

ROUTE_HEADER = "x-nexus-route"  # router -> worker: the key this request was routed by
KEY_LEN = 16  # hex digits
_KEY = re.compile(f"[0-9a-f]{{{KEY_LEN}}}")
RESPONSE_PREFIX = "resp_"


def _digest(*parts: str | bytes) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode() if isinstance(p, str) else p)
        h.update(b"\0")
    return h.hexdigest()[:KEY_LEN]


def valid_key(value: str | None) -> str | None:
    """A route key as the worker accepts it from the router (anything else is ignored)."""
    return value if value is not None and _KEY.fullmatch(value) else None


def key_of_response(response_id: str) -> str | None:
    """The route key embedded in a response id (``resp_`` + key + random)."""
    if response_id.startswith(RESPONSE_PREFIX):
        return valid_key(response_id[len(RESPONSE_PREFIX) : len(RESPONSE_PREFIX) + KEY_LEN])
    return None


def _text(content: Any) -> str:
    """A message's text as clients resend it: string content, or text parts joined."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            str(p.get("text", "")) for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)
        )
    return ""


def _opening(items: list[Any]) -> tuple[str, str]:
    """System text and the first other message's role and text."""
    system, first = [], ""
    for item in items:
        if not isinstance(item, dict):
            continue
        role = item.get("role")
        if role in ("system", "developer"):
            system.append(_text(item.get("content")))
        elif role is not None or item.get("type") == "message":
            first = f"{role}\0{_text(item.get('content'))}"
            break
    return "\n".join(system), first


def route_key(method: str, path: str, headers: dict[str, str], body: bytes) -> str:
    """``headers``: lower-cased. Never fails: a request the router cannot read is routed by its
    bytes, and the worker answers it (with a proper error if it is malformed)."""
    parts = path.rstrip("/").split("/")
    if len(parts) >= 4 and parts[1:3] == ["v1", "conversations"]:
        return _digest("conversation", parts[3])
    if len(parts) >= 4 and parts[1:3] == ["v1", "responses"]:
        return key_of_response(parts[3]) or _digest("response", parts[3])
    doc: Any = None
    if method == "POST" and body:
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError:
            doc = None
    if not isinstance(doc, dict):
        return _digest("bytes", path, body)
    conversation = doc.get("conversation_id") or doc.get("conversation")
    if isinstance(conversation, dict):
        conversation = conversation.get("id")
    if isinstance(conversation, str) and conversation:
        return _digest("conversation", conversation)
    previous = doc.get("previous_response_id")
    if isinstance(previous, str) and previous:
        return key_of_response(previous) or _digest("response", previous)
    caller = headers.get("authorization", "") + "\0" + headers.get("x-api-key", "")
    if path.endswith("/chat/completions"):
        messages = doc.get("messages")
        system, first = _opening(messages if isinstance(messages, list) else [])
    else:
        given = doc.get("input")
        items = [{"role": "user", "content": given}] if isinstance(given, str) else given
        system, first = _opening(items if isinstance(items, list) else [])
        instructions = doc.get("instructions")
        if isinstance(instructions, str):
            system = instructions + "\n" + system
    return _digest("opening", caller, system, first)


def rank(key: str, workers: list[str]) -> list[str]:
    """``workers`` in the order this key tries them: highest weight first."""
    return sorted(workers, key=lambda w: hashlib.sha256(f"{key}\0{w}".encode()).digest(), reverse=True)
