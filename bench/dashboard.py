"""Dashboard server time per page and API call on a big, realistic database.

Seeds (once; cached under .cache/bench-dashboard/) an embedded Postgres with 100,000 synthetic Claude
Code requests in 5,000 conversations, one of them 300 requests long, through the real ingest path
(``nexus.derive.prepare`` + ``nexus.db.records.write_batch``, which stores bodies and links
conversations), starts the dashboard with uvicorn, and times N sequential GETs of every target in
TARGETS below. Target: p95 under 150 ms for every page and API call. See bench/README.md.

    .venv/bin/python bench/dashboard.py            # 100k requests / 5k conversations
    .venv/bin/python bench/dashboard.py --quick    # 10k / 500 (one of 300): smoke run
    .venv/bin/python bench/dashboard.py --reseed   # rebuild the cached database first
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import gc
import hashlib
import heapq
import html
import http.client
import json
import math
import multiprocessing
import os
import random
import re
import secrets
import shutil
import signal
import sys
import tempfile
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import orjson
import psycopg
from nexus.access import AccessStore
from nexus.db.migrate import migrate
from nexus.db.records import KnownHashes
from nexus.derive import prepare
from nexus.headers import fingerprint
from nexus.record import RawRecord
from nexus.secret_store import LocalSecretStore

from bench.lib.procs import (
    Child,
    OtherLoad,
    cpu_s,
    family,
    free_port,
    log_tail,
    postmaster_pid,
    spawn,
    stop_group,
)
from bench.lib.report import ratio, verdict
from bench.lib.stats import pct
from bench.lib.traffic import Convo, Generator, Identity, Shapes, Text, uuid7_at, write_retrying
from tests.support.fake_upstream import Usage, message_events
from tests.support.pg import database_url, start_server

# --- what is measured ------------------------------------------------------------------------------

TARGET_P95_MS = 150.0
BASELINE = "/health"  # one SELECT 1: the floor of HTTP + auth-free routing + a pool round trip

# (kind, path). Placeholders, filled from the database at every run:
#   {big}      the 300-request conversation        {typical}  a conversation of median size
#   {last}     the big conversation's last request  {large}    the request with the largest body
#   {word}     a word of most conversations         {rare}     a word of very few conversations
#   {team}     the team with the most conversations
TARGETS: tuple[tuple[str, str], ...] = (
    ("page", "/"),
    ("page", "/?q={word}"),
    ("page", "/?q={rare}"),
    ("page", "/?team={team}&period=7d"),
    ("page", "/conversations/{big}"),
    ("page", "/conversations/{big}?view=timeline"),
    ("page", "/conversations/{typical}"),
    ("page", "/requests/{last}"),
    ("page", "/requests/{large}"),
    ("page", "/usage"),
    ("page", "/usage?group=model&bucket=hour&period=7d"),
    ("page", "/ratelimits"),
    ("page", "/keys"),
    ("api", "/api/overview"),
    ("api", "/api/conversations?limit=50"),
    ("api", "/api/conversations?q={word}"),
    ("api", "/api/conversations?q={rare}"),
    ("api", "/api/conversations/{big}"),
    ("api", "/api/requests/{large}"),
    ("api", "/api/requests?limit=50"),
    ("api", "/api/usage"),
    ("api", "/api/usage.csv"),
    ("api", "/api/ratelimits"),
    ("api", "/api/keys"),
)
HTML_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"  # what a browser sends
SEARCH_WORD = "deploy"  # from bench.lib.traffic's COMMON_WORDS: in the prompts and answers of most sessions

# --- the seeded database ---------------------------------------------------------------------------

SEED_VERSION = 2  # bump whenever the generated traffic changes: cached databases are then rebuilt
SEED = 11
REPO = Path(__file__).resolve().parent.parent
CACHE_ROOT = REPO / ".cache" / "bench-dashboard"
MIGRATIONS = REPO / "layers" / "shared" / "python" / "nexus" / "db" / "migrations"
DB_NAME = "nexus_bench"
# The data ends at seeding time; "last 7 days" views of an older cache would be thinner than intended.
MAX_CACHE_AGE_S = 2 * 86400
TABLES = (
    "requests", "conversations", "branches", "conversation_text", "blobs", "message_chains",
    "subtask_invocations",
)  # fmt: skip


@dataclass(frozen=True)
class Scale:
    name: str
    requests: int
    conversations: int


FULL = Scale("full", 100_000, 5_000)
QUICK = Scale("quick", 10_000, 500)
BIG_CONVERSATION = 300  # requests in the one big conversation
MAX_CONVERSATION = 60  # every other conversation has 1..60
DAYS = 60
SEED_WORKERS = max(1, min(4, os.cpu_count() or 1))
SEED_BATCH = 500
WORKER_TIMEOUT_S = 1800.0

SONNET = "claude-sonnet-4-5-20250929"
OPUS = "claude-opus-4-5-20251101"
HAIKU = "claude-haiku-4-5-20251001"
MODEL_WEIGHTS = ((SONNET, 0.55), (OPUS, 0.35), (HAIKU, 0.10))  # each user's usual model
TEAMS = (("platform", 14), ("web", 11), ("data", 8), ("mobile", 6), ("research", 4))
# Shared subscription accounts: the unified rate-limit headers are per account.
TEAM_ACCOUNT = {"platform": "max-1", "web": "max-1", "data": "max-2", "research": "max-2", "mobile": "max-3"}
FIRST_NAMES = (
    "ada", "alan", "barbara", "claude", "dennis", "edsger", "frances", "grace", "guido", "hedy", "ken",
    "linus", "margaret", "niklaus", "radia", "rob", "sophie", "tim", "tony", "yukihiro",
)  # fmt: skip
LAST_NAMES = ("allen", "hopper", "kay", "knuth", "lamport", "liskov", "moore", "perlman", "ritchie", "wirth")

# Per main turn, for ordinary conversations / the big one.
P_AGENT = (0.03, 0.05)  # the answer calls the Agent tool: a sub-agent run of 2-6 requests
P_BRANCH = (0.02, 0.03)  # the user rewinds to an earlier prompt and sends another: a branch
P_BREAK = (0.01, 0.04)  # a pause of hours before the next prompt
P_COMPACT = (0.01, 0.03)  # manual /compact, from the 12th turn on
AUTO_COMPACT_BYTES = 560_000  # history size at which the CLI compacts on its own (~140k tokens)
P_TITLE = 0.7  # a Haiku side call (topic/title) after the first request of a session
P_OVERLOADED = 0.004  # 529, then the CLI's retry
P_API_ERROR = 0.001  # 500, then the retry
P_EXPLORE = 0.4  # a sub-agent runs on Haiku instead of the conversation's model

TITLE_SYSTEM = (
    "Analyze if this message indicates a new conversation topic. If it does, extract a 2-3 word title"
    " that captures the new topic. Format your response as a JSON object with two fields: 'isNewTopic'"
    " (boolean) and 'title' (string, or null if isNewTopic is false)."
)
ERRORS = {
    429: ("rate_limit_error", "This request would exceed your account's rate limit. Please try again later."),
    500: ("api_error", "Internal server error"),
    529: ("overloaded_error", "Overloaded"),
}


# --- synthetic traffic -----------------------------------------------------------------------------


def head_for(model: str) -> bytes:
    return b'{"model":"' + model.encode() + b'","messages":['


MODEL_OF_HEAD = {head_for(m): m for m in (SONNET, OPUS, HAIKU)}


class Limits:
    """Unified rate limits per upstream account: in every 5-hour and 7-day window utilization grows
    with time at a rate drawn per window, so some 5-hour windows run out before they reset (those
    requests get a 429 and the session waits for the reset). Pure: every process agrees."""

    FIVE_H = 5 * 3600
    SEVEN_D = 7 * 86400

    def state(self, account: str, ts: float) -> tuple[float, int, float, int]:
        """(5h utilization, 5h reset, 7d utilization, 7d reset); utilization may exceed 1."""
        u5, r5 = self._window(account, "5h", self.FIVE_H, ts, 0.15, 1.2)
        u7, r7 = self._window(account, "7d", self.SEVEN_D, ts, 0.3, 0.95)
        return u5, r5, u7, r7

    def rejected(self, account: str, ts: float) -> bool:
        return self.state(account, ts)[0] >= 1.0

    def headers(self, account: str, ts: float, rejected: bool = False) -> list[list[str]]:
        u5, r5, u7, r7 = self.state(account, ts)
        u5 = 1.0 if rejected else min(u5, 0.99)
        s5 = "rejected" if rejected else "allowed_warning" if u5 >= 0.8 else "allowed"
        s7 = "allowed_warning" if u7 >= 0.8 else "allowed"
        five = u5 >= u7
        return [
            ["anthropic-ratelimit-unified-status", s5 if rejected or five else s7],
            ["anthropic-ratelimit-unified-5h-status", s5],
            ["anthropic-ratelimit-unified-5h-reset", str(r5)],
            ["anthropic-ratelimit-unified-5h-utilization", f"{u5:.2f}"],
            ["anthropic-ratelimit-unified-7d-status", s7],
            ["anthropic-ratelimit-unified-7d-reset", str(r7)],
            ["anthropic-ratelimit-unified-7d-utilization", f"{u7:.2f}"],
            ["anthropic-ratelimit-unified-representative-claim", "five_hour" if five else "seven_day"],
            ["anthropic-ratelimit-unified-fallback-percentage", "0.5"],
            ["anthropic-ratelimit-unified-reset", str(r5 if five else r7)],
        ]

    @staticmethod
    def _window(account: str, kind: str, length: int, ts: float, lo: float, hi: float) -> tuple[float, int]:
        offset = _draw(account, kind, -1, 0.0, length)
        index = math.floor((ts - offset) / length)
        start = offset + index * length
        return _draw(account, kind, index, lo, hi) * (ts - start) / length, int(start + length)


@functools.lru_cache(maxsize=4096)
def _draw(account: str, kind: str, index: int, lo: float, hi: float) -> float:
    return random.Random(f"{account}/{kind}/{index}").uniform(lo, hi)


class Traffic(Generator):
    """bench.lib.traffic's Claude Code sessions, with the dashboard's dimensions: the users' own models,
    Haiku sub-agents and side calls, Nexus keys, shared accounts with unified rate-limit headers,
    error responses, and arrival times set by the caller (``now``)."""

    def __init__(
        self, rng: random.Random, text: Text, shapes: Shapes, who: list[Identity], keys: dict[str, str]
    ) -> None:
        super().__init__(rng, text, shapes)
        self.identities, self.keys = who, keys
        self.limits = Limits()
        self.now = 0.0

    def new_sub(self, parent: Convo, prompt: str) -> Convo:
        sub = super().new_sub(parent, prompt)
        sub.head = head_for(HAIKU) if self.rng.random() < P_EXPLORE else parent.head
        return sub

    def record(
        self,
        convo: Convo,
        body: bytes,
        blocks: list[dict[str, Any]],
        new_bytes: int,
        model: str | None = None,
    ) -> RawRecord:
        rng, ts = self.rng, self.now
        model = model or MODEL_OF_HEAD.get(convo.head, SONNET)
        out_chars = sum(len(orjson.dumps(b)) for b in blocks)
        usage = Usage(
            input_tokens=rng.randint(1, 40),
            output_tokens=max(1, out_chars // 4),
            cache_creation_input_tokens=new_bytes // 4,
            cache_read_input_tokens=max(0, len(body) - new_bytes) // 4,
        )
        stop = "tool_use" if blocks[-1]["type"] == "tool_use" else "end_turn"
        ttfb = rng.uniform(400, 2500)
        return RawRecord(
            id=uuid7_at(ts, rng),
            received_at=ts,
            method="POST",
            path="/v1/messages",
            query="beta=true",
            request_headers=convo.headers,
            status=200,
            response_headers=[
                ["content-type", "text/event-stream; charset=utf-8"],
                ["request-id", self._request_id()],
                *self.limits.headers(convo.ident.account, ts),
            ],
            ttfb_ms=ttfb,
            duration_ms=ttfb + rng.uniform(500, 20_000) * (0.4 if model == HAIKU else 1.0),
            team=convo.ident.team,
            user=convo.ident.user,
            key_id=self.keys[convo.ident.user],
            auth_mode="passthrough",
            account=convo.ident.account,
            upstream="https://api.anthropic.com",
            request_body=body,
            response_body=b"".join(message_events(blocks, model, stop, usage)),
        )

    def _request_id(self) -> str:
        return f"req_011C{self.rng.getrandbits(100):025x}"

    def title_call(self, convo: Convo, ts: float) -> RawRecord:
        """The CLI's topic/title side call on Haiku: no tools, so it is attached to its session's
        conversation rather than linked as a turn."""
        first = orjson.loads(convo.history[0])["content"][-1]["text"]
        body = orjson.dumps(
            {
                "model": HAIKU,
                "max_tokens": 512,
                "messages": [{"role": "user", "content": [{"type": "text", "text": first}]}],
                "system": [{"type": "text", "text": TITLE_SYSTEM}],
                "temperature": 0,
                "stream": True,
            }
        )
        answer = orjson.dumps({"isNewTopic": True, "title": self.text.words(10, 30)}).decode()
        self.now = ts
        return self.record(convo, body, [{"type": "text", "text": answer}], len(body), model=HAIKU)

    def error_copy(self, rec: RawRecord, ts: float, status: int) -> RawRecord:
        """The same request answered with an error, earlier: what the CLI retried."""
        kind, message = ERRORS[status]
        request_id = self._request_id()
        assert rec.account is not None
        headers = [
            ["content-type", "application/json"],
            ["request-id", request_id],
            *self.limits.headers(rec.account, ts, rejected=status == 429),
        ]
        if status == 429:
            headers.append(["retry-after", str(max(1, self.limits.state(rec.account, ts)[1] - int(ts)))])
        else:
            headers.append(["x-should-retry", "true"])
        body = orjson.dumps(
            {"type": "error", "error": {"type": kind, "message": message}, "request_id": request_id}
        )
        ttfb = self.rng.uniform(80, 900)
        return dataclasses.replace(
            rec,
            id=uuid7_at(ts, self.rng),
            received_at=ts,
            status=status,
            response_headers=headers,
            response_body=body,
            ttfb_ms=ttfb,
            duration_ms=ttfb + self.rng.uniform(1, 5),
        )


@dataclass(frozen=True)
class Plan:
    """One conversation to generate: exactly ``size`` requests from ``start`` on."""

    size: int
    start: float
    person: int  # index into the identities
    model: str
    big: bool = False


def _is_prompt(message: dict[str, Any] | None) -> bool:
    return message is not None and all(b.get("type") == "text" for b in message["content"])


class Session:
    """Drives one planned conversation: main turns, sub-agent runs, compactions (automatic when the
    history is large, sometimes manual), rewinds to an earlier prompt (branches), a title side call,
    errors followed by the CLI's retry. Exactly ``plan.size`` requests, yielded in time order."""

    def __init__(self, gen: Traffic, plan: Plan, until: float) -> None:
        self.gen, self.plan, self.until = gen, plan, until
        self.convo = self._new(gen.new_main(gen.identities[plan.person], turns=10**6))
        self.left = plan.size
        self.end = plan.start  # when the previous response ended
        self.rewinds: list[int] = []  # history lengths right after an answer to a prompt
        self.titled = False
        self.compacted = False
        k = 1 if plan.big else 0
        self.p_agent, self.p_branch, self.p_break = P_AGENT[k], P_BRANCH[k], P_BREAK[k]
        self.p_compact = P_COMPACT[k]

    def _new(self, convo: Convo) -> Convo:
        convo.head = head_for(self.plan.model)
        return convo

    def _at(self, gap: float) -> float:
        """The next arrival time: ``gap`` after the previous response, squeezed so that the remaining
        requests still fit before the seeding time."""
        latest = self.until - 60 - 3 * self.left
        return min(self.end + gap, max(self.end + 0.5, latest))

    def _gap(self) -> float:
        rng, convo = self.gen.rng, self.convo
        if self.left == self.plan.size:
            return 0.0
        if convo.sub is not None:
            return rng.uniform(0.5, 8)
        if self.compacted:
            return rng.uniform(1, 5)
        if not _is_prompt(convo.pending):
            return rng.uniform(0.5, 25)  # a tool ran
        if rng.random() < self.p_break:
            return rng.uniform(3600, 14 * 3600)
        return min(1800.0, rng.lognormvariate(math.log(40), 1.0))  # the user reads and types

    def _done(self, rec: RawRecord) -> RawRecord:
        self.left -= 1
        self.end = rec.received_at + (rec.duration_ms or 0) / 1000
        return rec

    def records(self) -> Iterator[RawRecord]:
        gen, rng = self.gen, self.gen.rng
        while self.left > 0:
            convo = self.convo
            gen.now = self._at(self._gap())
            self.compacted = False
            if convo.sub is not None:
                yield self._done(gen.step(convo))
                continue
            if convo.turns == 0:
                rec = self._done(gen.step(convo, agent=False))
                yield rec
                if not self.titled and self.left > 0 and rng.random() < P_TITLE:
                    self.titled = True
                    title = gen.title_call(convo, rec.received_at + rng.uniform(0.1, 0.8))
                    self.left -= 1
                    yield title
                continue
            if self.left >= 2 and convo.turns >= 3 and self._wants_compaction():
                rec, cont = gen.compact(convo)
                self.convo, self.rewinds, self.compacted = self._new(cont), [], True
                yield self._done(rec)
                continue
            earlier = [p for p in self.rewinds[-6:] if p < len(convo.history)]
            if earlier and rng.random() < self.p_branch:
                point = rng.choice(earlier)
                del convo.history[point:]
                self.rewinds = [p for p in self.rewinds if p < point]
                convo.pending = {
                    "role": "user",
                    "content": [{"type": "text", "text": gen.text.words(100, 500)}],
                }
            agent = self.left >= 8 and rng.random() < self.p_agent
            yield from self._turn(agent)
            if convo.sub is None and _is_prompt(convo.pending):
                self.rewinds.append(len(convo.history))

    def _wants_compaction(self) -> bool:
        size = sum(len(m) for m in self.convo.history)
        return size > AUTO_COMPACT_BYTES or (
            self.convo.turns >= 12 and self.gen.rng.random() < self.p_compact
        )

    def _turn(self, agent: bool) -> Iterator[RawRecord]:
        """One main turn; sometimes answered with an error first and retried by the CLI."""
        gen, rng, convo = self.gen, self.gen.rng, self.convo
        first = gen.now
        status = 0
        if gen.limits.rejected(convo.ident.account, first):
            reset = gen.limits.state(convo.ident.account, first)[1]
            retry_at = reset + rng.uniform(60, 1800)  # the user waits for the 5-hour window to reset
            if retry_at < self.until - 60 - 3 * self.left:
                status, gen.now = (429 if self.left >= 2 else 0), retry_at
        elif self.left >= 2:
            r = rng.random()
            status = 529 if r < P_OVERLOADED else 500 if r < P_OVERLOADED + P_API_ERROR else 0
            if status:
                gen.now = first + rng.uniform(1, 12)  # the CLI's backoff
        rec = gen.step(convo, agent=agent)
        if status:
            self.left -= 1
            yield gen.error_copy(rec, first, status)
        yield self._done(rec)


