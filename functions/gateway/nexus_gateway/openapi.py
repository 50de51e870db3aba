"""The gateway's OpenAPI document: FastAPI's routes, completed with what they take and answer.

The routes read their bodies themselves (OpenAI's shapes, parsed by ``chat_request`` and
``responses`` so that every refusal is worded as OpenAI words it), so FastAPI knows neither the
bodies nor any status but 200, and documents a 422 the gateway never sends (bad input is a 400).
This completes each operation: its request body (the same pydantic models that parse it, with the
message shapes spelt out), its success answer (JSON, or server-sent events when ``stream`` is true),
and every error status it can answer, all in OpenAI's error shape. Model calls can also end with the
status the upstream answered (passed through, in the same shape), hence their longer list.
"""

from __future__ import annotations

import copy
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

from nexus_gateway import catalog
from nexus_gateway.chat_request import ChatRequest
from nexus_gateway.conversations import ConversationCreate
from nexus_gateway.dialogue import EFFORTS
from nexus_gateway.errors import TYPES
from nexus_gateway.responses import ResponsesRequest

REF = "#/components/schemas/{model}"
ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["message", "type", "param", "code"],
            "properties": {
                "message": {"type": "string", "description": "what went wrong, for a person to read"},
                "type": {"type": "string", "enum": sorted(set(TYPES.values()))},
                "param": {"type": ["string", "null"], "description": "the parameter at fault"},
                "code": {"type": ["string", "null"], "description": "a stable code for programs"},
            },
        }
    },
}
RETRY_AFTER = {"description": "seconds to wait", "schema": {"type": "string"}}

_TEXT_PART = {
    "type": "object",
    "required": ["type", "text"],
    "properties": {"type": {"const": "text"}, "text": {"type": "string"}},
}
_TEXT_CONTENT = {"oneOf": [{"type": "string"}, {"type": "array", "items": _TEXT_PART}]}
_IMAGE_PART = {
    "type": "object",
    "required": ["type", "image_url"],
    "properties": {
        "type": {"const": "image_url"},
        "image_url": {
            "type": "object",
            "required": ["url"],
            "properties": {
                "url": {
                    "type": "string",
                    "description": "a data: URL, or an http(s) URL the gateway fetches",
                },
                "detail": {"type": "string"},
            },
        },
    },
}
_TOOL_CALL = {
    "type": "object",
    "required": ["id", "type", "function"],
    "properties": {
        "id": {"type": "string"},
        "type": {"const": "function"},
        "function": {
            "type": "object",
            "required": ["name", "arguments"],
            "properties": {
                "name": {"type": "string"},
                "arguments": {"type": "string", "description": "the arguments as a JSON text"},
            },
        },
    },
}
CHAT_MESSAGE = {
    "description": "A message of the conversation so far. The last one is the user's or a tool's; a "
    "tool message answers a tool call of the assistant message before it.",
    "oneOf": [
        {
            "type": "object",
            "required": ["role", "content"],
            "properties": {
                "role": {"enum": ["system", "developer"]},
                "content": _TEXT_CONTENT,
                "name": {"type": "string"},
            },
        },
        {
            "type": "object",
            "required": ["role", "content"],
            "properties": {
                "role": {"const": "user"},
                "content": {
                    "oneOf": [
                        {"type": "string"},
                        {"type": "array", "minItems": 1, "items": {"oneOf": [_TEXT_PART, _IMAGE_PART]}},
                    ]
                },
                "name": {"type": "string"},
            },
        },
        {
            "type": "object",
            "required": ["role"],
            "properties": {
                "role": {"const": "assistant"},
                "content": {
                    "oneOf": [{"type": "string"}, {"type": "null"}, {"type": "array", "items": _TEXT_PART}]
                },
                "tool_calls": {"type": "array", "items": _TOOL_CALL},
                "refusal": {"type": ["string", "null"]},
                "name": {"type": "string"},
            },
        },
        {
            "type": "object",
            "required": ["role", "tool_call_id", "content"],
            "properties": {
                "role": {"const": "tool"},
                "tool_call_id": {"type": "string"},
                "content": _TEXT_CONTENT,
            },
        },
    ],
}
# Parameters OpenAI defines that Claude Code cannot honour: accepted only with the value it uses anyway.
NEUTRAL = {
    "n": "only 1",
    "temperature": "only 1 (Claude Code samples with its own settings)",
    "top_p": "only 1",
    "presence_penalty": "only 0",
    "frequency_penalty": "only 0",
    "logprobs": "only false",
    "top_logprobs": "only 0",
    "logit_bias": "only empty",
    "stop": "only empty: Claude Code does not let a client set stop sequences",
    "seed": "not accepted",
    "modalities": 'only ["text"]',
    "audio": "not accepted",
    "prediction": "not accepted",
    "web_search_options": "not accepted",
    "parallel_tool_calls": "only true",
    "service_tier": "only auto or default",
    "background": "only false",
    "conversation": "not accepted: use previous_response_id, or resend the input",
    "truncation": "only disabled",
    "max_tool_calls": "not accepted",
}
CHAT_COMPLETION = {
    "type": "object",
    "required": ["id", "object", "created", "model", "choices", "usage"],
    "properties": {
        "id": {"type": "string"},
        "object": {"const": "chat.completion"},
        "created": {"type": "integer"},
        "model": {"type": "string"},
        "choices": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["index", "message", "finish_reason"],
                "properties": {
                    "index": {"type": "integer"},
                    "message": {
                        "type": "object",
                        "required": ["role", "content"],
                        "properties": {
                            "role": {"const": "assistant"},
                            "content": {"type": ["string", "null"]},
                            "tool_calls": {"type": "array", "items": _TOOL_CALL},
                        },
                    },
                    "finish_reason": {"enum": ["stop", "length", "tool_calls", "content_filter"]},
                },
            },
        },
        "usage": {"type": "object"},
        "conversation_id": {"type": "string", "description": "the conversation this turn continued"},
    },
}
RESPONSE = {
    "type": "object",
    "required": ["id", "object", "created_at", "status", "model", "output"],
    "properties": {
        "id": {"type": "string"},
        "object": {"const": "response"},
        "created_at": {"type": "integer"},
        "status": {"enum": ["completed", "incomplete", "failed", "in_progress"]},
        "model": {"type": "string"},
        "output": {"type": "array", "items": {"type": "object"}},
    },
}
MODEL = {
    "type": "object",
    "required": ["id", "object", "created", "owned_by"],
    "properties": {
        "id": {"type": "string"},
        "object": {"const": "model"},
        "created": {"type": "integer"},
        "owned_by": {"type": "string"},
    },
}
CONVERSATION = {
    "type": "object",
    "required": ["id", "object", "created_at", "model", "turns", "metadata", "usage"],
    "properties": {
        "id": {"type": "string"},
        "object": {"const": "conversation"},
        "created_at": {"type": "integer"},
        "last_used_at": {"type": "integer"},
        "model": {"type": "string"},
        "turns": {"type": "integer"},
        "metadata": {"type": "object", "additionalProperties": {"type": "string"}},
        "usage": {"type": "object"},
        "system": {"type": ["string", "null"]},
        "messages": {"type": "array", "items": {"type": "object"}},
    },
}

