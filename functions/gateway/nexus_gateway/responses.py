"""``POST /v1/responses``: OpenAI's Responses API (what Codex CLI and newer agents speak).

Input is a string or items (messages with ``input_text``/``input_image``/``output_text`` parts,
``function_call`` and ``function_call_output`` items); ``instructions`` are the system prompt;
``previous_response_id`` continues from a stored response (or the client resends everything, which
resumes the same way as chat completions). Output items are a ``message`` with ``output_text`` and
``function_call`` items; streaming emits the documented event sequence with sequence numbers.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncIterator
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from nexus_gateway import catalog, images
from nexus_gateway.dialogue import EFFORTS, Dialogue, Message, ToolSpec, append, text_block
from nexus_gateway.engine.events import (
    Answer,
    Event,
    Failed,
    Finished,
    Suspended,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    ToolCallStart,
    Usage,
)
from nexus_gateway.errors import bad_request, invalid, unsupported


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FunctionTool(_Strict):
    type: Literal["function"]
    name: str = Field(pattern=r"^[a-zA-Z0-9_-]{1,64}$")
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class TextFormat(_Strict):
    type: Literal["text", "json_object", "json_schema"]
    name: str | None = None
    schema_: dict[str, Any] | None = Field(None, alias="schema")
    description: str | None = None
    strict: bool | None = None


class TextConfig(_Strict):
    format: TextFormat | None = None
    verbosity: str | None = None


class ResponsesRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    model: str
    input: str | list[dict[str, Any]]
    instructions: str | None = None
    previous_response_id: str | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    stream: bool | None = False
    stream_options: dict[str, Any] | None = None
    text: TextConfig | None = None
    max_output_tokens: int | None = Field(None, ge=1)
    max_tool_calls: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    store: bool | None = None
    metadata: dict[str, str] | None = None
    user: str | None = None
    reasoning: dict[str, Any] | None = None
    include: list[str] | None = None
    truncation: str | None = None
    service_tier: str | None = None
    prompt_cache_key: str | None = None
    client_metadata: dict[str, Any] | None = None  # sent by Codex CLI; kept out of the engine
    safety_identifier: str | None = None
    background: bool | None = None
    conversation: str | dict[str, Any] | None = None
    top_logprobs: int | None = None
    # Nexus memory for this request (like the X-Nexus-Memory header), within what the key allows.
    nexus_memory: bool | None = None


# Tools OpenAI runs on its side (or that group others): Claude Code cannot run them for the client.
HOSTED_TOOLS = frozenset(
    {
        "web_search",
        "web_search_preview",
        "file_search",
        "code_interpreter",
        "image_generation",
        "computer_use_preview",
        "local_shell",
        "mcp",
        "namespace",
        "custom",
    }
)


def parse(body: Any) -> ResponsesRequest:
    if not isinstance(body, dict):
        raise bad_request("the request body must be a JSON object")
    try:
        return ResponsesRequest.model_validate(body)
    except ValidationError as exc:
        raise invalid(exc, "Unknown parameter: '{param}'.") from None


def _refuse(req: ResponsesRequest) -> None:
    for name, neutral in (("temperature", 1.0), ("top_p", 1.0)):
        value = getattr(req, name)
        if value is not None and value != neutral:
            raise unsupported(
                name, f"Claude Code samples with its own settings; omit {name} or send {neutral:g}"
            )
    if req.background:
        raise unsupported("background", "background responses are not available")
    if req.conversation is not None:
        raise unsupported("conversation", "use previous_response_id, or resend the input")
    if req.top_logprobs:
        raise unsupported("top_logprobs", "Claude models do not return token log probabilities")
    if req.parallel_tool_calls is False:
        raise unsupported(
            "parallel_tool_calls", "Claude may call several tools at once; this cannot be turned off"
        )
    if req.truncation not in (None, "disabled"):
        raise unsupported("truncation", "Claude Code manages its own context")
    if req.max_tool_calls is not None:
        raise unsupported("max_tool_calls", "the number of tool calls cannot be capped")


def _text(content: Any, param: str, kinds: tuple[str, ...]) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [text_block(content)]
    if not isinstance(content, list):
        raise bad_request(f"{param}: must be a string or a list of content parts", param)
    out = []
    for i, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in kinds and isinstance(part.get("text"), str):
            out.append(text_block(part["text"]))
        elif kind != "input_image":
            raise bad_request(f"{param}[{i}]: unsupported content type {kind!r} here", f"{param}[{i}]")
    return out


async def _user_blocks(content: Any, param: str, limits: images.FetchLimits) -> list[dict[str, Any]]:
    blocks = _text(content, param, ("input_text",))
    if isinstance(content, list):
        for i, part in enumerate(content):
            if isinstance(part, dict) and part.get("type") == "input_image":
                url = part.get("image_url")
                if not isinstance(url, str):
                    if part.get("file_id"):
                        raise unsupported(f"{param}[{i}].file_id", "files are not available; send image_url")
                    raise bad_request(f"{param}[{i}].image_url: required", f"{param}[{i}].image_url")
                blocks.append(await images.image_block(url, f"{param}[{i}].image_url", limits))
    return blocks


async def dialogue(
    req: ResponsesRequest, limits: images.FetchLimits, previous: list[Message] | None = None
) -> Dialogue:
    _refuse(req)
    model = catalog.resolve(req.model)
    system = [req.instructions] if req.instructions else []
    messages: list[Message] = list(previous or [])
    items = [{"role": "user", "content": req.input}] if isinstance(req.input, str) else req.input
    if not items:
        raise bad_request("input: at least one item is required", "input", "empty_array")
    for i, item in enumerate(items):
        param = f"input[{i}]"
        if not isinstance(item, dict):
            raise bad_request(f"{param}: must be an object", param)
        kind = item.get("type", "message")
        if kind == "message":
            role = item.get("role")
            if role in ("system", "developer"):
                text = "\n".join(
                    b["text"] for b in _text(item.get("content"), f"{param}.content", ("input_text",))
                )
                if messages:
                    append(messages, "user", [text_block(f"[{role} instruction] {text}")])
                else:
                    system.append(text)
            elif role == "user":
                append(messages, "user", await _user_blocks(item.get("content"), f"{param}.content", limits))
            elif role == "assistant":
                append(
                    messages,
                    "assistant",
                    _text(item.get("content"), f"{param}.content", ("output_text", "refusal")),
                )
            else:
                raise bad_request(
                    f"{param}.role: must be user, assistant, system or developer", f"{param}.role"
                )
        elif kind == "function_call":
            if not isinstance(item.get("arguments", ""), str):
                raise bad_request(f"{param}.arguments: must be a JSON text (a string)", f"{param}.arguments")
            try:
                args = orjson.loads(item.get("arguments") or "{}")
            except orjson.JSONDecodeError:
                raise bad_request(f"{param}.arguments: not valid JSON", f"{param}.arguments") from None
            call = {
                "type": "tool_use",
                "id": str(item.get("call_id")),
                "name": str(item.get("name")),
                "input": args,
            }
            append(messages, "assistant", [call])
        elif kind == "function_call_output":
            output = item.get("output")
            if not isinstance(output, str):
                output = "\n".join(
                    b["text"] for b in _text(output, f"{param}.output", ("input_text", "output_text"))
                )
            append(
                messages,
                "user",
                [{"type": "tool_result", "tool_use_id": str(item.get("call_id")), "content": output}],
            )
        elif kind == "reasoning":
            continue  # the gateway never emits reasoning items; a client echoing one loses nothing
        else:
            raise unsupported(f"{param}.type", f"input items of type {kind!r} are not accepted")
    if not messages or messages[-1].role != "user":
        raise bad_request("input: the last item must be a user message or a function_call_output", "input")

    tools = []
    skipped: list[str] = []
    for i, t in enumerate(req.tools or []):
        kind = t.get("type") if isinstance(t, dict) else None
        if isinstance(kind, str) and kind in HOSTED_TOOLS:
            # An offer of a capability the engine does not have: the model is not shown it (as if it
            # chose not to use it), and the response says so in x-nexus-unsupported-tools.
            skipped.append(str(t.get("name") or kind))
            continue
        if kind != "function":
            raise unsupported(f"tools[{i}].type", f"only function tools are available (got {kind!r})")
        try:
            fn = FunctionTool.model_validate(t)
        except ValidationError as exc:
            raise bad_request(f"tools[{i}]: {exc.errors()[0]['msg']}", f"tools[{i}]") from None
        tools.append(
            ToolSpec(fn.name, fn.description or "", fn.parameters or {"type": "object", "properties": {}})
        )
    choice = "auto"
    if isinstance(req.tool_choice, dict):
        choice = str(req.tool_choice.get("name"))
        if choice not in {t.name for t in tools}:
            raise bad_request(f"tool_choice: no tool named {choice!r} in tools", "tool_choice")
    elif req.tool_choice is not None:
        if req.tool_choice not in ("auto", "none", "required"):
            raise bad_request("tool_choice: must be auto, none, required or a function", "tool_choice")
        choice = req.tool_choice

    schema = None
    fmt = req.text.format if req.text else None
    if fmt is not None and fmt.type == "json_schema":
        if not fmt.schema_:
            raise bad_request("text.format.schema is required", "text.format.schema")
        schema = fmt.schema_
    elif fmt is not None and fmt.type == "json_object":
        schema = {"type": "object"}
    effort = (req.reasoning or {}).get("effort")
    if effort is not None and not (isinstance(effort, str) and effort in EFFORTS):
        raise bad_request(
            f"reasoning.effort: one of {', '.join(EFFORTS)}", "reasoning.effort", "invalid_value"
        )
    return Dialogue(
        model=model,
        system="\n\n".join(system) if system else None,
        messages=messages,
        tools=tools,
        tool_choice=choice,
        json_schema=schema,
        max_tokens=req.max_output_tokens,
        effort=EFFORTS.get(effort) if effort else None,
        skipped_tools=skipped,
    )


# --- answers ----------------------------------------------------------------------------------------


def response_id(route: str | None = None) -> str:
    """``resp_`` + 48 hex digits; behind the router, the first 16 are the route key the request came
    by, so a follow-up naming this response reaches the same worker (``cloud.routing``)."""
    return "resp_" + (route or secrets.token_hex(8)) + secrets.token_hex(16)


def _usage(u: Usage) -> dict[str, Any]:
    return {
        "input_tokens": u.prompt_tokens,
        "input_tokens_details": {"cached_tokens": u.cache_read_input_tokens},
        "output_tokens": u.output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": u.prompt_tokens + u.output_tokens,
    }


def _message_item(item_id: str, text: str, status: str = "completed") -> dict[str, Any]:
    return {
        "type": "message",
        "id": item_id,
        "status": status,
        "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}]
        if status
        else [],
    }


def _call_item(call: ToolCall, status: str = "completed") -> dict[str, Any]:
    return {
        "type": "function_call",
        "id": "fc_" + call.id.removeprefix("toolu_"),
        "call_id": call.id,
        "name": call.name,
        "arguments": call.arguments,
        "status": status,
    }


def envelope(
    rid: str,
    req: ResponsesRequest,
    model: str,
    created: int,
    status: str,
    output: list[dict[str, Any]],
    usage: Usage | None,
) -> dict[str, Any]:
    return {
        "id": rid,
        "object": "response",
        "created_at": created,
        "status": status,
        "error": None,
        "incomplete_details": {"reason": "max_output_tokens"} if status == "incomplete" else None,
        "instructions": req.instructions,
        "max_output_tokens": req.max_output_tokens,
        "model": model,
        "output": output,
        "parallel_tool_calls": True,
        "previous_response_id": req.previous_response_id,
        "reasoning": {"effort": None, "summary": None},
        "store": req.store if req.store is not None else True,
        "temperature": 1.0,
        "text": {"format": {"type": "text"}}
        if req.text is None
        else req.text.model_dump(by_alias=True, exclude_none=True),
        "tool_choice": req.tool_choice if req.tool_choice is not None else "auto",
        "tools": req.tools or [],
        "top_p": 1.0,
        "truncation": "disabled",
        "usage": _usage(usage) if usage is not None else None,
        "user": req.user,
        "metadata": req.metadata or {},
    }


def output_of(answer: Answer) -> tuple[list[dict[str, Any]], str]:
    """Output items and the status for a whole answer."""
    items: list[dict[str, Any]] = []
    if answer.text:
        items.append(_message_item("msg_" + secrets.token_hex(24), answer.text))
    items.extend(_call_item(c) for c in answer.calls)
    status = "incomplete" if answer.stop_reason in ("max_tokens", "max_budget") else "completed"
    return items, status


async def stream(
    events: AsyncIterator[Event], rid: str, req: ResponsesRequest, model: str
) -> AsyncIterator[tuple[bytes, dict[str, Any] | None]]:
    """SSE bytes of the Responses streaming protocol; the last pair carries the final response."""
    created = int(time.time())
    seq = 0

    def ev(kind: str, **fields: Any) -> bytes:
        nonlocal seq
        doc = {"type": kind, "sequence_number": seq, **fields}
        seq += 1
        return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(doc) + b"\n\n"

    base = envelope(rid, req, model, created, "in_progress", [], None)
    yield ev("response.created", response=base), None
    yield ev("response.in_progress", response=base), None
    output: list[dict[str, Any]] = []
    text_item: dict[str, Any] | None = None
    text: list[str] = []
    calls: dict[int, tuple[int, dict[str, Any], list[str]]] = {}  # call index -> (output index, item, args)
    answer = Answer()

    def close_text() -> list[bytes]:
        nonlocal text_item
        if text_item is None:
            return []
        index = len(output)
        full = "".join(text)
        done = _message_item(text_item["id"], full)
        out = [
            ev(
                "response.output_text.done",
                item_id=text_item["id"],
                output_index=index,
                content_index=0,
                text=full,
                logprobs=[],
            ),
            ev(
                "response.content_part.done",
                item_id=text_item["id"],
                output_index=index,
                content_index=0,
                part=done["content"][0],
            ),
            ev("response.output_item.done", output_index=index, item=done),
        ]
        output.append(done)
        text_item = None
        return out

    async for event in events:
        if isinstance(event, TextDelta) and event.text:
            if text_item is None:
                text_item = _message_item("msg_" + secrets.token_hex(24), "", status="")
                text_item["status"] = "in_progress"
                index = len(output)
                yield ev("response.output_item.added", output_index=index, item=text_item), None
                part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
                yield (
                    ev(
                        "response.content_part.added",
                        item_id=text_item["id"],
                        output_index=index,
                        content_index=0,
                        part=part,
                    ),
                    None,
                )
            text.append(event.text)
            yield (
                ev(
                    "response.output_text.delta",
                    item_id=text_item["id"],
                    output_index=len(output),
                    content_index=0,
                    delta=event.text,
                    logprobs=[],
                ),
                None,
            )
        elif isinstance(event, ToolCallStart):
            for piece in close_text():
                yield piece, None
            item = _call_item(ToolCall(event.id, event.name, ""), status="in_progress")
            calls[event.index] = (len(output), item, [])
            output.append(item)
            yield ev("response.output_item.added", output_index=calls[event.index][0], item=item), None
        elif isinstance(event, ToolCallDelta) and event.index in calls:
            index, item, args = calls[event.index]
            args.append(event.arguments)
            yield (
                ev(
                    "response.function_call_arguments.delta",
                    item_id=item["id"],
                    output_index=index,
                    delta=event.arguments,
                ),
                None,
            )
        elif isinstance(event, (Suspended, Finished)):
            for piece in close_text():
                yield piece, None
            for index, item, args in calls.values():
                item["arguments"] = "".join(args) or "{}"
                item["status"] = "completed"
                yield (
                    ev(
                        "response.function_call_arguments.done",
                        item_id=item["id"],
                        output_index=index,
                        arguments=item["arguments"],
                    ),
                    None,
                )
                yield ev("response.output_item.done", output_index=index, item=item), None
            answer.usage = event.usage
            answer.text = "".join(text)
            if isinstance(event, Suspended):
                answer.calls, answer.stop_reason = event.calls, "tool_use"
            else:
                answer.stop_reason = event.stop_reason
        elif isinstance(event, Failed):
            failed = envelope(rid, req, model, created, "failed", output, None)
            failed["error"] = {"code": event.code or "server_error", "message": event.message}
            yield ev("response.failed", response=failed), None
            return
    status = "incomplete" if answer.stop_reason in ("max_tokens", "max_budget") else "completed"
    final = envelope(rid, req, model, created, status, output, answer.usage)
    yield ev(f"response.{status}", response=final), final