def conversation_sizes(rng: random.Random, n: int, total: int) -> list[int]:
    """``n`` sizes in 1..MAX_CONVERSATION summing to ``total``: log-normal (median ~14), then nudged."""
    if not n <= total <= n * MAX_CONVERSATION:
        raise ValueError(f"cannot spread {total} requests over {n} conversations of 1..{MAX_CONVERSATION}")
    sizes = [min(MAX_CONVERSATION, max(1, round(rng.lognormvariate(math.log(14), 0.85)))) for _ in range(n)]
    diff = total - sum(sizes)
    while diff:
        i = rng.randrange(n)
        if diff > 0 and sizes[i] < MAX_CONVERSATION:
            sizes[i] += 1
            diff -= 1
        elif diff < 0 and sizes[i] > 1:
            sizes[i] -= 1
            diff += 1
    return sizes


def _start(rng: random.Random, now: float, size: int) -> float:
    """A session start in the last DAYS days: more recent days busier (adoption grows), weekends
    quiet, working hours; early enough for the session to end before ``now``."""
    while True:
        age = rng.uniform(0, DAYS)
        if rng.random() > (1.5 - age / DAYS) / 1.5:
            continue
        day = math.floor((now - age * 86400) / 86400) * 86400
        if datetime.fromtimestamp(day, UTC).weekday() >= 5 and rng.random() > 0.25:
            continue
        hour = min(21.5, max(6.0, rng.gauss(14.5, 2.5)))
        start = day + hour * 3600
        if start + size * 90 < now - 3600:
            return start