# Operation -> (request body schema name, success schema, errors beyond 401, streams).
MODEL_CALL_ERRORS = ("400", "403", "404", "409", "413", "429", "500", "502", "503", "504", "529")
OPERATIONS: dict[tuple[str, str], tuple[str | None, dict[str, Any], tuple[str, ...], bool]] = {
    ("post", "/v1/chat/completions"): ("ChatCompletionRequest", CHAT_COMPLETION, MODEL_CALL_ERRORS, True),
    ("post", "/v1/responses"): ("ResponseRequest", RESPONSE, MODEL_CALL_ERRORS, True),
    ("get", "/v1/responses/{response_id}"): (None, RESPONSE, ("404",), False),
    ("get", "/v1/models"): (
        None,
        {
            "type": "object",
            "required": ["object", "data"],
            "properties": {"data": {"type": "array", "items": MODEL}},
        },
        (),
        False,
    ),
    ("get", "/v1/models/{model_id}"): (None, MODEL, ("404",), False),
    ("post", "/v1/conversations"): ("ConversationCreate", CONVERSATION, ("400", "404"), False),
    ("get", "/v1/conversations"): (
        None,
        {"type": "object", "required": ["object", "data", "has_more", "last_id"]},
        ("400",),
        False,
    ),
    ("get", "/v1/conversations/{conversation_id}"): (None, CONVERSATION, ("404",), False),
    ("get", "/v1/memory/search"): (
        None,
        {
            "type": "object",
            "required": ["object", "data", "first_id", "last_id", "has_more"],
            "properties": {
                "object": {"const": "list"},
                "data": {"type": "array", "items": {"type": "object"}},
            },
        },
        ("400", "403", "503"),
        False,
    ),
    ("delete", "/v1/memory/{item_id}"): (
        None,
        {
            "type": "object",
            "required": ["id", "object", "deleted"],
            "properties": {"object": {"const": "memory.item.deleted"}, "deleted": {"const": True}},
        },
        ("403", "404", "503"),
        False,
    ),
    ("get", "/stats"): (None, {"type": "object"}, (), False),
}
OPEN = {("get", "/health"), ("get", "/ready")}  # no key: load balancers and health checks call them
DESCRIPTIONS = {
    "400": "Bad input: a parameter or the body is not what the operation accepts (`param` names it).",
    "401": "No Nexus key where keys are required, or a key that is wrong or revoked.",
    "403": "Not allowed: memory is off for this key or team, or the upstream refused the credential "
    "(passed through).",
    "404": "Nothing with that id, or a model the gateway does not offer (`code` says which).",
    "409": "That point of the conversation cannot be continued.",
    "413": "The request is larger than the upstream accepts (passed through).",
    "429": "Every Claude Code session is busy and the queue is full (Retry-After), or the upstream's rate "
    "limit (passed through).",
    "500": "A fault of the gateway (logged).",
    "502": "Claude Code or the upstream failed to answer.",
    "503": "The gateway is starting, or cannot do this without its database (continuing an unknown "
    "history, memory).",
    "504": "The turn took longer than the gateway's limit.",
    "529": "The upstream is overloaded (passed through).",
}


