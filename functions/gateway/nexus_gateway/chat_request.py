"""``POST /v1/chat/completions`` requests: validated, and turned into a ``Dialogue``.

Unknown parameters are refused (as OpenAI does). Parameters Claude Code cannot honour are refused
with a message that says why, unless they carry the value the engine uses anyway: a client must
never believe a setting took effect when it did not.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from nexus_gateway import catalog, images
from nexus_gateway.dialogue import EFFORTS, Dialogue, Message, ToolSpec, append, text_block
from nexus_gateway.errors import bad_request, invalid, unsupported


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FunctionDef(_Strict):
    name: str = Field(pattern=r"^[a-zA-Z0-9_-]{1,64}$")
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class Tool(_Strict):
    type: Literal["function"]
    function: FunctionDef


class NamedFunction(_Strict):
    name: str


class NamedToolChoice(_Strict):
    type: Literal["function"]
    function: NamedFunction


class JsonSchemaFormat(_Strict):
    name: str
    description: str | None = None
    schema_: dict[str, Any] | None = Field(None, alias="schema")
    strict: bool | None = None


class ResponseFormat(_Strict):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaFormat | None = None


class StreamOptions(_Strict):
    include_usage: bool | None = None
    include_obfuscation: bool | None = None


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    model: str
    messages: list[dict[str, Any]]
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    tools: list[Tool] | None = None
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    parallel_tool_calls: bool | None = None
    response_format: ResponseFormat | None = None
    n: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = None
    logit_bias: dict[str, Any] | None = None
    stop: str | list[str] | None = None
    seed: int | None = None
    user: str | None = None
    metadata: dict[str, str] | None = None
    store: bool | None = None
    service_tier: str | None = None
    modalities: list[str] | None = None
    audio: dict[str, Any] | None = None
    prediction: dict[str, Any] | None = None
    reasoning_effort: str | None = None
    web_search_options: dict[str, Any] | None = None
    # The seed project's extension: continue a conversation the gateway holds, by id.
    conversation_id: str | None = None
    # Nexus memory for this request (like the X-Nexus-Memory header), within what the key allows.
    nexus_memory: bool | None = None


def parse(body: Any) -> ChatRequest:
    if not isinstance(body, dict):
        raise bad_request("the request body must be a JSON object")
    try:
        return ChatRequest.model_validate(body)
    except ValidationError as exc:
        raise invalid(exc) from None


def _refuse_what_cannot_be_honoured(req: ChatRequest) -> None:
    if req.n not in (None, 1):
        raise unsupported("n", "Claude Code produces one choice per request; send n=1 or omit it")
    if req.logprobs or req.top_logprobs:
        raise unsupported("logprobs", "Claude models do not return token log probabilities")
    if req.logit_bias:
        raise unsupported("logit_bias", "Claude models do not take token biases")
    if req.stop:
        raise unsupported("stop", "Claude Code does not let a client set stop sequences")
    if req.seed is not None:
        raise unsupported("seed", "Claude models do not offer seeded sampling")
    for name, neutral in (
        ("temperature", 1.0),
        ("top_p", 1.0),
        ("presence_penalty", 0.0),
        ("frequency_penalty", 0.0),
    ):
        value = getattr(req, name)
        if value is not None and value != neutral:
            raise unsupported(
                name, f"Claude Code samples with its own settings; omit {name} or send {neutral:g}"
            )
    if req.modalities not in (None, ["text"]) or req.audio:
        raise unsupported("modalities", "only text output is available")
    if req.prediction:
        raise unsupported("prediction", "predicted outputs are not available")
    if req.web_search_options:
        raise unsupported("web_search_options", "web search is not available through the gateway")
    if req.reasoning_effort is not None and req.reasoning_effort not in EFFORTS:
        raise bad_request(
            f"reasoning_effort: one of {', '.join(EFFORTS)}", "reasoning_effort", "invalid_value"
        )
    if req.parallel_tool_calls is False:
        raise unsupported(
            "parallel_tool_calls", "Claude may call several tools at once; this cannot be turned off"
        )
    if req.service_tier not in (None, "auto", "default"):
        raise unsupported("service_tier", "only the default tier is available")
    if req.stream_options is not None and not req.stream:
        raise bad_request("stream_options is only allowed when stream is true", "stream_options")


def _text_of(content: Any, param: str) -> str:
    """Content allowed to be text only (system, developer, tool results)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for i, part in enumerate(content):
            if (
                not isinstance(part, dict)
                or part.get("type") != "text"
                or not isinstance(part.get("text"), str)
            ):
                raise bad_request(f"{param}[{i}]: only text parts are allowed here", f"{param}[{i}]")
            parts.append(part["text"])
        return "\n".join(parts)
    raise bad_request(f"{param}: must be a string or a list of text parts", param)


async def _user_blocks(content: Any, param: str, limits: images.FetchLimits) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [text_block(content)]
    if not isinstance(content, list) or not content:
        raise bad_request(f"{param}: must be a string or a non-empty list of content parts", param)
    blocks: list[dict[str, Any]] = []
    for i, part in enumerate(content):
        where = f"{param}[{i}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            blocks.append(text_block(part["text"]))
        elif kind == "image_url":
            ref = part.get("image_url")
            url = ref.get("url") if isinstance(ref, dict) else ref
            if not isinstance(url, str):
                raise bad_request(f"{where}.image_url.url: a URL is required", f"{where}.image_url")
            blocks.append(await images.image_block(url, f"{where}.image_url", limits))
        elif kind in ("input_audio", "file"):
            raise unsupported(where, f"{kind} parts are not accepted; send text or images")
        else:
            raise bad_request(f"{where}: unknown content part type {kind!r}", where)
    return blocks