def people(rng: random.Random) -> list[Identity]:
    names = [f"{f}.{last}" for f in FIRST_NAMES for last in LAST_NAMES]
    rng.shuffle(names)
    out = []
    for team, n in TEAMS:
        account = fingerprint(f"sk-ant-oat01-bench-{TEAM_ACCOUNT[team]}")
        for _ in range(n):
            out.append(Identity(team, f"{names.pop()}@example.com", f"{rng.getrandbits(256):064x}", account))
    return out


def plan_conversations(rng: random.Random, scale: Scale, now: float, n_people: int) -> list[Plan]:
    activity = [rng.lognormvariate(0, 0.9) for _ in range(n_people)]
    usual = rng.choices([m for m, _ in MODEL_WEIGHTS], [w for _, w in MODEL_WEIGHTS], k=n_people)
    big_start = math.floor((now - 4 * 86400) / 86400) * 86400 + 9 * 3600
    plans = [Plan(BIG_CONVERSATION, big_start, 0, SONNET, big=True)]
    for size in conversation_sizes(rng, scale.conversations - 1, scale.requests - BIG_CONVERSATION):
        person = rng.choices(range(n_people), activity)[0]
        model = usual[person] if rng.random() < 0.85 else rng.choice([m for m, _ in MODEL_WEIGHTS])
        plans.append(Plan(size, _start(rng, now, size), person, model))
    return sorted(plans, key=lambda p: p.start)


