"""A scripted fake Anthropic Messages API, owned by the tests (and reused by bench/).

It records every request exactly as received (method, path, raw query, headers in order, body bytes)
and answers either from a queue of scripted replies or, when the queue is empty, by rules that drive
a real Claude Code CLI session: trigger words in the last user message ask for a Bash tool call or a
sub-agent (``Agent``) delegation; the CLI's compaction prompt gets an <analysis>/<summary> answer.

Runs its own event loop in a background thread, so tests stay synchronous.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import threading
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

DEFAULT_MODEL = "claude-sonnet-4-5-20250929"
RATE_LIMIT_HEADERS = {
    "anthropic-ratelimit-unified-status": "allowed",
    "anthropic-ratelimit-unified-5h-utilization": "0.12",
    "anthropic-ratelimit-unified-7d-utilization": "0.34",
    "anthropic-ratelimit-unified-5h-reset": "1800000000",
}


def sse(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


@dataclass
class Usage:
    input_tokens: int = 100
    output_tokens: int = 12
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0
    cache_creation: dict[str, int] | None = None

    def start(self) -> dict[str, Any]:
        u: dict[str, Any] = {
            "input_tokens": self.input_tokens,
            "cache_creation_input_tokens": self.cache_creation_input_tokens,
            "cache_read_input_tokens": self.cache_read_input_tokens,
            "output_tokens": 1,
        }
        if self.cache_creation is not None:
            u["cache_creation"] = self.cache_creation
        return u


def message_events(
    blocks: list[dict[str, Any]],
    model: str = DEFAULT_MODEL,
    stop_reason: str = "end_turn",
    usage: Usage | None = None,
    split: int = 3,
) -> list[bytes]:
    """The SSE events of one assistant message; text and tool input arrive in ``split`` deltas."""
    usage = usage or Usage()
    mid = "msg_fake_" + uuid.uuid4().hex[:20]
    out = [
        sse(
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "id": mid,
                    "type": "message",
                    "role": "assistant",
                    "model": model,
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": usage.start(),
                },
            },
        ),
        sse("ping", {"type": "ping"}),
    ]
    for i, b in enumerate(blocks):
        kind = b["type"]
        if kind == "text":
            start, field_, dtype, payload = {"type": "text", "text": ""}, "text", "text_delta", b["text"]
        elif kind == "thinking":
            start, field_, dtype, payload = (
                {"type": "thinking", "thinking": "", "signature": ""},
                "thinking",
                "thinking_delta",
                b["thinking"],
            )
        elif kind == "tool_use":
            start = {"type": "tool_use", "id": b["id"], "name": b["name"], "input": {}}
            field_, dtype, payload = "partial_json", "input_json_delta", json.dumps(b["input"])
        else:
            raise ValueError(kind)
        out.append(
            sse("content_block_start", {"type": "content_block_start", "index": i, "content_block": start})
        )
        step = max(1, -(-len(payload) // split))
        for k in range(0, max(len(payload), 1), step):
            out.append(
                sse(
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": i,
                        "delta": {"type": dtype, field_: payload[k : k + step]},
                    },
                )
            )
        if kind == "thinking":
            out.append(
                sse(
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": i,
                        "delta": {"type": "signature_delta", "signature": "sig"},
                    },
                )
            )
        out.append(sse("content_block_stop", {"type": "content_block_stop", "index": i}))
    out.append(
        sse(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                "usage": {"output_tokens": usage.output_tokens},
            },
        )
    )
    out.append(sse("message_stop", {"type": "message_stop"}))
    return out


@dataclass
class Reply:
    """One scripted answer.

    status/headers/body: a plain HTTP answer when ``events`` is None.
    events: SSE events for a stream; ``delay_s`` pauses between them; ``cut_after`` drops the
    connection after that many events (a stream cut mid-way); ``hang_up`` closes the connection
    without answering at all.
    """

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    events: list[bytes] | None = None
    delay_s: float = 0.0
    cut_after: int | None = None
    first_byte_delay_s: float = 0.0
    hang_up: bool = False


def text_reply(text: str, model: str = DEFAULT_MODEL, usage: Usage | None = None, **kw: Any) -> Reply:
    return Reply(events=message_events([{"type": "text", "text": text}], model, usage=usage), **kw)


def error_reply(status: int, error_type: str, message: str, headers: dict[str, str] | None = None) -> Reply:
    body = json.dumps({"type": "error", "error": {"type": error_type, "message": message}}).encode()
    return Reply(status=status, headers={"content-type": "application/json", **(headers or {})}, body=body)


def tool_use_block(name: str, input_: dict[str, Any]) -> dict[str, Any]:
    return {"type": "tool_use", "id": "toolu_" + uuid.uuid4().hex[:24], "name": name, "input": input_}


@dataclass
class Seen:
    """A request as the upstream received it."""

    method: str
    path: str
    query: str
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def json(self) -> Any:
        return json.loads(self.body)


# --- the rules that answer a real CLI session ----------------------------------------------------

SUBAGENT_PROMPT = "SUBAGENT_TASK: reply with the word hello."


def _texts(content: Any) -> list[str]:
    if isinstance(content, str):
        return [content]
    return [b.get("text", "") for b in content or [] if isinstance(b, dict) and b.get("type") == "text"]


def _last_user(body: dict[str, Any]) -> dict[str, Any] | None:
    for m in reversed(body.get("messages") or []):
        if m.get("role") == "user":
            return m
    return None


def _user_text(body: dict[str, Any]) -> str:
    m = _last_user(body)
    texts = _texts(m.get("content")) if m else []
    return "\n".join(t for t in texts if not t.lstrip().startswith("<system-reminder>"))


def _is_tool_result_turn(body: dict[str, Any]) -> bool:
    m = _last_user(body)
    content = m.get("content") if m else None
    return isinstance(content, list) and any(
        isinstance(b, dict) and b.get("type") == "tool_result" for b in content
    )


def cli_rules(body: dict[str, Any], usage: Usage) -> Reply:
    text = _user_text(body)
    model = body.get("model") or DEFAULT_MODEL
    tools = {t.get("name") for t in body.get("tools") or [] if isinstance(t, dict)}
    blocks: list[dict[str, Any]]
    stop = "end_turn"
    if "create a detailed summary of the conversation" in text:
        # `/compact be brief`: a summary far shorter than the CLI's trailer after it
        summary = (
            "User wants tests."
            if "be brief" in text
            else "1. Primary Request: the user asked the assistant to run a command and delegate a task."
        )
        blocks = [
            {
                "type": "text",
                "text": f"<analysis>The user asked for tests.</analysis>\n<summary>{summary}</summary>",
            }
        ]
    elif not _is_tool_result_turn(body) and "TRIGGER_BASH" in text and "Bash" in tools:
        blocks = [
            {"type": "thinking", "thinking": "The user wants a command run."},
            {"type": "text", "text": "Running a command."},
            tool_use_block("Bash", {"command": "echo hi", "description": "Print hi"}),
        ]
        stop = "tool_use"
    elif not _is_tool_result_turn(body) and "TRIGGER_AGENT" in text and ({"Agent", "Task"} & tools):
        name = "Agent" if "Agent" in tools else "Task"
        inp: dict[str, Any] = {
            "description": "Say hello",
            # TRIGGER_AGENT_TOOLS: the sub-agent itself makes a tool call before it answers
            "prompt": SUBAGENT_PROMPT + (" TRIGGER_BASH" if "TRIGGER_AGENT_TOOLS" in text else ""),
            "subagent_type": "general-purpose",
            # TRIGGER_AGENT_BG: a background agent ("Async agent launched"), reporting back later
            "run_in_background": "TRIGGER_AGENT_BG" in text,
        }
        blocks = [tool_use_block(name, inp)]
        stop = "tool_use"
    elif "SUBAGENT_TASK" in text:
        blocks = [{"type": "text", "text": "hello (from the sub-agent)"}]
    elif _is_tool_result_turn(body):
        blocks = [{"type": "text", "text": "The command printed hi. Done."}]
    else:
        blocks = [{"type": "text", "text": f"Hello from the fake upstream: {text[-60:]}"}]
    return Reply(events=message_events(blocks, model, stop, usage))


# --- analysis calls (Nexus's own pipeline) -------------------------------------------------------------

ANALYSIS_MARKER = "You review Claude Code conversations for a team."
_PROMPT_LINE = re.compile(r"^\[#(\d+) user\] (.+)$", re.M)


def _analysis_input(body: dict[str, Any]) -> str:
    first = body["messages"][0]["content"]
    return first if isinstance(first, str) else "".join(_texts(first))


def analysis_answer(material: str) -> dict[str, Any]:
    """A valid analysis of a condensed transcript (or of partial analyses being combined)."""
    tips = []
    m = _PROMPT_LINE.search(material)
    if m:
        tips = [
            {
                "advice": "Say which test proves it works.",
                "request": int(m.group(1)),
                "quote": " ".join(m.group(2).split()[:4]),
            }
        ]
    elif "Partial analyses:" in material:
        for line in material.splitlines():
            if line.startswith("Part ") and ": {" in line:
                part = json.loads(line.split(": ", 1)[1])
                tips = part["tips"][:1]
                break
    return {
        "summary": f"The developer asked for work across {material.count(' user] ') or 'several'} prompts.",
        "outcome": "resolved",
        "scores": {
            "task_success": {"value": 4, "reason": "the request was met"},
            "prompt_clarity": {"value": 3, "reason": "the goal was clear, the checks were not"},
            "efficiency": {"value": 4, "reason": "few failed tool calls"},
        },
        "tips": tips,
        "went_well": ["tests were run"],
        "sentiment": "positive",
    }


# --- the server --------------------------------------------------------------------------------------


class FakeAnthropic:
    def __init__(self) -> None:
        self.seen: list[Seen] = []
        self.script: deque[Reply] = deque()
        self.rules: Callable[[dict[str, Any], Usage], Reply] = cli_rules
        self.usage = Usage()
        self.cut_connections = 0
        self.client_gone = 0  # streams the client (the proxy) abandoned before their end
        self.received = 0  # requests received, also while ``record`` is off
        self._ids = itertools.count(1)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self.port = 0
        self.record = True  # benchmarks turn this off to keep memory flat
        # Credentials the upstream takes (x-api-key values or bearer tokens); None takes any. An
        # OAuth token (sk-ant-oat...) also needs the OAuth beta flag, as the real API requires.
        self.accepts: set[str] | None = None
        self.analysis_invalid = 0  # analysis calls to answer with invalid output first (-1: all)
        self.analysis_calls = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def reset(self) -> None:
        self.client_gone = 0
        self.seen.clear()
        self.script.clear()
        self.rules = cli_rules
        self.usage = Usage()
        self.accepts = None
        self.analysis_invalid = 0
        self.analysis_calls = 0

    def enqueue(self, *replies: Reply) -> None:
        self.script.extend(replies)

    def messages_requests(self) -> list[Seen]:
        return [s for s in self.seen if s.path == "/v1/messages"]

    # lifecycle
    def start(self, port: int = 0) -> FakeAnthropic:
        ready = threading.Event()

        def run() -> None:
            self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self._loop)
            app = web.Application(client_max_size=64 * 1024 * 1024)
            app.router.add_route("*", "/{tail:.*}", self._handle)
            self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
            self._loop.run_until_complete(self._runner.setup())
            site = web.TCPSite(self._runner, "127.0.0.1", port, backlog=1024)
            self._loop.run_until_complete(site.start())
            self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            ready.set()
            self._loop.run_forever()
            self._loop.run_until_complete(self._runner.cleanup())
            self._loop.close()

        self._thread = threading.Thread(target=run, name="fake-anthropic", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("fake upstream did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)

    # handling
    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        self.received += 1
        if self.record:
            self.seen.append(
                Seen(
                    request.method,
                    request.path,
                    request.raw_path.partition("?")[2],
                    [
                        (k, v)
                        for k, v in request.raw_headers
                        and [(a.decode(), b.decode()) for a, b in request.raw_headers]
                    ],
                    raw,
                )
            )
        rid = f"req_fake_{next(self._ids):06d}"
        refused = self._refuse_credential(request)
        if refused is not None:
            return web.json_response(
                {"type": "error", "error": {"type": "authentication_error", "message": refused}},
                status=401,
                headers={"request-id": rid},
            )
        if request.path == "/v1/messages/count_tokens":
            reply = (
                self.script.popleft()
                if self.script
                else Reply(
                    headers={"content-type": "application/json"},
                    body=json.dumps({"input_tokens": max(1, len(raw) // 4)}).encode(),
                )
            )
        elif request.path == "/v1/messages" and request.method == "POST":
            if self.script:
                reply = self.script.popleft()
            else:
                try:
                    body = json.loads(raw)
                except ValueError:
                    return web.json_response(
                        {"type": "error", "error": {"type": "invalid_request_error", "message": "bad json"}},
                        status=400,
                    )
                if ANALYSIS_MARKER in json.dumps(body.get("system") or ""):
                    reply = self._analysis(body)
                else:
                    reply = self.rules(body, self.usage) if body.get("stream") else self._non_stream(body)
        elif request.path.startswith("/model/") and request.path.endswith("/invoke"):
            bedrock = self._bedrock(request, raw)
            if isinstance(bedrock, web.Response):
                return bedrock
            reply = bedrock
        else:
            return web.json_response(
                {
                    "type": "error",
                    "error": {"type": "not_found_error", "message": f"no route {request.path}"},
                },
                status=404,
            )
        return await self._send(request, reply, rid)

    def bedrock_requests(self) -> list[Seen]:
        return [s for s in self.seen if s.path.startswith("/model/")]

    def _bedrock(self, request: web.Request, raw: bytes) -> Reply | web.Response:
        """Amazon Bedrock's InvokeModel for an Anthropic model, as the ``anthropic`` SDK's Bedrock
        client calls it: SigV4-signed for the ``bedrock`` service, the model in the path, the body
        without ``model`` and with an ``anthropic_version``. Errors in Bedrock's shape."""
        auth = request.headers.get("authorization", "")
        if not auth.startswith("AWS4-HMAC-SHA256 ") or "/bedrock/aws4_request" not in auth:
            return web.json_response({"message": "Missing Authentication Token"}, status=403)
        try:
            body = json.loads(raw)
        except ValueError:
            return web.json_response({"message": "Malformed input request"}, status=400)
        if "model" in body or not body.get("anthropic_version"):
            return web.json_response(
                {"message": "Malformed input request: anthropic_version, extraneous key [model]"},
                status=400,
            )
        if self.script:
            return self.script.popleft()
        body["model"] = request.path.removeprefix("/model/").removesuffix("/invoke")
        return (
            self._analysis(body)
            if ANALYSIS_MARKER in json.dumps(body.get("system") or "")
            else (self._non_stream(body))
        )

    def _refuse_credential(self, request: web.Request) -> str | None:
        if self.accepts is None:
            return None
        bearer = request.headers.get("authorization", "")
        token = bearer[7:] if bearer.lower().startswith("bearer ") else None
        credential = request.headers.get("x-api-key") or token
        if credential not in self.accepts:
            return "invalid x-api-key" if request.headers.get("x-api-key") else "Invalid bearer token"
        betas = [b.strip() for b in request.headers.get("anthropic-beta", "").split(",")]
        if token and token.startswith("sk-ant-oat") and "oauth-2025-04-20" not in betas:
            return "OAuth authentication is currently not supported."
        return None

    def _analysis(self, body: dict[str, Any]) -> Reply:
        """An analysis call (Nexus's analysis pipeline): a valid analysis quoting the transcript's
        first prompt (or, combining, the parts' first tip), unless ``analysis_invalid`` says to
        answer with prose first (that many times; -1: always). Usage follows the sizes sent."""
        self.analysis_calls += 1
        if self.analysis_invalid != 0:
            self.analysis_invalid -= 1 if self.analysis_invalid > 0 else 0
            text = "The conversation went well overall, I think."
        else:
            text = json.dumps(analysis_answer(_analysis_input(body)))
        usage = {
            "input_tokens": max(
                1, len(json.dumps(body.get("system"))) // 4 + len(json.dumps(body["messages"])) // 4
            ),
            "output_tokens": max(1, len(text) // 4),
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
        }
        msg = {
            "id": "msg_fake_analysis",
            "type": "message",
            "role": "assistant",
            "model": body.get("model") or DEFAULT_MODEL,
            "content": [{"type": "text", "text": text}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": usage,
        }
        return Reply(headers={"content-type": "application/json"}, body=json.dumps(msg).encode())

    def _non_stream(self, body: dict[str, Any]) -> Reply:
        reply = self.rules(body, self.usage)
        # Rebuild the message the stream carried and send it as one JSON document.
        from nexus.sse import rebuild_message

        msg = rebuild_message(b"".join(reply.events or [])).message
        return Reply(headers={"content-type": "application/json"}, body=json.dumps(msg).encode())

    async def _send(self, request: web.Request, reply: Reply, rid: str) -> web.StreamResponse:
        headers = {"request-id": rid, **RATE_LIMIT_HEADERS, **reply.headers}
        if reply.first_byte_delay_s:
            await asyncio.sleep(reply.first_byte_delay_s)
        if reply.hang_up:
            assert request.transport is not None
            request.transport.close()
            return web.Response()  # never sent: the connection is gone
        if reply.events is None:
            return web.Response(status=reply.status, body=reply.body, headers=headers)
        headers.setdefault("content-type", "text/event-stream; charset=utf-8")
        headers.setdefault("cache-control", "no-cache")
        resp = web.StreamResponse(status=reply.status, headers=headers)
        await resp.prepare(request)
        for n, event in enumerate(reply.events):
            if reply.cut_after is not None and n >= reply.cut_after:
                self.cut_connections += 1
                assert request.transport is not None
                request.transport.abort()  # no terminating chunk: the client sees a cut stream
                return resp
            if n and reply.delay_s:
                await asyncio.sleep(reply.delay_s)
            try:
                await resp.write(event)
            except (ConnectionResetError, ConnectionError):
                self.client_gone += 1
                return resp
        await resp.write_eof()
        return resp


def main() -> None:
    """Run standalone (benchmarks): ``python -m tests.support.fake_upstream --port N``.

    Without ``--events`` streamed answers follow the CLI rules (a real Claude Code session works);
    with it every streamed ``POST /v1/messages`` gets one fixed text reply of that many SSE events.
    ``--delay-ms`` pauses between events; a request header ``x-fake-delay-ms`` overrides it for that
    request. ``--stamp`` prefixes each event with an SSE comment ``: sent=<time.time()>`` taken just
    before the event is written. ``--capture-dir`` writes every request as ``NNNN.body`` (exact bytes)
    and ``NNNN.json`` (method, path, query, headers in order).
    """
    import argparse
    import time
    from pathlib import Path

    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--record", action="store_true", help="keep every request in memory")
    p.add_argument("--capture-dir", type=Path, default=None, help="write every request to this directory")
    p.add_argument("--events", type=int, default=0, help="fixed text reply of N (>= 7) SSE events")
    p.add_argument("--delay-ms", type=float, default=0.0, help="pause between SSE events")
    p.add_argument("--stamp", action="store_true", help="prefix each event with ': sent=<epoch seconds>'")
    args = p.parse_args()
    if args.events and args.events < 7:
        p.error("--events must be at least 7 (the fixed frame of a text message)")
    if args.capture_dir is not None:
        args.capture_dir.mkdir(parents=True, exist_ok=True)
    captured = itertools.count(1)

    def fixed_rules(body: dict[str, Any], usage: Usage) -> Reply:
        deltas = args.events - 6  # message_start, ping, block start/stop, message_delta, message_stop
        text = "".join(f"w{i:03d} of the fake answer. " for i in range(deltas))  # equal-size deltas
        events = message_events(
            [{"type": "text", "text": text}], body.get("model") or DEFAULT_MODEL, usage=usage, split=deltas
        )
        return Reply(events=events)

    class BenchFake(FakeAnthropic):
        async def _handle(self, request: web.Request) -> web.StreamResponse:
            if args.capture_dir is not None:
                n = next(captured)
                (args.capture_dir / f"{n:04d}.body").write_bytes(await request.read())
                meta = {
                    "method": request.method,
                    "path": request.path,
                    "query": request.raw_path.partition("?")[2],
                    "headers": [[k.decode("latin-1"), v.decode("latin-1")] for k, v in request.raw_headers],
                }
                (args.capture_dir / f"{n:04d}.json").write_text(json.dumps(meta, indent=1))
            return await super()._handle(request)

        async def _send(self, request: web.Request, reply: Reply, rid: str) -> web.StreamResponse:
            if reply.events is not None and not reply.delay_s:
                override = request.headers.get("x-fake-delay-ms")
                reply.delay_s = float(override) / 1000 if override else args.delay_ms / 1000
            if not args.stamp or reply.events is None or reply.cut_after is not None:
                return await super()._send(request, reply, rid)
            headers = {"request-id": rid, **RATE_LIMIT_HEADERS, **reply.headers}
            headers.setdefault("content-type", "text/event-stream; charset=utf-8")
            headers.setdefault("cache-control", "no-cache")
            resp = web.StreamResponse(status=reply.status, headers=headers)
            await resp.prepare(request)
            for n, event in enumerate(reply.events):
                if n and reply.delay_s:
                    await asyncio.sleep(reply.delay_s)
                await resp.write(b": sent=%.6f\n%s" % (time.time(), event))
            await resp.write_eof()
            return resp

    fake = BenchFake()
    fake.record = args.record
    if args.events:
        fake.rules = fixed_rules
    fake.start(args.port)
    print(f"listening {fake.url}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        fake.stop()


if __name__ == "__main__":
    main()