def _assistant_blocks(msg: dict[str, Any], param: str) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    content = msg.get("content")
    if content is not None and content != "":
        if isinstance(content, list):
            texts = [
                p.get("text", "")
                for p in content
                if isinstance(p, dict) and p.get("type") in ("text", "refusal")
            ]
            blocks.extend(text_block(t) for t in texts if t)
        elif isinstance(content, str):
            blocks.append(text_block(content))
        else:
            raise bad_request(
                f"{param}.content: must be a string, a list of parts or null", f"{param}.content"
            )
    calls = msg.get("tool_calls")
    if calls is not None and not isinstance(calls, list):
        raise bad_request(f"{param}.tool_calls: must be a list of tool calls", f"{param}.tool_calls")
    for j, call in enumerate(calls or []):
        where = f"{param}.tool_calls[{j}]"
        fn = call.get("function") if isinstance(call, dict) else None
        if (
            not isinstance(fn, dict)
            or not isinstance(call.get("id"), str)
            or not isinstance(fn.get("name"), str)
            or not isinstance(fn.get("arguments", ""), str)
        ):
            raise bad_request(f"{where}: needs id, function.name and function.arguments (a JSON text)", where)
        import orjson

        try:
            args = orjson.loads(fn.get("arguments") or "{}")
        except orjson.JSONDecodeError:
            raise bad_request(
                f"{where}.function.arguments: not valid JSON", f"{where}.function.arguments"
            ) from None
        blocks.append({"type": "tool_use", "id": call["id"], "name": fn["name"], "input": args})
    return blocks


async def dialogue(req: ChatRequest, limits: images.FetchLimits) -> Dialogue:
    """The request as the engine sees it; every refusal is a 400 naming the parameter."""
    _refuse_what_cannot_be_honoured(req)
    model = catalog.resolve(req.model)
    if not req.messages:
        raise bad_request("messages: at least one message is required", "messages", "empty_array")
    system_parts: list[str] = []
    messages: list[Message] = []
    for i, msg in enumerate(req.messages):
        param = f"messages[{i}]"
        if not isinstance(msg, dict):
            raise bad_request(f"{param}: must be an object", param)
        role = msg.get("role")
        if role in ("system", "developer"):
            if messages:
                # Claude Code takes one system prompt per session; instructions in the middle of a
                # conversation go to the model as user text, marked as such.
                append(
                    messages,
                    "user",
                    [text_block(f"[{role} instruction] {_text_of(msg.get('content'), param + '.content')}")],
                )
            else:
                system_parts.append(_text_of(msg.get("content"), f"{param}.content"))
        elif role == "user":
            append(messages, "user", await _user_blocks(msg.get("content"), f"{param}.content", limits))
        elif role == "assistant":
            append(messages, "assistant", _assistant_blocks(msg, param))
        elif role == "tool":
            call_id = msg.get("tool_call_id")
            if not isinstance(call_id, str):
                raise bad_request(
                    f"{param}.tool_call_id: required for tool messages", f"{param}.tool_call_id"
                )
            result = {
                "type": "tool_result",
                "tool_use_id": call_id,
                "content": _text_of(msg.get("content"), f"{param}.content"),
            }
            append(messages, "user", [result])
        elif role == "function":
            raise unsupported(param, "the legacy function role is not accepted; use tool messages")
        else:
            raise bad_request(
                f"{param}.role: must be system, developer, user, assistant or tool", f"{param}.role"
            )
    if not messages or messages[-1].role != "user":
        raise bad_request("messages: the last message must be from the user or a tool", "messages")
    _check_tool_results(messages)

    tools = [
        ToolSpec(
            t.function.name,
            t.function.description or "",
            t.function.parameters or {"type": "object", "properties": {}},
        )
        for t in req.tools or []
    ]
    if len({t.name for t in tools}) != len(tools):
        raise bad_request("tools: function names must be unique", "tools")
    choice = "auto"
    if isinstance(req.tool_choice, NamedToolChoice):
        choice = req.tool_choice.function.name
        if choice not in {t.name for t in tools}:
            raise bad_request(f"tool_choice: no tool named {choice!r} in tools", "tool_choice")
    elif req.tool_choice is not None:
        choice = req.tool_choice
        if choice == "required" and not tools:
            raise bad_request("tool_choice: 'required' needs tools", "tool_choice")

    schema = None
    if req.response_format is not None and req.response_format.type == "json_schema":
        if req.response_format.json_schema is None or not req.response_format.json_schema.schema_:
            raise bad_request("response_format.json_schema.schema is required", "response_format.json_schema")
        schema = req.response_format.json_schema.schema_
    elif req.response_format is not None and req.response_format.type == "json_object":
        schema = {"type": "object"}

    return Dialogue(
        model=model,
        system="\n\n".join(system_parts) if system_parts else None,
        messages=messages,
        tools=tools,
        tool_choice=choice,
        json_schema=schema,
        max_tokens=req.max_completion_tokens or req.max_tokens,
        conversation_id=req.conversation_id,
        effort=EFFORTS.get(req.reasoning_effort) if req.reasoning_effort else None,
    )


def _check_tool_results(messages: list[Message]) -> None:
    """Every tool result answers a call of the assistant message just before it."""
    for i, msg in enumerate(messages):
        results = [b["tool_use_id"] for b in msg.content if b.get("type") == "tool_result"]
        if not results:
            continue
        prev = messages[i - 1] if i else None
        calls = (
            {b["id"] for b in prev.content if b.get("type") == "tool_use"}
            if prev and prev.role == "assistant"
            else set()
        )
        stray = [r for r in results if r not in calls]
        if stray:
            raise bad_request(
                f"messages: tool result for {stray[0]!r} does not answer a tool call of the preceding "
                "assistant message",
                "messages",
            )