def interleaved(gen: Traffic, plans: list[Plan], until: float) -> Iterator[RawRecord]:
    """The records of many sessions merged in arrival order, as the proxy would hand them over."""
    waiting = deque(sorted(plans, key=lambda p: p.start))
    active: list[tuple[float, int, RawRecord, Iterator[RawRecord]]] = []
    seq = 0
    while waiting or active:
        if waiting and (not active or waiting[0].start <= active[0][0]):
            it = Session(gen, waiting.popleft(), until).records()
            rec = next(it)
        else:
            _, _, out, it = heapq.heappop(active)
            yield out
            nxt = next(it, None)
            if nxt is None:
                continue
            rec = nxt
        seq += 1
        heapq.heappush(active, (rec.received_at, seq, rec, it))


def _seed_worker(
    k: int, url: str, plans: list[Plan], now: float, text: Text, shapes: Shapes, who: list[Identity],
    keys: dict[str, str], progress: Any,
) -> None:  # fmt: skip
    """A forked seeding process: generates its share of the sessions, prepares every record and
    writes them in batches through write_batch (stores bodies, links conversations)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the parent, which stops this process
    gc.freeze()  # the shared corpora and plans: no need to scan them at every collection
    rng = random.Random(SEED * 1000 + k)
    gen = Traffic(rng, text.with_rng(rng), shapes, who, keys)
    known = KnownHashes()
    batch = []
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET synchronous_commit = off")  # seeding only; the dashboard reads committed data
        for rec in interleaved(gen, plans, now):
            batch.append(prepare(rec))
            if len(batch) >= SEED_BATCH:
                write_retrying(conn, batch, known)
                progress[k] += len(batch)
                batch.clear()
        if batch:
            write_retrying(conn, batch, known)
            progress[k] += len(batch)


# --- the cache ------------------------------------------------------------------------------------


def cache_dir(scale: Scale) -> Path:
    h = hashlib.sha256(f"seed-{SEED_VERSION}-{SEED}".encode())
    for sql in sorted(MIGRATIONS.glob("*.sql")):
        h.update(sql.name.encode() + b"\0" + sql.read_bytes() + b"\0")
    return CACHE_ROOT / f"{scale.name}-v{SEED_VERSION}-{h.hexdigest()[:12]}"


def read_meta(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads((path / "meta.json").read_text())
    except (OSError, ValueError):
        return None


def stop_stale_server(pgdata: Path) -> None:
    """A postmaster left running in a cache directory (a killed earlier run): stop it before the
    directory is removed."""
    if (pgdata / "postmaster.pid").exists():
        with contextlib.suppress(Exception):
            start_server(pgdata).cleanup()


def remove_cache(path: Path) -> None:
    stop_stale_server(path / "pgdata")
    shutil.rmtree(path, ignore_errors=True)


def seed(scale: Scale, path: Path) -> tuple[Any, dict[str, Any]]:
    """A fresh cached database for ``scale`` at ``path``; returns the running server and the meta."""
    for old in CACHE_ROOT.glob(f"{scale.name}-*"):
        print(f"removing {old.relative_to(REPO)}", flush=True)
        remove_cache(old)
    path.mkdir(parents=True)
    t0 = time.monotonic()
    now = time.time()
    server = start_server(path / "pgdata")
    try:
        url = database_url(server.get_uri(), DB_NAME)
        with psycopg.connect(server.get_uri(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{DB_NAME}"')
        migrate(url)

        rng = random.Random(SEED)
        who = people(rng)
        store = AccessStore(LocalSecretStore(path / "secrets.json"))
        keys = {p.user: store.create_key(p.team, p.user, name="laptop")[1].id for p in who}
        for p in who[5::12]:  # a few people left or lost a laptop
            store.revoke_key(keys[p.user])
            keys[p.user] = store.create_key(p.team, p.user, name="new laptop")[1].id
        plans = plan_conversations(rng, scale, now, len(who))
        text = Text(random.Random(SEED))
        shapes = Shapes.build(text)
        print(
            f"seeding {scale.requests:,} requests in {scale.conversations:,} conversations with"
            f" {SEED_WORKERS} processes (synthetic text ready in {time.monotonic() - t0:.0f} s)",
            flush=True,
        )
        fill_s = run_seed_workers(url, plans, now, text, shapes, who, keys, scale.requests)
        v0 = time.monotonic()
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("VACUUM (ANALYZE)")
            conn.execute("CHECKPOINT")
        vacuum_s = time.monotonic() - v0
        meta = {
            "scale": scale.name,
            "seed_version": SEED_VERSION,
            "seeded_at": now,
            "seed_s": time.monotonic() - t0,
            "fill_s": fill_s,
            "vacuum_s": vacuum_s,
            "workers": SEED_WORKERS,
            "cpus": os.cpu_count(),
        }
    except BaseException:
        server.cleanup()
        raise
    (path / "meta.json").write_text(json.dumps(meta, indent=1))  # written last: marks the cache complete
    return server, meta


def run_seed_workers(
    url: str, plans: list[Plan], now: float, text: Text, shapes: Shapes, who: list[Identity],
    keys: dict[str, str], total: int,
) -> float:  # fmt: skip
    ctx = multiprocessing.get_context("fork")
    progress = ctx.Array("q", SEED_WORKERS, lock=False)
    procs = [
        ctx.Process(
            target=_seed_worker,
            args=(k, url, plans[k::SEED_WORKERS], now, text, shapes, who, keys, progress),
        )
        for k in range(SEED_WORKERS)
    ]
    t0 = time.monotonic()
    last = t0
    try:
        for p in procs:
            p.start()
        while any(p.is_alive() for p in procs):
            for p in procs:
                p.join(0.5)
            if any(p.exitcode not in (None, 0) for p in procs):
                raise RuntimeError("a seeding process failed (its traceback is above)")
            if time.monotonic() - t0 > WORKER_TIMEOUT_S:
                raise RuntimeError(f"seeding took more than {WORKER_TIMEOUT_S:.0f} s")
            if time.monotonic() - last >= 15:
                last = time.monotonic()
                done = sum(progress)
                rate = done / (last - t0)
                eta = (total - done) / rate if rate else math.nan
                print(f"  {done:,} / {total:,} requests, {rate:.0f}/s, about {eta:.0f} s left", flush=True)
        if any(p.exitcode != 0 for p in procs):
            raise RuntimeError("a seeding process failed (its traceback is above)")
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()  # only the processes started here, by handle
            p.join()
    return time.monotonic() - t0


def database_stats(conn: psycopg.Connection) -> dict[str, Any]:
    q = conn.execute
    counts = {t: q(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}
    sizes = q(
        "SELECT max(request_count), percentile_disc(0.5) WITHIN GROUP (ORDER BY request_count),"
        " count(*) FILTER (WHERE request_count = %s), count(*) FILTER (WHERE branch_count > 0),"
        " count(*) FILTER (WHERE subagent_count > 0), count(*) FILTER (WHERE compaction_count > 0),"
        " min(first_at), max(last_at) FROM conversations",
        (BIG_CONVERSATION,),
    ).fetchone()
    return {
        "counts": counts,
        "db_bytes": q("SELECT pg_database_size(current_database())").fetchone()[0],
        "unplaced": q("SELECT count(*) FROM requests WHERE conversation_id IS NULL").fetchone()[0],
        "links": dict(
            q("SELECT coalesce(link, '-'), count(*) FROM requests GROUP BY 1 ORDER BY 2 DESC").fetchall()
        ),
        "statuses": dict(q("SELECT status, count(*) FROM requests GROUP BY 1 ORDER BY 1").fetchall()),
        "models": dict(q("SELECT model, count(*) FROM requests GROUP BY 1 ORDER BY 2 DESC").fetchall()),
        "max_size": sizes[0],
        "median_size": sizes[1],
        "n_big": sizes[2],
        "with_branches": sizes[3],
        "with_subagents": sizes[4],
        "with_compactions": sizes[5],
        "span_days": (sizes[7] - sizes[6]).total_seconds() / 86400 if sizes[6] else 0.0,
        "accounts": q("SELECT count(DISTINCT account) FROM requests WHERE ratelimit IS NOT NULL").fetchone()[
            0
        ],
        "shared_buffers": q("SHOW shared_buffers").fetchone()[0],
    }


def seed_problems(stats: dict[str, Any], scale: Scale) -> list[str]:
    c = stats["counts"]
    checks = [
        (c["requests"] == scale.requests, f"{c['requests']:,} requests, expected {scale.requests:,}"),
        (c["conversations"] == scale.conversations,
         f"{c['conversations']:,} conversations, expected {scale.conversations:,}"),
        (stats["n_big"] == 1 and stats["max_size"] == BIG_CONVERSATION,
         f"{stats['n_big']} conversations of {BIG_CONVERSATION} requests, largest {stats['max_size']}"),
        (stats["unplaced"] == 0, f"{stats['unplaced']} requests in no conversation"),
    ]  # fmt: skip
    return [msg for ok, msg in checks if not ok]


# --- serving and measuring --------------------------------------------------------------------------


@dataclass
class Dashboard:
    child: Child
    port: int

    def stop(self) -> None:
        stop_group(self.child, 10)


def start_dashboard(url: str, key: str, data_dir: Path) -> Dashboard:
    port = free_port()
    env = {**os.environ, "DATABASE_URL": url, "NEXUS_DASHBOARD_KEY": key, "NEXUS_DATA_DIR": str(data_dir)}
    cmd = [
        sys.executable, "-m", "uvicorn", "--factory", "nexus_dashboard.app:create_from_env",
        "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning", "--no-access-log",
    ]  # fmt: skip
    dash = Dashboard(spawn("dashboard", cmd, data_dir / "dashboard.log", env), port)
    proc, log = dash.child.proc, dash.child.log
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the dashboard exited with {proc.returncode}:\n{log_tail(log, 40)}")
        with contextlib.suppress(OSError, http.client.HTTPException):
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            c.request("GET", "/health")
            if c.getresponse().status == 200:
                c.close()
                return dash
        time.sleep(0.2)
    dash.stop()
    raise RuntimeError(f"the dashboard did not answer /health within 60 s:\n{log_tail(log, 40)}")


class Client:
    """One keep-alive connection; a dropped connection is reopened once per request."""

    def __init__(self, port: int, headers: dict[str, str]) -> None:
        self.port, self.headers = port, headers
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)

    def get(self, path: str, accept: str = "*/*") -> tuple[int, bytes, float]:
        """(status, body, wall ms from sending the request to the last byte of the body)."""
        headers = {**self.headers, "Accept": accept}
        for attempt in range(2):
            try:
                t0 = time.perf_counter()
                self.conn.request("GET", path, headers=headers)
                resp = self.conn.getresponse()
                body = resp.read()
                return resp.status, body, (time.perf_counter() - t0) * 1000
            except (OSError, http.client.HTTPException):
                self.conn.close()
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
                if attempt:
                    raise
        raise AssertionError("unreachable")


def login_cookie(port: int, key: str) -> str | None:
    """A browser session cookie from POST /login, for pages that want one; None if there is none."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        c.request(
            "POST", "/login", urlencode({"key": key}), {"content-type": "application/x-www-form-urlencoded"}
        )
        resp = c.getresponse()
        resp.read()
        cookie = resp.getheader("set-cookie")
        return cookie.split(";", 1)[0] if cookie else None
    except (OSError, http.client.HTTPException):
        return None
    finally:
        c.close()


