"""Claude Code-like conversation traffic: synthetic but realistic requests and their answers.

Sessions of users in teams with the shapes of CLI 2.1: body keys ``model, messages, system, tools,
metadata, max_tokens, stream``; 12 tool definitions (~40 KB) and a 3-block system prompt repeated by
every request; ``metadata.user_id`` carrying device and session ids; a ``claudeMd`` reminder and an
inline system message at the start; assistant turns with text and, often, a tool call; sub-agents
(the Agent tool) and compactions. The response of request N (SSE built with the fake upstream's
``message_events``) is exactly the assistant message request N+1 carries, so linking finds the
parent. Deterministic for a seed: everything is drawn from the ``random.Random`` given.
"""

from __future__ import annotations

import copy
import math
import random
import string
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
import psycopg
from nexus.db.records import KnownHashes, write_batch
from nexus.record import RawRecord

from tests.support.fake_upstream import Usage, message_events

MODEL = "claude-sonnet-4-5-20250929"
ACTIVE_SESSIONS = 16  # sessions a Workload interleaves
PARKED_SESSIONS = 500  # finished sessions a Workload keeps, to be continued later
CLI_VERSION = "2.1.330"
COMPACT_PROMPT = (
    "Your task is to create a detailed summary of the conversation so far, paying close attention to"
    " the user's explicit requests and your previous actions."
)
CONTINUATION = (
    "This session is being continued from a previous conversation that ran out of context."
    " The conversation is summarized below:"
)
MAIN_TOOLS = (
    "Agent", "Bash", "Glob", "Grep", "Read", "Edit", "Write", "NotebookEdit", "WebFetch", "WebSearch",
    "TodoWrite", "BashOutput",
)  # fmt: skip
WORK_TOOLS = ("Bash", "Read", "Edit", "Grep", "Glob", "Write")
COMMON_WORDS = (
    "the of and to in is that for it with as on be this are by from at or an use file code test run if"
    " not can will we should function value data error line name type call return new add fix check"
    " update config request response table index query user session module import class method string"
    " list dict path build deploy cache key time log debug output input result status message"
)  # split into words by Text
CODE_TOKENS = (
    "def return self import from if else elif for in while None True False ( ) : = == != + - * / { }"
    " [ ] , . -> # await async try except raise with as lambda yield pass 0 1 2 10 100 'x' \"s\""
)


