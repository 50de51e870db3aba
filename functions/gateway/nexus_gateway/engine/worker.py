"""One warm Claude Code session: a ``ClaudeSDKClient`` owned by its own task for its whole life
(the SDK's client must stay in the task that created it), fed prompts through a queue.

A turn's events go to whoever asked for it (``sink``). When the model calls client tools, the
answer ends with those calls (``Suspended``) while the turn stays open: the handlers wait for the
client's results, which a later request delivers with ``continue_with``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import shutil
import time
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from claude_agent_sdk import (
    AssistantMessage,
    ClaudeSDKClient,
    ResultMessage,
    StreamEvent,
    ToolUseBlock,
    UserMessage,
)
from nexus import pricing
from nexus_gateway.engine import client_tools, options
from nexus_gateway.engine.events import (
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
from nexus_gateway.engine.relay import Relay
from nexus_gateway.engine.state import Conversation

log = logging.getLogger("nexus.gateway.worker")
STRUCTURED_OUTPUT_TOOL = "StructuredOutput"  # the tool Claude Code offers for output_format
_ids = itertools.count(1)


@dataclass(slots=True)
class Prompt:
    """A user turn for the worker: Anthropic content blocks, the model, and the caller."""

    blocks: list[dict[str, Any]]
    model: str
    sink: asyncio.Queue[Event]
    credentials: dict[str, str]
    tool_choice: str = "auto"  # auto, none, required, or a function's name
    cap_usd: float | None = None  # the most this request may spend; the turn ends when it is passed


def _reminder(text: str) -> dict[str, Any]:
    """An instruction to the model next to the client's message, in Claude Code's own form."""
    return {"type": "text", "text": f"<system-reminder>{text}</system-reminder>"}


def _choice_note(choice: str) -> str | None:
    if choice == "none":
        return "Answer directly: do not call any tool for this reply."
    if choice == "required":
        return "Call one or more of the available tools for this reply."
    if choice != "auto":
        return f"Call the tool `{choice}` for this reply."
    return None


class _Translator:
    """Raw stream events of the top-level agent -> engine events for one HTTP response."""

    def __init__(self, client_names: frozenset[str]) -> None:
        self.client_names = client_names
        self.report_calls = True  # False under tool_choice "none": calls are refused, not answers
        self.usage = Usage()
        self.text: list[str] = []
        self.calls: list[ToolCall] = []
        self._blocks: dict[int, tuple[str, int | None]] = {}  # block index -> (kind, call index)
        self._args: dict[int, list[str]] = {}
        self.stop_reason: str | None = None
        self.message_calls: list[int] = []
        self.cost = Decimal(0)  # what this response's upstream messages cost so far
        self._model: str | None = None
        self._message_usage: dict[str, Any] = {}

    def new_response(self) -> None:
        self.usage = Usage()
        self.text = []
        self.calls = []
        self.cost = Decimal(0)

    def feed(self, event: dict[str, Any]) -> list[Event]:
        kind = event.get("type")
        out: list[Event] = []
        if kind == "message_start":
            message = event.get("message") or {}
            self._model = message.get("model") or self._model
            self._message_usage = dict(message.get("usage") or {})
            self.usage.add_start(self._message_usage)
            self._blocks.clear()
            self.message_calls = []
        elif kind == "content_block_start":
            block = event.get("content_block") or {}
            index = int(event.get("index", 0))
            if (
                block.get("type") == "tool_use"
                and block.get("name") in self.client_names
                and self.report_calls
            ):
                n = len(self.calls)
                self.calls.append(ToolCall(block.get("id", ""), block["name"], ""))
                self._args[n] = []
                self._blocks[index] = ("call", n)
                self.message_calls.append(n)
                out.append(ToolCallStart(n, block.get("id", ""), block["name"]))
            elif block.get("type") == "tool_use" and block.get("name") == STRUCTURED_OUTPUT_TOOL:
                self._blocks[index] = ("structured", None)
            else:
                self._blocks[index] = (str(block.get("type")), None)
        elif kind == "content_block_delta":
            delta = event.get("delta") or {}
            where, at = self._blocks.get(int(event.get("index", 0)), ("", None))
            if delta.get("type") == "text_delta" and where == "text":
                self.text.append(delta.get("text", ""))
                out.append(TextDelta(delta.get("text", "")))
            elif delta.get("type") == "input_json_delta":
                piece = delta.get("partial_json", "")
                if where == "call" and at is not None:
                    self._args[at].append(piece)
                    out.append(ToolCallDelta(at, piece))
                elif where == "structured" and piece:
                    self.text.append(piece)  # JSON mode: the structured answer streams as text
                    out.append(TextDelta(piece))
        elif kind == "message_delta":
            self.usage.add_output(event.get("usage") or {})
            final = {**self._message_usage, **(event.get("usage") or {})}
            self.cost += pricing.cost_usd(self._model, pricing.Usage.from_api(final)) or Decimal(0)
            self.stop_reason = (event.get("delta") or {}).get("stop_reason") or self.stop_reason
        elif kind == "message_stop" and self.stop_reason == "tool_use" and self.message_calls:
            for n in self.message_calls:
                self.calls[n].arguments = "".join(self._args[n]) or "{}"
            out.append(Suspended([self.calls[n] for n in self.message_calls], self.usage))
        return out


class Worker:
    def __init__(
        self,
        config: options.EngineConfig,
        isolation: options.Isolation,
        relay: Relay,
        root: Path,
        tool_timeout_s: float,
        start: options.SessionStart | None = None,
        session_store: Any = None,
        workspaces: Path | None = None,
    ) -> None:
        self.id = next(_ids)
        self.config = config
        self.isolation = isolation
        self.relay = relay
        self.home = root / "workers" / str(self.id)
        # The working directory is named for the conversation's first session, and kept by every
        # session resumed or forked from it, so the transcript's project key (derived from its
        # absolute path) is the same in every process that shares the workspace root.
        self.start_spec = start or options.SessionStart.new()
        self.session_id = self.start_spec.session_id
        self.project = self.start_spec.project
        self.cwd = (workspaces or root / "conversations") / self.project
        self.pending = client_tools.PendingCalls(tool_timeout_s)
        self.session_store = session_store
        self.resumed = self.start_spec.resume is not None
        self.last_entry: str | None = None  # the uuid of the newest transcript entry (fork points)
        self.inbox: asyncio.Queue[Prompt | None] = asyncio.Queue()
        self.ready = asyncio.Event()
        self.state = "starting"  # starting, idle, busy, suspended, closed
        self.sink: asyncio.Queue[Event] | None = None
        self.credentials: dict[str, str] | None = None
        self.holds: bytes | None = None  # continuity key of the history this session holds
        self.scope: str | None = None  # the caller it serves (set with its first turn)
        self.conversation_id: str | None = None
        self.conversation: Conversation | None = None  # the conversation it serves
        self.busy_claimed = False  # leased to a request that has not submitted yet
        self.unseen = 0  # events no client received (interrupted or abandoned turns)
        self.on_turn_end: Any = None  # the pool's hook: async callable(worker)
        self.model: str = config.model
        self.last_used = time.monotonic()
        self.started_at = time.monotonic()
        self.connect_ms: float | None = None
        self.turns = 0
        self.failure: str | None = None
        self.client: ClaudeSDKClient | None = None
        self.task: asyncio.Task[None] | None = None
        self._translator = _Translator(frozenset(t.name for t in config.tools))
        self._emitted = 0
        self._tool_calls: list[tuple[str, Any]] = []  # made in the current response (see Finished)

    # lifecycle ---------------------------------------------------------------------------------
    def start(self) -> None:
        self.task = asyncio.create_task(self._run(), name=f"gateway-worker-{self.id}")

    def stop(self) -> None:
        """Finish the current turn (if any), then end the process."""
        self.pending.abandon("the gateway is stopping this session")
        self.inbox.put_nowait(None)

    @property
    def pid(self) -> int | None:
        try:
            return int(self.client._transport._process.pid)  # type: ignore[union-attr]
        except AttributeError:
            return None

    async def _run(self) -> None:
        base_url, token = self.relay.route(lambda: self.credentials)
        (self.home / "tmp").mkdir(parents=True, exist_ok=True)
        self.cwd.mkdir(parents=True, exist_ok=True)
        opts = options.build(
            self.config,
            self.isolation,
            home=self.home,
            cwd=self.cwd,
            base_url=base_url,
            pending=self.pending,
            start=self.start_spec,
            session_store=self.session_store,
            stderr=lambda line: log.debug("worker %s: %s", self.id, line),
        )
        began = time.perf_counter()
        try:
            async with ClaudeSDKClient(opts) as client:
                self.client = client
                self.connect_ms = (time.perf_counter() - began) * 1000
                self.state = "idle"
                self.ready.set()
                while (prompt := await self.inbox.get()) is not None:
                    await self._turn(client, prompt)
                    if self.state == "closed":
                        break
        except Exception as exc:  # the CLI died or would not start: the turn (if any) fails clearly
            self.failure = f"{exc.__class__.__name__}: {exc}"
            log.warning("worker %s ended: %s", self.id, self.failure)
            await self._emit(
                Failed(502, f"Claude Code session failed: {self.failure}", retryable=self._emitted == 0)
            )
        finally:
            self.state = "closed"
            self.relay.drop(token)
            self.pending.abandon("the session ended")
            self.ready.set()
            if self.session_store is not None:  # its transcripts live on in the store
                shutil.rmtree(self.home, ignore_errors=True)

    # turns -------------------------------------------------------------------------------------
    async def _emit(self, event: Event) -> None:
        if self.sink is not None:
            self._emitted += 1
            await self.sink.put(event)
        else:
            self.unseen += 1  # the session went on past what any client saw
        if isinstance(event, (Suspended, Finished, Failed)):
            self.sink = None

    async def _turn(self, client: ClaudeSDKClient, prompt: Prompt) -> None:
        self.state = "busy"
        self.sink, self.credentials = prompt.sink, prompt.credentials
        self._emitted = 0
        self._translator.new_response()
        self._tool_calls = []
        self.turns += 1
        if prompt.model != self.model:
            await client.set_model(prompt.model)
            self.model = prompt.model
        choice = prompt.tool_choice
        self.pending.refuse = choice == "none"
        self._translator.report_calls = choice != "none"
        note = _choice_note(choice) if self.config.tools else None
        blocks = [*prompt.blocks, _reminder(note)] if note else prompt.blocks
        # tool_choice "required" or a named function: an answer without the call gets one reminder in
        # the same turn (the client sees one answer), so the contract holds without trusting the model.
        nudges_left = 1 if choice not in ("auto", "none") and self.config.tools else 0
        while True:
            held = await self._exchange(client, blocks, hold_if_no_call=nudges_left > 0, cap=prompt.cap_usd)
            if held is None:
                break
            nudges_left -= 1
            blocks = [_reminder(_choice_note(choice) or "")]
        self.last_used = time.monotonic()
        self.pending.clear()
        if self.state != "closed":
            self.state = "idle"
        if self.on_turn_end is not None:
            await self.on_turn_end(self)

    async def _exchange(
        self,
        client: ClaudeSDKClient,
        blocks: list[dict[str, Any]],
        hold_if_no_call: bool,
        cap: float | None = None,
    ) -> Finished | None:
        """Send one user message and relay the events until its result. Returns the result instead of
        emitting it when ``hold_if_no_call`` and the model called no client tool."""

        async def one_message() -> Any:
            yield {"type": "user", "message": {"role": "user", "content": blocks}, "parent_tool_use_id": None}

        held: Finished | None = None
        cut = False
        await client.query(one_message())
        async for message in client.receive_response():
            if isinstance(message, StreamEvent):
                if message.parent_tool_use_id is None:
                    t = self._translator
                    for event in t.feed(message.event):
                        if isinstance(event, Suspended):
                            self.state = "suspended"
                        await self._emit(event)
                    stop = message.event.get("type") == "message_stop"
                    # Past the cap, a message that would make Claude Code call the upstream again on its
                    # own (its tools, a paused turn) ends the turn; client tool calls end it anyway.
                    over = (
                        cap is not None
                        and t.cost > Decimal(str(cap))
                        and t.stop_reason in ("tool_use", "pause_turn")
                        and not t.message_calls
                    )
                    if stop and not cut and (t.stop_reason == "max_tokens" or over):
                        # Claude Code would go on past the output cap on its own, and a request past its
                        # spend cap must not call the upstream again: the turn ends here ("length").
                        cut = True
                        reason = "max_tokens" if t.stop_reason == "max_tokens" else "max_budget"
                        await self._emit(
                            Finished(reason, t.usage, "".join(t.text), tool_calls=list(self._tool_calls))
                        )
                        with contextlib.suppress(Exception):
                            await client.interrupt()
            elif isinstance(message, (AssistantMessage, UserMessage)):
                if message.parent_tool_use_id is None and message.uuid:
                    self.last_entry = message.uuid
                if isinstance(message, AssistantMessage):
                    self._tool_calls.extend(
                        (b.name, b.input) for b in message.content if isinstance(b, ToolUseBlock)
                    )
            elif isinstance(message, ResultMessage):
                if cut:
                    continue
                result = self._result(message)
                if hold_if_no_call and isinstance(result, Finished) and not self._translator.calls:
                    held = result
                else:
                    await self._emit(result)
        return held

    def _result(self, result: ResultMessage) -> Event:
        t = self._translator
        if result.is_error and result.subtype not in ("error_max_budget_usd",):
            reason = "; ".join(result.errors or []) or (result.result or result.subtype)
            status = result.api_error_status or 502
            return Failed(status if status >= 400 else 502, f"upstream error: {reason}", retryable=False)
        if self.config.json_schema is not None and result.structured_output is None:
            return Failed(
                502, "the model did not answer in the requested JSON schema", code="invalid_model_output"
            )
        # A structured answer arrives as Claude Code's StructuredOutput tool call: the answer is done.
        stop = (
            "end_turn"
            if result.structured_output is not None and t.stop_reason == "tool_use"
            else t.stop_reason
        )
        return Finished(
            stop_reason=stop,
            usage=t.usage,
            text="".join(t.text),
            structured_output=result.structured_output,
            cost_usd=result.total_cost_usd,
            session_id=self.session_id,
            tool_calls=list(self._tool_calls),
        )

    # the API side --------------------------------------------------------------------------------
    async def submit(self, prompt: Prompt) -> None:
        self.state = "busy"
        self.last_used = time.monotonic()
        await self.inbox.put(prompt)

    def continue_with(
        self,
        results: list[tuple[str, str, bool]],
        sink: asyncio.Queue[Event],
        credentials: dict[str, str],
    ) -> None:
        """Deliver the client's tool results to the suspended turn; its events go to ``sink``."""
        self.sink, self.credentials = sink, credentials
        self._emitted = 0
        self._translator.new_response()
        self._tool_calls = []
        self.state = "busy"
        self.last_used = time.monotonic()
        for call_id, content, is_error in results:
            self.pending.resolve(call_id, content, is_error)

    async def interrupt(self) -> None:
        """The client went away: stop the turn, free the session."""
        self.sink = None
        self.pending.abandon("the client disconnected")
        if self.client is not None and self.state in ("busy", "suspended"):
            try:
                await self.client.interrupt()
            except Exception as exc:
                log.info("worker %s: interrupt failed (%s); closing it", self.id, exc)
                self.stop()