@dataclass
class Result:
    kind: str
    template: str
    path: str
    status: int | None = None
    times_ms: list[float] = dataclasses.field(default_factory=list)
    app_cpu_ms: list[float] = dataclasses.field(default_factory=list)
    pg_cpu_ms: list[float] = dataclasses.field(default_factory=list)
    size: int = 0
    note: str = ""

    @property
    def accept(self) -> str:
        return HTML_ACCEPT if self.kind == "page" else "*/*"

    @property
    def ok(self) -> bool:
        return self.status == 200 and not self.note

    def p(self, q: float) -> float:
        return pct(self.times_ms, q)


def pick_ids(conn: psycopg.Connection) -> dict[str, str]:
    q = conn.execute
    big = q("SELECT id::text FROM conversations ORDER BY request_count DESC, id LIMIT 1").fetchone()[0]
    median = q(
        "SELECT percentile_disc(0.5) WITHIN GROUP (ORDER BY request_count) FROM conversations"
    ).fetchone()[0]
    typical = q(
        "SELECT id::text FROM conversations WHERE request_count = %s"
        " ORDER BY subagent_count > 0 DESC, last_at DESC LIMIT 1",
        (median,),
    ).fetchone()[0]
    last = q(
        "SELECT id::text FROM requests WHERE conversation_id = %s ORDER BY received_at DESC, id DESC LIMIT 1",
        (big,),
    ).fetchone()[0]
    large = q(  # not {last} again, when the big conversation's last request is the largest
        "SELECT id::text FROM requests WHERE id <> %s ORDER BY body_size DESC, id LIMIT 1", (last,)
    ).fetchone()[0]
    team = q("SELECT team FROM conversations GROUP BY team ORDER BY count(*) DESC, team LIMIT 1").fetchone()
    ids = {"big": big, "typical": typical, "last": last, "large": large, "word": SEARCH_WORD, "team": team[0]}
    return {**ids, "rare": rare_word(conn, typical)}