class Text:
    """Random prose and code-like text from a Zipf-weighted vocabulary, cut from pre-built corpora
    (fast: a slice per call). Compresses about like real prose and code, see the printed zlib ratio."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        vocab = COMMON_WORDS.split() + [self._word() for _ in range(4000)]
        cum = list(_cumulative([1 / (i + 1) for i in range(len(vocab))]))
        self.prose = " ".join(rng.choices(vocab, cum_weights=cum, k=500_000))
        idents = ["_".join(rng.choices(vocab[:800], k=rng.randint(1, 3))) for _ in range(1500)]
        code_vocab = CODE_TOKENS.split() + idents
        code_cum = list(_cumulative([1 / (i + 1) ** 0.8 for i in range(len(code_vocab))]))
        lines = [
            "    " * rng.randint(0, 3)
            + " ".join(rng.choices(code_vocab, cum_weights=code_cum, k=rng.randint(1, 9)))
            for _ in range(60_000)
        ]
        self.code = "\n".join(lines)

    def with_rng(self, rng: random.Random) -> Text:
        """The same corpora, drawn from by another random generator (one per fill worker)."""
        other = copy.copy(self)
        other.rng = rng
        return other

    def _word(self) -> str:
        return "".join(self.rng.choices(string.ascii_lowercase, k=self.rng.randint(2, 10)))

    def words(self, lo: int, hi: int) -> str:
        return self._cut(self.prose, self.rng.randint(lo, hi))

    def lines(self, lo: int, hi: int) -> str:
        return self._cut(self.code, self.rng.randint(lo, hi))

    def _cut(self, src: str, n: int) -> str:
        start = self.rng.randrange(len(src) - n)
        return src[start : start + n].strip() or "x"


def _cumulative(weights: list[float]) -> Iterator[float]:
    total = 0.0
    for w in weights:
        total += w
        yield total


@dataclass
class Shapes:
    """The parts every request of a kind repeats: tools (~40 KB) and the system prompt."""

    main_tools: bytes
    main_system: bytes
    sub_tools: bytes
    sub_system: bytes

    @classmethod
    def build(cls, text: Text) -> Shapes:
        tools = {name: _tool_definition(text, name) for name in MAIN_TOOLS}
        billing = {
            "type": "text",
            "text": f"x-anthropic-billing-header: cc_version={CLI_VERSION}.a1f; cc_entrypoint=cli;",
        }
        ephemeral = {"type": "ephemeral"}
        main_system = [
            billing,
            {"type": "text", "text": "You are Claude Code, Anthropic's official CLI for Claude.",
             "cache_control": ephemeral},
            {"type": "text", "text": text.words(13_000, 13_000), "cache_control": ephemeral},
        ]  # fmt: skip
        sub_system = [
            billing,
            {"type": "text", "text": "You are an agent for Claude Code, Anthropic's official CLI for Claude.",
             "cache_control": ephemeral},
            {"type": "text", "text": text.words(5_000, 5_000), "cache_control": ephemeral},
        ]  # fmt: skip
        sub_tools = [t for name, t in tools.items() if name not in ("Agent", "TodoWrite")]
        return cls(
            orjson.dumps(list(tools.values())),
            orjson.dumps(main_system),
            orjson.dumps(sub_tools),
            orjson.dumps(sub_system),
        )


def _tool_definition(text: Text, name: str) -> dict[str, Any]:
    params = ["command", "description", "timeout"] if name == "Bash" else ["path", "pattern", "limit"]
    return {
        "name": name,
        "description": text.words(2_700, 3_300),
        "input_schema": {
            "type": "object",
            "properties": {p: {"type": "string", "description": text.words(80, 200)} for p in params},
            "required": params[:1],
            "additionalProperties": False,
            "$schema": "http://json-schema.org/draft-07/schema#",
        },
    }


@dataclass
class Identity:
    team: str
    user: str
    device: str
    account: str


def uuid7_at(ts: float, rng: random.Random) -> str:
    """A UUIDv7 for a (virtual) arrival time, as the proxy assigns them."""
    value = (int(ts * 1000) & ((1 << 48) - 1)) << 80 | 0x7 << 76 | rng.getrandbits(12) << 64
    value |= 0b10 << 62 | rng.getrandbits(62)
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


@dataclass
class Convo:
    """One conversation as the CLI resends it: the history so far (exact bytes, no cache_control)
    and the newest user message, which is sent last with the cache_control marker."""

    ident: Identity
    session_id: str
    agent_id: str | None
    head: bytes
    tail: bytes
    headers: list[list[str]]
    planned_turns: int
    history: list[bytes] = field(default_factory=list)
    pending: dict[str, Any] | None = None
    env: bytes | None = None  # the inline system message: #2 of the history, after the first user message
    turns: int = 0
    last_text: str = ""
    sub: Convo | None = None  # a running sub-agent (Agent tool call) the main conversation waits for
    sub_call: str | None = None

    @property
    def finished(self) -> bool:
        return self.sub is None and self.turns >= self.planned_turns

    @property
    def next_message_count(self) -> int:
        return len(self.history) + 1 + (1 if self.turns == 0 and self.env else 0)


def _with_cache_control(message: dict[str, Any]) -> dict[str, Any]:
    content = message["content"]
    if isinstance(content, str):
        content = [{"type": "text", "text": content}]
    return {**message, "content": [*content[:-1], {**content[-1], "cache_control": {"type": "ephemeral"}}]}


class Clock:
    """Virtual arrival times: a request every ~1.5 s on average, starting 30 days ago."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.t = time.time() - 30 * 86400

    def tick(self) -> float:
        self.t += self.rng.expovariate(1 / 1.5)
        return self.t