def _schema_of(model: type[BaseModel], components: dict[str, Any]) -> dict[str, Any]:
    schema = model.model_json_schema(by_alias=True, ref_template=REF)
    components.update(schema.pop("$defs", {}))
    return schema


def _note_refusals(schema: dict[str, Any]) -> None:
    for name, prop in schema["properties"].items():
        if name in NEUTRAL:
            prop["description"] = NEUTRAL[name]


def request_schemas(components: dict[str, Any]) -> None:
    chat = _schema_of(ChatRequest, components)
    chat["properties"]["model"]["description"] = (
        f"a model id or alias: {', '.join([*catalog.ALIASES, *catalog.MODELS])} (others answer 404)"
    )
    chat["properties"]["messages"] = {
        "type": "array",
        "minItems": 1,
        "items": {"$ref": REF.format(model="ChatMessage")},
    }
    chat["properties"]["reasoning_effort"]["description"] = f"one of {', '.join(EFFORTS)}"
    chat["properties"]["conversation_id"]["description"] = "continue a conversation the gateway holds"
    _note_refusals(chat)
    components["ChatMessage"] = CHAT_MESSAGE
    components["ChatCompletionRequest"] = chat
    responses = _schema_of(ResponsesRequest, components)
    responses["properties"]["model"]["description"] = chat["properties"]["model"]["description"]
    _note_refusals(responses)
    components["ResponseRequest"] = responses
    components["ConversationCreate"] = _schema_of(ConversationCreate, components)


def _error(status: str) -> dict[str, Any]:
    out: dict[str, Any] = {
        "description": DESCRIPTIONS[status],
        "content": {"application/json": {"schema": {"$ref": REF.format(model="Error")}}},
    }
    if status == "429":
        out["headers"] = {"Retry-After": {**RETRY_AFTER, "required": False}}
    if status == "401":
        out["headers"] = {"WWW-Authenticate": {"schema": {"type": "string"}, "required": True}}
    return out


def _complete(method: str, path: str, op: dict[str, Any], security: list[dict[str, list[str]]]) -> None:
    responses = op["responses"]
    responses.pop("422", None)
    if (method, path) in OPEN:
        if path == "/ready":
            responses["503"] = _error("503")
        op["security"] = []
        return
    # An operation missing from OPERATIONS still gets what every one answers (the document's test
    # names it: each operation must be described here).
    takes_input = "{" in path or bool(op.get("parameters"))
    body, success, errors, streams = OPERATIONS.get(
        (method, path), (None, {"type": "object"}, ("400", "404") if takes_input else (), False)
    )
    content: dict[str, Any] = {"application/json": {"schema": success}}
    if streams:
        content["text/event-stream"] = {
            "schema": {"type": "string"},
            "description": 'with "stream": true: server-sent events, OpenAI\'s chunks, ending "data: [DONE]"',
        }
    responses["200"] = {"description": "Successful Response", "content": content}
    if body is not None:
        op["requestBody"] = {
            "required": method == "post" and path != "/v1/conversations",
            "content": {"application/json": {"schema": {"$ref": REF.format(model=body)}}},
        }
    for status in ("401", *errors):
        responses[status] = _error(status)
    op["security"] = security


def document(app: FastAPI, require_keys: bool) -> dict[str, Any]:
    """The document, built once. Where keys are optional (localhost) the key may be left out."""
    if app.openapi_schema is None:
        doc = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        components = doc.setdefault("components", {})
        schemas = components.setdefault("schemas", {})
        for unused in ("HTTPValidationError", "ValidationError"):
            schemas.pop(unused, None)
        schemas["Error"] = copy.deepcopy(ERROR)
        request_schemas(schemas)
        components["securitySchemes"] = {
            "nexusKey": {
                "type": "http",
                "scheme": "bearer",
                "description": "A Nexus key (nxk_...), as OpenAI clients send their API key.",
            }
        }
        security: list[dict[str, list[str]]] = [{"nexusKey": []}] if require_keys else [{"nexusKey": []}, {}]
        for path, ops in doc.get("paths", {}).items():
            for method, op in ops.items():
                _complete(method, path, op, security)
        app.openapi_schema = doc
    return app.openapi_schema