def rare_word(conn: psycopg.Connection, conversation_id: str) -> str:
    """The word of ``conversation_id``'s text found in the fewest rows of conversation_text (the
    synthetic vocabulary's long tail: an identifier-like search). Lexemes that a search for them does
    not find again (stemming is not idempotent) are skipped."""
    words = [
        w
        for (w,) in conn.execute(
            "SELECT word FROM ts_stat(%s) WHERE length(word) >= 5 ORDER BY ndoc, word LIMIT 60",
            (f"SELECT tsv FROM conversation_text WHERE conversation_id = '{conversation_id}'",),
        )
    ]
    capped = (
        "SELECT count(*) FROM (SELECT 1 FROM conversation_text"
        " WHERE tsv @@ websearch_to_tsquery('english', %s) LIMIT 50) s"
    )
    hits = {w: conn.execute(capped, (w,)).fetchone()[0] for w in words}
    found = [w for w in words if hits[w]]
    return min(found, key=lambda w: (hits[w], w)) if found else SEARCH_WORD


def describe_ids(conn: psycopg.Connection, ids: dict[str, str]) -> list[str]:
    q = conn.execute
    conv = (
        "SELECT request_count, branch_count, subagent_count, compaction_count"
        " FROM conversations WHERE id = %s"
    )
    lines = []
    for name in ("big", "typical"):
        n, b, s, c = q(conv, (ids[name],)).fetchone()
        lines.append(
            f"  {{{name}}} = {ids[name]}  ({n} requests, {b} branches, {s} sub-agent runs, {c} compactions)"
        )
    for name in ("last", "large"):
        size, msgs = q("SELECT body_size, message_count FROM requests WHERE id = %s", (ids[name],)).fetchone()
        lines.append(f"  {{{name}}} = {ids[name]}  (body {size / 1024:,.0f} KiB, {msgs} messages)")
    for name in ("word", "rare"):
        hits = q(
            "SELECT count(DISTINCT conversation_id) FROM conversation_text"
            " WHERE tsv @@ websearch_to_tsquery('english', %s)",
            (ids[name],),
        ).fetchone()[0]
        lines.append(f"  {{{name}}} = {ids[name]}  (in {hits:,} conversations)")
    lines.append(f"  {{team}} = {ids['team']}")
    return lines