class Generator:
    """Claude Code sessions turn by turn: the response of request N is exactly the assistant message
    request N+1 carries, so linking finds the parent."""

    def __init__(self, rng: random.Random, text: Text, shapes: Shapes) -> None:
        self.rng, self.text, self.shapes = rng, text, shapes
        self.clock = Clock(rng)
        self.identities = [self._identity(t, u) for t in range(4) for u in range(12)]

    def _identity(self, team: int, user: int) -> Identity:
        return Identity(
            f"team-{team}", f"user{team}-{user}@example.com", f"{self.rng.getrandbits(256):064x}",
            f"acct-{team}",
        )  # fmt: skip

    def _uuid4(self) -> str:
        h = f"{self.rng.getrandbits(128):032x}"
        return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:]}"

    def _tool_id(self) -> str:
        return "toolu_01" + "".join(self.rng.choices(string.ascii_letters + string.digits, k=22))

    def planned_turns(self) -> int:
        return max(2, min(150, int(self.rng.lognormvariate(math.log(18), 0.8))))

    # sessions

    def new_main(
        self,
        ident: Identity | None = None,
        turns: int | None = None,
        session_id: str | None = None,
        opening: str | None = None,
    ) -> Convo:
        ident = ident or self.rng.choice(self.identities)
        session_id = session_id or self._uuid4()
        meta = orjson.dumps(
            {"device_id": ident.device, "account_uuid": "", "session_id": session_id}
        ).decode()
        convo = Convo(
            ident,
            session_id,
            None,
            self._head(),
            self._tail(self.shapes.main_system, self.shapes.main_tools, meta),
            self._headers(session_id, None),
            turns or self.planned_turns(),
        )
        user = ident.user.split("@")[0]
        env = (
            f"# Environment\nWorking directory: /home/{user}/src/project-{self.rng.randint(1, 9)}\n"
            f"Is directory a git repo: Yes\nPlatform: linux\nOS Version: Linux 6.8.0\n"
            f"Today's date: 2026-01-{self.rng.randint(10, 28)}\n"
        )
        convo.env = orjson.dumps({"role": "system", "content": env})
        claude_md = (
            "<system-reminder>\nAs you answer the user's questions, you can use the following context:\n"
            f"# claudeMd\n{self.text.words(800, 1600)}\n</system-reminder>"
        )
        first = opening or self.text.words(100, 500)
        convo.pending = {
            "role": "user",
            "content": [{"type": "text", "text": claude_md}, {"type": "text", "text": first}],
        }
        return convo

    def new_sub(self, parent: Convo, prompt: str) -> Convo:
        """The sub-agent an Agent tool call of ``parent`` starts (a subclass may change its model)."""
        meta = orjson.dumps(
            {"device_id": parent.ident.device, "account_uuid": "", "session_id": parent.session_id}
        ).decode()
        agent_id = self._uuid4()
        return Convo(
            parent.ident,
            parent.session_id,
            agent_id,
            self._head(),
            self._tail(self.shapes.sub_system, self.shapes.sub_tools, meta),
            self._headers(parent.session_id, agent_id),
            self.rng.randint(2, 6),
            pending={"role": "user", "content": [{"type": "text", "text": prompt}]},
        )

    @staticmethod
    def _head() -> bytes:
        return b'{"model":"' + MODEL.encode() + b'","messages":['

    @staticmethod
    def _tail(system: bytes, tools: bytes, meta: str) -> bytes:
        return (
            b'],"system":' + system + b',"tools":' + tools + b',"metadata":{"user_id":' + orjson.dumps(meta)
            + b'},"max_tokens":32000,"stream":true}'
        )  # fmt: skip

    @staticmethod
    def _headers(session_id: str, agent_id: str | None) -> list[list[str]]:
        headers = [
            ["accept", "application/json"],
            ["anthropic-beta", "claude-code-20250219,interleaved-thinking-2025-05-14,"
             "fine-grained-tool-streaming-2025-05-14"],
            ["anthropic-dangerous-direct-browser-access", "true"],
            ["anthropic-version", "2023-06-01"],
            ["content-type", "application/json"],
            ["user-agent", f"claude-cli/{CLI_VERSION} (external, cli)"],
            ["x-app", "cli"],
            ["x-claude-code-session-id", session_id],
            ["x-stainless-lang", "js"],
            ["x-stainless-package-version", "0.60.0"],
            ["x-stainless-retry-count", "0"],
            ["x-stainless-runtime", "node"],
            ["x-stainless-timeout", "600"],
        ]  # fmt: skip
        if agent_id:
            headers.append(["x-claude-code-agent-id", agent_id])
        return headers

    # turns

    def step(self, convo: Convo, agent: bool | None = None) -> RawRecord:
        """The next request of ``convo`` (or of the sub-agent it is waiting for). ``agent``: True forces
        an Agent tool call in the answer, False forbids one, None draws it (2%)."""
        if convo.sub is not None:
            sub = convo.sub
            rec = self._turn(sub, agent=False)
            if sub.finished:
                convo.pending = {
                    "role": "user",
                    "content": [{"type": "tool_result", "tool_use_id": convo.sub_call,
                                 "content": [{"type": "text", "text": sub.last_text}]}],
                }  # fmt: skip
                convo.sub = convo.sub_call = None
            return rec
        if agent is None:
            agent = convo.agent_id is None and self.rng.random() < 0.02
        return self._turn(convo, agent)

    def _turn(self, convo: Convo, agent: bool) -> RawRecord:
        assert convo.pending is not None
        messages = [*convo.history, orjson.dumps(_with_cache_control(convo.pending))]
        if convo.turns == 0 and convo.env:
            messages.append(convo.env)
        body = convo.head + b",".join(messages) + convo.tail
        blocks = self._answer(convo, agent)
        rec = self.record(convo, body, blocks, len(messages[-1]))
        convo.history.append(orjson.dumps(convo.pending))
        if convo.turns == 0 and convo.env:
            convo.history.append(convo.env)
        convo.history.append(orjson.dumps({"role": "assistant", "content": blocks}))
        convo.turns += 1
        convo.last_text = blocks[0]["text"]
        convo.pending = self._next_user(convo, blocks)
        return rec

    def _answer(self, convo: Convo, agent: bool) -> list[dict[str, Any]]:
        blocks: list[dict[str, Any]] = [{"type": "text", "text": self.text.words(200, 2000)}]
        if agent:
            prompt = self.text.words(200, 800)
            blocks.append(self._tool_use("Agent", {"description": self.text.words(20, 40), "prompt": prompt,
                                                    "subagent_type": "general-purpose"}))  # fmt: skip
        elif self._uses_tool(convo):
            blocks.append(self._work_tool(convo))
        return blocks

    def _uses_tool(self, convo: Convo) -> bool:
        if convo.agent_id is None:
            return self.rng.random() < 0.55
        return convo.turns < convo.planned_turns - 1  # a sub-agent reports back in text at its last turn

    def _tool_use(self, name: str, input_: dict[str, Any]) -> dict[str, Any]:
        return {"type": "tool_use", "id": self._tool_id(), "name": name, "input": input_}

    def _work_tool(self, convo: Convo) -> dict[str, Any]:
        name = self.rng.choice(WORK_TOOLS)
        path = f"/home/{convo.ident.user.split('@')[0]}/src/{self.text.words(5, 20).replace(' ', '/')}.py"
        if name == "Bash":
            return self._tool_use(name, {"command": self.text.lines(30, 150).replace("\n", " && "),
                                         "description": self.text.words(20, 60)})  # fmt: skip
        if name in ("Edit", "Write"):
            return self._tool_use(name, {"file_path": path, "old_string": self.text.lines(50, 400),
                                         "new_string": self.text.lines(50, 400)})  # fmt: skip
        if name == "Grep":
            return self._tool_use(name, {"pattern": self.text.words(5, 30), "path": "src",
                                         "output_mode": "content"})  # fmt: skip
        return self._tool_use(name, {"file_path": path} if name == "Read" else {"pattern": "**/*.py"})

    def _next_user(self, convo: Convo, blocks: list[dict[str, Any]]) -> dict[str, Any] | None:
        call = next((b for b in blocks if b["type"] == "tool_use"), None)
        if call is not None and call["name"] == "Agent":
            convo.sub, convo.sub_call = self.new_sub(convo, call["input"]["prompt"]), call["id"]
            return None
        content: list[dict[str, Any]] = []
        if call is not None:
            content.append(
                {"tool_use_id": call["id"], "type": "tool_result", "content": self.text.lines(1000, 8000)}
            )
            if self.rng.random() < 0.1:
                content.append({"type": "text", "text": self._reminder()})
        else:
            if self.rng.random() < 0.4:
                content.append({"type": "text", "text": self._reminder()})
            content.append({"type": "text", "text": self.text.words(100, 500)})
        return {"role": "user", "content": content}

    def _reminder(self) -> str:
        return f"<system-reminder>\n{self.text.words(120, 400)}\n</system-reminder>"

    def record(self, convo: Convo, body: bytes, blocks: list[dict[str, Any]], new_bytes: int) -> RawRecord:
        """What the proxy records for one request: ``body`` answered with ``blocks`` as SSE, at the
        clock's next arrival time; ``new_bytes`` is what the prompt cache had not seen. A subclass may
        set other metadata (model, keys, rate-limit headers, times)."""
        rng = self.rng
        ts = self.clock.tick()
        out_chars = sum(len(orjson.dumps(b)) for b in blocks)
        usage = Usage(
            input_tokens=rng.randint(1, 40),
            output_tokens=max(1, out_chars // 4),
            cache_creation_input_tokens=new_bytes // 4,
            cache_read_input_tokens=len(body) // 4,
        )
        stop = "tool_use" if blocks[-1]["type"] == "tool_use" else "end_turn"
        sse = b"".join(message_events(blocks, MODEL, stop, usage))
        response_headers = [
            ["content-type", "text/event-stream; charset=utf-8"],
            ["request-id", "req_011C" + "".join(rng.choices(string.ascii_letters + string.digits, k=20))],
            ["anthropic-ratelimit-unified-status", "allowed"],
            ["anthropic-ratelimit-unified-5h-utilization", f"{rng.random():.2f}"],
            ["anthropic-ratelimit-unified-7d-utilization", f"{rng.random():.2f}"],
            ["anthropic-ratelimit-unified-5h-reset", str(int(ts) + 3600)],
        ]
        ttfb = rng.uniform(400, 2500)
        return RawRecord(
            id=uuid7_at(ts, rng),
            received_at=ts,
            method="POST",
            path="/v1/messages",
            query="beta=true",
            request_headers=convo.headers,
            status=200,
            response_headers=response_headers,
            ttfb_ms=ttfb,
            duration_ms=ttfb + rng.uniform(500, 20_000),
            team=convo.ident.team,
            user=convo.ident.user,
            auth_mode="oauth",
            account=convo.ident.account,
            upstream="https://api.anthropic.com",
            request_body=body,
            response_body=sse,
        )

    def compact(self, convo: Convo) -> tuple[RawRecord, Convo]:
        """The CLI's compaction request (history + summary prompt) and the session continued after it,
        whose first message carries the summary."""
        prompt = {
            "role": "user",
            "content": [{"type": "text", "text": f"{COMPACT_PROMPT}\n{self.text.words(200, 400)}"}],
        }
        body = (
            convo.head + b",".join([*convo.history, orjson.dumps(_with_cache_control(prompt))]) + convo.tail
        )
        analysis, summary = self.text.words(300, 800), self.text.words(600, 1500)
        answer = f"<analysis>\n{analysis}\n</analysis>\n\n<summary>\n{summary}\n</summary>"
        rec = self.record(convo, body, [{"type": "text", "text": answer}], len(body))
        opening = (
            f"{CONTINUATION}\nAnalysis:\n{analysis}\n\nSummary:\n{summary}\nPlease continue the conversation"
            " from where we left it off without asking the user any further questions."
        )
        cont = self.new_main(convo.ident, self.planned_turns(), convo.session_id, opening)
        return rec, cont


class Workload:
    """Many users' sessions, interleaved; 4% of long-enough sessions end in a compaction. Finished
    sessions are parked (a reservoir sample since the last ``take_parked``) so that the timed samples
    can continue them later."""

    def __init__(self, gen: Generator, rng: random.Random, sessions: int = ACTIVE_SESSIONS) -> None:
        self.gen, self.rng = gen, rng
        self.active = [gen.new_main() for _ in range(sessions)]
        self.parked: list[Convo] = []
        self.finished = 0
        self._since_take = 0

    def records(self, n: int) -> Iterator[RawRecord]:
        produced = 0
        while produced < n:
            i = self.rng.randrange(len(self.active))
            convo = self.active[i]
            if not convo.finished:
                produced += 1
                yield self.gen.step(convo)
                continue
            if convo.turns >= 8 and self.rng.random() < 0.04:
                rec, self.active[i] = self.gen.compact(convo)
                produced += 1
                yield rec
                continue
            self._park(convo)
            self.active[i] = self.gen.new_main()

    def _park(self, convo: Convo) -> None:
        self.finished += 1
        self._since_take += 1
        if len(self.parked) < PARKED_SESSIONS:
            self.parked.append(convo)
        elif self.rng.random() < PARKED_SESSIONS / self._since_take:
            self.parked[self.rng.randrange(PARKED_SESSIONS)] = convo

    def take_parked(self) -> list[Convo]:
        out, self.parked, self._since_take = self.parked, [], 0
        return out


def write_retrying(conn: psycopg.Connection, batch: list[Any], known: KnownHashes) -> None:
    """``write_batch`` for bulk fills from several processes. Two of them may insert the same new blob
    (tools, system prompt) in opposite orders: Postgres then aborts one batch as a deadlock; it is
    idempotent, so write it again."""
    for attempt in range(5):
        try:
            write_batch(conn, batch, known)
            return
        except psycopg.errors.DeadlockDetected:
            if attempt == 4:
                raise
            time.sleep(0.05 * (attempt + 1))