def gist(body: bytes) -> str:
    """The start of an error answer: its text when it is an HTML page (head, scripts and tags off)."""
    text = body[:20_000].decode("utf-8", "replace")
    if text.lstrip().startswith("<"):
        text = html.unescape(re.sub(r"(?is)<(head|script|style)\b.*?</\1>|<[^>]+>", " ", text))
    return " ".join(text.split())[:160]


class CpuProbe:
    """CPU time of the dashboard process (all threads: sync routes run in a thread pool) and of all
    Postgres processes, read around each request: whether a page's time goes to SQL or to Python."""

    def __init__(self, app_pid: int, postmaster: int) -> None:
        self.app_pid, self.postmaster = app_pid, postmaster
        self.refresh()

    def refresh(self) -> None:
        """The current Postgres processes (the dashboard's pool may open connections any time)."""
        self.pg = family(self.postmaster)

    def read(self) -> tuple[float, float]:
        return cpu_s(self.app_pid), sum(cpu_s(pid) for pid in self.pg)


def measure(client: Client, results: list[Result], n: int, warmup: int, cpu: CpuProbe) -> None:
    """Warm-ups per target, then ``n`` rounds over all targets that answered 200 (rotating the order
    each round, so slow drift of the machine hits every target alike)."""
    for r in results:
        for _ in range(warmup):
            try:
                r.status, body, _ = client.get(r.path, r.accept)
            except (OSError, http.client.HTTPException) as exc:
                r.note = f"{exc.__class__.__name__}: {exc}"
                break
            r.size = len(body)
            if r.status != 200:
                r.note = f"status {r.status}: {gist(body)!r}"
                break
    live = [r for r in results if r.ok]
    for i in range(n if live else 0):
        cpu.refresh()
        for r in live[i % len(live) :] + live[: i % len(live)]:
            if not r.ok:
                continue
            app0, pg0 = cpu.read()
            try:
                status, body, ms = client.get(r.path, r.accept)
            except (OSError, http.client.HTTPException) as exc:
                r.note = f"{exc.__class__.__name__}: {exc}"
                continue
            if status != 200:
                r.status = status
                r.note = f"status {status} after {len(r.times_ms)} good answers: {gist(body)!r}"
                continue
            app1, pg1 = cpu.read()
            r.times_ms.append(ms)
            r.app_cpu_ms.append((app1 - app0) * 1000)
            r.pg_cpu_ms.append(max(0.0, pg1 - pg0) * 1000)  # a backend that exited takes its time along
            r.size = len(body)


# --- report --------------------------------------------------------------------------------------------


def fmt_size(n: int) -> str:
    return f"{n} B" if n < 1024 else f"{n / 1024:,.1f} KiB" if n < 1024**2 else f"{n / 1024**2:,.1f} MiB"


def outcome(r: Result) -> str:
    if not r.ok or not r.times_ms:
        return "ERROR"
    return verdict(r.p(95) < TARGET_P95_MS)


def table(results: list[Result], base: Result) -> list[str]:
    width = max(len(f"{r.kind} {r.template}") for r in [base, *results]) + 2
    head = (
        f"  {'target':<{width}}{'status':>6}{'p50 ms':>9}{'p95 ms':>9}{'max ms':>9}{'size':>12}"
        f"{'p95/base':>10}{'app CPU':>9}{'pg CPU':>8}  verdict"
    )
    lines = [head, "  " + "-" * (len(head) - 2)]
    base_p95 = base.p(95)
    for r in [base, *results]:
        name = f"{r.kind} {r.template}"
        status = str(r.status) if r.status is not None else "-"
        if r.times_ms and r.ok:
            nums = f"{r.p(50):>9.1f}{r.p(95):>9.1f}{max(r.times_ms):>9.1f}{fmt_size(r.size):>12}"
            cpu = f"{pct(r.app_cpu_ms, 50):>9.1f}{pct(r.pg_cpu_ms, 50):>8.1f}"
            rel = f"{ratio(r.p(95), base_p95):>10.1f}{cpu}"
        else:
            nums = f"{'-':>9}{'-':>9}{'-':>9}{fmt_size(r.size) if r.size else '-':>12}"
            rel = f"{'-':>10}{'-':>9}{'-':>8}"
        mark = "baseline" if r is base else outcome(r)
        lines.append(f"  {name:<{width}}{status:>6}{nums}{rel}  {mark}")
    return lines


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def print_database(meta: dict[str, Any], stats: dict[str, Any], path: Path, reused: bool) -> None:
    c = stats["counts"]
    seeded = datetime.fromtimestamp(meta["seeded_at"], UTC).strftime("%Y-%m-%d %H:%M UTC")
    how = "reused" if reused else "seeded now"
    print(f"Database ({how}: {path.relative_to(REPO)}), seeded {seeded} in {meta['seed_s']:.0f} s"
          f" (fill {meta['fill_s']:.0f} s = {c['requests'] / max(meta['fill_s'], 1e-9):.0f} requests/s with"
          f" {meta['workers']} processes, VACUUM ANALYZE + CHECKPOINT {meta['vacuum_s']:.0f} s)")  # fmt: skip
    print("  rows: " + ", ".join(f"{t} {n:,}" for t, n in c.items()))
    print(f"  database size {stats['db_bytes'] / 1024**2:,.0f} MiB; shared_buffers {stats['shared_buffers']}")
    print(
        f"  conversations: largest {stats['max_size']} requests, median {stats['median_size']}; with"
        f" branches {stats['with_branches']:,}, with sub-agent runs {stats['with_subagents']:,}, with"
        f" compactions {stats['with_compactions']:,}; {stats['span_days']:.0f} days of traffic"
    )
    print("  links: " + ", ".join(f"{k} {v:,}" for k, v in stats["links"].items()))
    print("  statuses: " + ", ".join(f"{k} {v:,}" for k, v in stats["statuses"].items())
          + "; models: " + ", ".join(f"{k} {v:,}" for k, v in stats["models"].items())
          + f"; {stats['accounts']} accounts with rate-limit headers")  # fmt: skip


# --- main -----------------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="10k requests in 500 conversations (own cache)")
    p.add_argument("--reseed", action="store_true", help="rebuild the cached database first")
    p.add_argument("--n", type=int, default=40, help="measured requests per target (default %(default)s)")
    p.add_argument("--warmup", type=int, default=3, help="warm-up requests per target (default %(default)s)")
    p.add_argument("--only", default="", help="measure only targets whose path contains this text")
    return p.parse_args()


def open_database(scale: Scale, reseed: bool) -> tuple[Any, dict[str, Any], Path, bool]:
    """(server, meta, cache path, reused?): the cached database when it is complete and recent."""
    path = cache_dir(scale)
    meta = read_meta(path)
    if meta is not None and not reseed:
        age = time.time() - meta["seeded_at"]
        if age <= MAX_CACHE_AGE_S:
            return start_server(path / "pgdata"), meta, path, True
        print(
            f"the cached database is {age / 86400:.1f} days old (its 'last 7 days' would be thin): reseeding"
        )
    elif path.exists() and not reseed:
        print("the cached database is incomplete (an interrupted seeding): reseeding")
    server, meta = seed(scale, path)
    return server, meta, path, False


def run(args: argparse.Namespace) -> int:
    scale = QUICK if args.quick else FULL
    server, meta, path, reused = open_database(scale, args.reseed)
    tmp = Path(tempfile.mkdtemp(prefix="nexus-bench-dashboard-"))
    dash: Dashboard | None = None
    try:
        url = database_url(server.get_uri(), DB_NAME)
        with psycopg.connect(url, autocommit=True) as conn:
            stats = database_stats(conn)
            ids = pick_ids(conn)
            id_lines = describe_ids(conn, ids)
        problems = seed_problems(stats, scale)
        if (path / "secrets.json").exists():
            shutil.copy(path / "secrets.json", tmp / "secrets.json")
        key = secrets.token_urlsafe(24)
        dash = start_dashboard(url, key, tmp)
        headers = {"Authorization": f"Bearer {key}"}
        cookie = login_cookie(dash.port, key)
        if cookie:
            headers["Cookie"] = cookie  # pages may want a browser session rather than the Bearer key
        targets = [(k, t) for k, t in TARGETS if args.only in t]
        base = Result("baseline", BASELINE, BASELINE)
        results = [Result(k, t, t.format(**ids)) for k, t in targets]
        client = Client(dash.port, headers)
        postmaster = postmaster_pid(server.pgdata)
        load = OtherLoad(postmaster)  # and this process with the dashboard it started
        load_before = load_average()
        load.start()
        t0 = time.monotonic()
        cpu = CpuProbe(dash.child.proc.pid, postmaster)
        measure(client, [base, *results], args.n, args.warmup, cpu)
        measure_s = time.monotonic() - t0
        other, steal = load.pct()
    finally:
        if dash is not None:
            dash.stop()
        server.cleanup()
    if not base.ok:
        log = log_tail(tmp / "dashboard.log", 40)
        print(f"the baseline {BASELINE} failed ({base.status} {base.note}):\n{log}")
        return 1

    print()
    print_database(meta, stats, path, reused)
    print(f"Machine: {os.cpu_count()} CPUs (nproc {len(os.sched_getaffinity(0))}), load average"
          f" {load_before} before, {load_average()} after; during the {measure_s:.0f} s of measurement other"
          f" processes used {other:.0f}% of one CPU, steal {steal:.0f}%")  # fmt: skip
    auth = "Bearer key + session cookie" if cookie else "Bearer key"
    print(
        f"Client: {args.n} measured GETs per target after {args.warmup} warm-ups, one at a time on one"
        f" keep-alive connection, round-robin over the targets; {auth}"
    )
    print("Ids:")
    print("\n".join(id_lines))
    print()
    print(f"Dashboard server time (client wall time on loopback), target p95 < {TARGET_P95_MS:.0f} ms")
    print("\n".join(table(results, base)))
    print(
        "  (app CPU, pg CPU: p50 CPU ms per request of the dashboard process and of all Postgres processes)"
    )
    counts = {v: sum(outcome(r) == v for r in results) for v in ("PASS", "MISS", "ERROR")}
    print(
        f"\n{counts['PASS']} PASS, {counts['MISS']} MISS, {counts['ERROR']} ERROR of {len(results)} targets"
    )
    for r in results:
        if outcome(r) == "ERROR" and r.note:
            print(f"  {r.kind} {r.template}: {r.note}")
    if problems:
        print(
            "SEED CHECK FAILED: "
            + "; ".join(problems)
            + " (rerun with --reseed; if it persists, linking changed)"
        )
    shutil.rmtree(tmp, ignore_errors=True)
    return 0 if counts["PASS"] == len(results) and results and not problems else 1


def main() -> int:
    args = parse_args()
    try:
        return run(args)
    except KeyboardInterrupt:
        print("\ninterrupted; the dashboard and Postgres were stopped", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
