"""What conversation tracking costs at ingest as the database grows, and what a long session stores.

One run starts a temporary embedded Postgres (tests/support/pg.py), fills a migrated database with
synthetic but realistic Claude Code traffic in stages (bulk batches through the real ingest path:
``nexus.derive.prepare`` + ``nexus.db.records.write_batch``, which stores and links), and at each stage
times single-request ingests (one transaction each, like a quiet live system) of requests that continue
existing conversations. Then it EXPLAINs every statement linking ran (custom and generic plans), and
ingests one 200-turn session into a fresh database to measure storage. See bench/README.md.

    .venv/bin/python bench/tracking.py            # full run: stages of 10k, 50k, 100k, 200k requests
    .venv/bin/python bench/tracking.py --quick    # smoke run: 2k, 10k, 20k
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import math
import multiprocessing
import os
import random
import re
import sys
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

import orjson
import psycopg
from nexus.db.migrate import migrate
from nexus.db.records import KnownHashes, write_batch
from nexus.derive import prepare
from nexus.record import RawRecord
from psycopg import pq
from psycopg.adapt import PyFormat, Transformer

from bench.lib.procs import OtherLoad, cpu_s, postmaster_pid
from bench.lib.report import checks_table, print_sections, ratio
from bench.lib.stats import mean, pct
from bench.lib.traffic import PARKED_SESSIONS, Convo, Generator, Shapes, Text, Workload, write_retrying
from tests.support.pg import create_database, temporary_server

FULL_STAGES = (10_000, 50_000, 100_000, 200_000)
QUICK_STAGES = (2_000, 10_000, 20_000)
FILL_BATCH = 200
SAMPLES = 300  # timed turns of existing conversations per stage (half resumed, half next turn)
SUBAGENT_SAMPLES = 30
COMPACTION_SAMPLES = 20
FLOOR_SAMPLES = 100
CALIBRATION_RUNS = 20  # before the samples; then 2 after every job
LONG_MESSAGES = 300  # the long conversation reaches this many messages by the last stage
LATE_MESSAGES = 250  # its turns from here on are the "late" ones
STORAGE_TURNS = 200
DEFAULT_FILL_BUDGET_S = 480.0
FILL_WORKER_TIMEOUT_S = 900.0
FILL_PROCESSES = max(1, min(4, os.cpu_count() or 1))

TARGET_P50_MS = 5.0
TARGET_FLAT_RATIO = 1.5
TARGET_STORAGE_RATIO = 3.0

KINDS = ("resumed", "next turn", "sub-agent start", "post-compaction start", "long")


# --- statements


class TimingCursor(psycopg.Cursor):
    """Records every statement (SQL, parameters, seconds) while ``journal`` is set: what write_batch and
    linking run, for the per-statement breakdown and for EXPLAIN. ``executemany`` (the inserts) is
    recorded with parameters None."""

    journal: ClassVar[list[tuple[str, Any, float]] | None] = None

    def execute(self, query: Any, params: Any = None, **kwargs: Any) -> Any:
        if TimingCursor.journal is None or not isinstance(query, str):
            return super().execute(query, params, **kwargs)
        t0 = time.perf_counter()
        try:
            return super().execute(query, params, **kwargs)
        finally:
            TimingCursor.journal.append((query, params, time.perf_counter() - t0))

    def executemany(self, query: Any, params_seq: Any, **kwargs: Any) -> None:
        if TimingCursor.journal is None or not isinstance(query, str):
            return super().executemany(query, params_seq, **kwargs)
        t0 = time.perf_counter()
        try:
            return super().executemany(query, params_seq, **kwargs)
        finally:
            TimingCursor.journal.append((query, None, time.perf_counter() - t0))


STATEMENT_LABELS: tuple[tuple[str, str], ...] = (
    (r"WHERE tail_key = ", "parent by tail_key"),
    (r"WHERE summary_key = ", "parent by summary_key"),
    (r"WHERE i\.start_key = ", "invocation by start_key"),
    (r"WHERE parent_request_id = %s", "siblings by parent_request_id"),
    (r"FROM branches WHERE conversation_id", "branch counters"),
    (r"FROM requests WHERE id = %s", "invoking request by id"),
    (r"count\(\*\) FROM subtask_invocations", "invocation number"),
    (r"^UPDATE requests SET conversation_id", "update request links"),
    (r"^UPDATE conversations SET request_count", "conversation summary"),
    (r"^INSERT INTO conversation_text", "search text row"),
    (r"^INSERT INTO branches", "branch summary upsert"),
    (r"^INSERT INTO conversations", "new conversation"),
    (r"^INSERT INTO subtask_invocations", "record invocation"),
    (r"WHERE (\w+) = %s AND parent_request_id IS NULL", "orphans by {0}"),
    (r"SELECT hash FROM blobs", "blobs already stored (ANY)"),
    (r"^INSERT INTO blobs", "insert new blobs"),
    (r"^INSERT INTO message_chains", "insert new chain nodes"),
    (r"^INSERT INTO requests", "insert the request row"),
    (r"SELECT id FROM message_chains", "chain nodes already stored (ANY)"),
)


def statement_label(sql: str) -> str:
    s = " ".join(sql.split())
    for pattern, label in STATEMENT_LABELS:
        m = re.search(pattern, s)
        if m:
            return label.format(*m.groups())
    table = re.search(r"\b(?:FROM|UPDATE|INTO)\s+(\w+)", s)
    return f"{s.split(' ', 1)[0]} {table.group(1) if table else '?'}"


# --- the fill -----------------------------------------------------------------------------------


def fill(conn: psycopg.Connection, workload: Workload, n: int, known: KnownHashes) -> None:
    batch = []
    for rec in workload.records(n):
        batch.append(prepare(rec))
        if len(batch) >= FILL_BATCH:
            write_retrying(conn, batch, known)
            batch.clear()
    if batch:
        write_retrying(conn, batch, known)


def _fill_worker(pipe: Any, url: str, seed: int, text: Text, shapes: Shapes) -> None:
    """A forked fill process: its own sessions, connection and ingest caches. Commands on ``pipe``:
    a number of requests to fill (answers with the sessions parked meanwhile and its finished count),
    or None to stop."""
    rng = random.Random(seed)
    gen = Generator(rng, text.with_rng(rng), shapes)
    workload = Workload(gen, rng)
    known = KnownHashes()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET synchronous_commit = off")  # the fill only; the timed samples commit durably
        while (n := pipe.recv()) is not None:
            fill(conn, workload, n, known)
            pipe.send((workload.take_parked(), workload.finished, gen.clock.t))


class FillWorkers:
    """One forked process per CPU, each filling its share of every stage through write_batch."""

    def __init__(self, url: str, seed: int, text: Text, shapes: Shapes, n: int) -> None:
        ctx = multiprocessing.get_context("fork")
        self.pipes, self.procs = [], []
        for k in range(n):
            mine, theirs = ctx.Pipe()
            proc = ctx.Process(target=_fill_worker, args=(theirs, url, seed * 1000 + k, text, shapes))
            proc.start()
            self.pipes.append(mine)
            self.procs.append(proc)
        self.finished = [0] * n
        self.clock = 0.0  # the latest virtual arrival time of any worker

    def fill(self, n: int) -> list[Convo]:
        shares = [n // len(self.pipes) + (k < n % len(self.pipes)) for k in range(len(self.pipes))]
        for pipe, share in zip(self.pipes, shares, strict=True):
            pipe.send(share)
        parked = []
        for k, pipe in enumerate(self.pipes):
            if not pipe.poll(FILL_WORKER_TIMEOUT_S):
                raise RuntimeError(f"fill worker {k} did not answer within {FILL_WORKER_TIMEOUT_S:.0f} s")
            convos, self.finished[k], clock = pipe.recv()
            self.clock = max(self.clock, clock)
            parked += convos
        return parked

    def close(self) -> None:
        for pipe, proc in zip(self.pipes, self.procs, strict=True):
            if proc.is_alive():
                with contextlib.suppress(OSError):
                    pipe.send(None)
            proc.join(10)
            if proc.is_alive():
                proc.kill()  # only processes this benchmark started, by handle
                proc.join()


class ParkedPool:
    """The finished sessions the samples continue: a bounded, random mix of those parked so far."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.convos: list[Convo] = []

    def add(self, convos: list[Convo]) -> None:
        self.convos += convos
        self.rng.shuffle(self.convos)
        del self.convos[PARKED_SESSIONS:]


def after_fill(conn: psycopg.Connection) -> None:
    """The state of a database that grew over weeks with autovacuum: dead row versions (linking updates
    every request row once) vacuumed, statistics current, no checkpoint backlog from the bulk fill;
    so that autovacuum does not wake up in the middle of the timed samples."""
    conn.execute("VACUUM (ANALYZE)")
    conn.execute("CHECKPOINT")


# --- timed samples ------------------------------------------------------------------------------


@dataclass
class Sample:
    category: str  # "untimed" for the steps a job needs but does not measure
    messages: int
    total_ms: float
    prepare_ms: float
    db_ms: float
    py_cpu_ms: float
    py_write_cpu_ms: float  # the part of py_cpu_ms spent in write_batch (psycopg, linking logic)
    pg_cpu_ms: float
    journal: list[tuple[str, Any, float]]  # (SQL, parameters, seconds) of the executes in write_batch

    @property
    def statements(self) -> list[tuple[str, float]]:
        return [(statement_label(q), s * 1000) for q, _, s in self.journal]


# A job: consecutive requests of one conversation, produced lazily (each needs the state the previous
# one left): (record, category or None = untimed, the link it must get).
Job = Iterator[tuple[RawRecord, str | None, str]]


class Sampler:
    """Ingests one record per transaction (prepare + write_batch), timing it, and checks its link."""

    def __init__(self, conn: psycopg.Connection, known: KnownHashes) -> None:
        self.conn, self.known = conn, known
        self.backend = conn.info.backend_pid
        self.mislinked: list[tuple[str, str, str | None]] = []

    def run(self, job: Job) -> list[Sample]:
        out = []
        for rec, category, expected in job:
            out.append(self.ingest_one(rec, category or "untimed"))
            link = self.conn.execute("SELECT link FROM requests WHERE id = %s", (rec.id,)).fetchone()
            if link is None or link[0] != expected:
                self.mislinked.append((category or "untimed", expected, link[0] if link else None))
        return out

    def ingest_one(self, rec: RawRecord, category: str) -> Sample:
        journal: list[tuple[str, Any, float]] = []
        c0, b0 = time.thread_time(), cpu_s(self.backend)
        t0 = time.perf_counter()
        p = prepare(rec)
        t1, c_mid = time.perf_counter(), time.thread_time()
        TimingCursor.journal = journal
        try:
            write_batch(self.conn, [p], self.known)
        finally:
            TimingCursor.journal = None
        t2 = time.perf_counter()
        c1, b1 = time.thread_time(), cpu_s(self.backend)
        return Sample(
            category, p.row["message_count"], (t2 - t0) * 1000, (t1 - t0) * 1000, (t2 - t1) * 1000,
            (c1 - c0) * 1000, (c1 - c_mid) * 1000, (b1 - b0) * 1000, journal,
        )  # fmt: skip

    @staticmethod
    def calibrate(rec: RawRecord, n: int) -> list[float]:
        """Machine speed: ``prepare`` of one fixed record with its caches off (pure Python, no
        database), ms per run. Taken between the samples, so a stage that ran while the machine was
        slower shows it."""
        times = []
        for _ in range(n):
            t0 = time.perf_counter()
            prepare(rec, pieces=None)
            times.append((time.perf_counter() - t0) * 1000)
        return times

    def floor(self, n: int) -> tuple[float, float]:
        """Baselines: a SELECT 1 round trip, and the smallest durable write (one-row INSERT + COMMIT)."""
        rt, commit = [], []
        for _ in range(n):
            t0 = time.perf_counter()
            self.conn.execute("SELECT 1")
            t1 = time.perf_counter()
            with self.conn.transaction():
                self.conn.execute("INSERT INTO bench_floor DEFAULT VALUES")
            rt.append((t1 - t0) * 1000)
            commit.append((time.perf_counter() - t1) * 1000)
        return pct(rt, 50), pct(commit, 50)


def continue_job(gen: Generator, convo: Convo) -> Job:
    """A conversation resumed after a pause (caches cold), then its next turn (caches warm)."""
    yield gen.step(convo, agent=False), "resumed", "continue"
    yield gen.step(convo, agent=False), "next turn", "continue"


def long_job(gen: Generator, convo: Convo) -> Job:
    if convo.next_message_count <= LONG_MESSAGES:
        expected = "root" if convo.turns == 0 else "continue"
        yield gen.step(convo, agent=False), "long", expected


def subagent_job(gen: Generator, convo: Convo) -> Job:
    """A turn calling the Agent tool (untimed), the sub-agent's first request (timed: its parent is found
    through subtask_invocations.start_key), the rest of the sub-agent's turns and the tool result."""
    yield gen.step(convo, agent=True), None, "continue"
    yield gen.step(convo), "sub-agent start", "subtask"
    while convo.sub is not None:
        yield gen.step(convo), None, "continue"


def compaction_job(gen: Generator, parked: list[Convo], index: int) -> Job:
    """The compaction request (untimed) and the first request after it (timed: found by summary_key)."""
    rec, cont = gen.compact(parked[index])
    parked[index] = cont
    yield rec, None, "continue"
    yield gen.step(cont, agent=False), "post-compaction start", "compact"


def stage_jobs(
    gen: Generator, parked: list[Convo], long_convo: Convo, long_turns: int, rng: random.Random
) -> list[Job]:
    """Continue, sub-agent and compaction jobs on distinct parked sessions (reused when there are too
    few), shuffled, with the long conversation's turns spread evenly through them."""
    picks = rng.sample(range(len(parked)), len(parked))
    n_cont = SAMPLES // 2
    jobs: list[Job] = [continue_job(gen, parked[picks[k % len(picks)]]) for k in range(n_cont)]
    jobs += [subagent_job(gen, parked[picks[(n_cont + k) % len(picks)]]) for k in range(SUBAGENT_SAMPLES)]
    rest = picks[(n_cont + SUBAGENT_SAMPLES) % len(picks) :] + picks
    compact_idx = [i for i in rest if parked[i].turns >= 4][:COMPACTION_SAMPLES]
    jobs += [compaction_job(gen, parked, i) for i in compact_idx]
    rng.shuffle(jobs)
    every = max(1, len(jobs) // max(1, long_turns))
    merged: list[Job] = []
    for i, job in enumerate(jobs):
        merged.append(job)
        if i % every == every - 1 and long_turns > 0:
            merged.append(long_job(gen, long_convo))
            long_turns -= 1
    merged += [long_job(gen, long_convo) for _ in range(long_turns)]
    return merged


@dataclass
class Stage:
    target: int
    rows: int
    samples: list[Sample]
    rtt_ms: float
    commit_ms: float
    table_mb: float
    other_cpu_pct: float
    steal_pct: float
    calib_ms: float

    def of(self, *categories: str) -> list[Sample]:
        return [s for s in self.samples if s.category in categories]


# --- EXPLAIN -----------------------------------------------------------------------------------


@dataclass
class PlanCheck:
    label: str
    custom: list[str]
    generic: list[str]
    seq_scan_on_requests: bool
    other_seq_scans: list[str]


def _scan_nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _scan_nodes(child)


def _describe(plan: dict[str, Any]) -> list[str]:
    out = []
    for node in _scan_nodes(plan):
        if node["Node Type"] == "Bitmap Index Scan":
            out.append(f"Bitmap Index Scan on {node['Index Name']}")
            continue
        if "Scan" in node["Node Type"] or node["Node Type"].startswith(("ModifyTable", "Update", "Insert")):
            if "Relation Name" not in node:
                continue
            index = f" using {node['Index Name']}" if node.get("Index Name") else ""
            sub = " (subplan)" if node.get("Parent Relationship") == "SubPlan" else ""
            out.append(f"{node['Node Type']}{index} on {node['Relation Name']}{sub}")
    return out


def _explain_json(conn: psycopg.Connection, sql: str, params: Any) -> dict[str, Any]:
    return conn.execute(f"EXPLAIN (FORMAT JSON) {sql}", params).fetchone()[0][0]["Plan"]


_SEQ_ON_REQUESTS = re.compile(r"Seq Scan on requests( |$)")
_PLACEHOLDER = re.compile(r"%\((\w+)\)s|%s|%%")


def _as_prepared(sql: str, params: Any) -> tuple[str, list[Any]]:
    """psycopg placeholders to $n, with the values in order (for PREPARE ... / EXECUTE)."""
    values: list[Any] = []
    names: dict[str, int] = {}
    positional = iter(params if isinstance(params, list | tuple) else ())

    def repl(m: re.Match[str]) -> str:
        if m.group(0) == "%%":
            return "%"
        if m.group(1):
            if m.group(1) not in names:
                values.append(params[m.group(1)])
                names[m.group(1)] = len(values)
            return f"${names[m.group(1)]}"
        values.append(next(positional))
        return f"${len(values)}"

    return _PLACEHOLDER.sub(repl, sql), values


def _explain_generic(conn: psycopg.Connection, sql: str, params: Any) -> dict[str, Any]:
    """The plan a prepared statement gets once Postgres switches to a generic plan (psycopg prepares a
    statement after 5 executions; the server may then keep one plan for all parameter values).
    Prepared at protocol level with the parameter types psycopg sends, then EXPLAIN EXECUTE with the
    values inlined (EXPLAIN passes no bind parameters on to EXECUTE)."""
    text, values = _as_prepared(sql, params)
    tx = Transformer(conn)
    tx.dump_sequence(values, [PyFormat.AUTO] * len(values))
    result = conn.pgconn.prepare(b"bench_probe", text.encode(), tx.types)
    if result.status != pq.ExecStatus.COMMAND_OK:
        raise psycopg.DataError(result.error_message.decode(errors="replace"))
    try:
        conn.execute("SET plan_cache_mode = force_generic_plan")
        args = psycopg.ClientCursor(conn).mogrify(", ".join(["%s"] * len(values)), values)
        plan = conn.execute(f"EXPLAIN (FORMAT JSON) EXECUTE bench_probe({args})").fetchone()[0]
        return plan[0]["Plan"]
    finally:
        conn.execute("RESET plan_cache_mode")
        conn.execute("DEALLOCATE bench_probe")


def check_plans(conn: psycopg.Connection, journal: list[tuple[str, Any, float]]) -> list[PlanCheck]:
    seen: dict[str, PlanCheck] = {}
    for sql, params, _ in journal:
        label = statement_label(sql)
        if label in seen or params is None or sql.lstrip().upper().startswith("INSERT"):
            continue
        custom_plan = _explain_json(conn, sql, params)
        try:
            generic_plan: dict[str, Any] | None = _explain_generic(conn, sql, params)
        except psycopg.Error as exc:
            generic_plan = None
            generic = [f"n/a ({exc.__class__.__name__})"]
        else:
            generic = _describe(generic_plan)
        custom = _describe(custom_plan)
        scans = custom + (_describe(generic_plan) if generic_plan else [])
        seen[label] = PlanCheck(
            label,
            custom,
            generic,
            any(_SEQ_ON_REQUESTS.match(s) for s in scans),
            sorted({s for s in scans if s.startswith("Seq Scan") and not _SEQ_ON_REQUESTS.match(s)}),
        )
    return list(seen.values())


def capture_linking(sampler: Sampler, gen: Generator, parked: list[Convo]) -> list[tuple[str, Any, float]]:
    """Every statement write_batch + link_request ran for a representative continue, sub-agent start,
    compaction and post-compaction request, with their real parameters."""
    a, b, c = [i for i, convo in enumerate(parked) if convo.turns >= 4][:3]
    samples = []
    for job in (continue_job(gen, parked[a]), subagent_job(gen, parked[b]), compaction_job(gen, parked, c)):
        samples += sampler.run(job)
    return [entry for s in samples for entry in s.journal]


# --- storage ---------------------------------------------------------------------------------------


@dataclass
class Storage:
    turns: int
    messages: int
    final_body: int
    naive: int
    rows: dict[str, int]  # table -> sum of pg_column_size of its rows
    db_delta: int
    db_delta_vacuumed: int
    zlib_final: int
    requests_columns: dict[str, int]
    relations: dict[
        str, tuple[int, int, int, int]
    ]  # table -> (heap+TOAST, indexes) before, after VACUUM FULL
    blobs: tuple[int, int, int, int, int]  # count, raw bytes, stored bytes, cache_control copies, their bytes


def db_size(conn: psycopg.Connection) -> int:
    return conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]


def row_bytes(conn: psycopg.Connection) -> dict[str, int]:
    """Sum of pg_column_size(row) for every table of the schema (whatever the migrations created),
    values as stored: compressed, TOASTed values counted at their stored size."""
    tables = [
        t
        for (t,) in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
            " AND table_type = 'BASE TABLE' AND table_name <> 'schema_migrations' ORDER BY 1"
        )
    ]
    out = {}
    for t in tables:
        n = conn.execute(f'SELECT coalesce(sum(pg_column_size(t.*)), 0) FROM "{t}" t').fetchone()[0]
        if n:
            out[t] = int(n)
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def relation_sizes(conn: psycopg.Connection) -> dict[str, tuple[int, int]]:
    """Per table: pg_table_size (heap, TOAST, free space and visibility maps) and pg_indexes_size."""
    rows = conn.execute(
        "SELECT c.relname, pg_table_size(c.oid), pg_indexes_size(c.oid) FROM pg_class c"
        " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' AND c.relkind = 'r'"
        " AND c.relname <> 'schema_migrations'"
    ).fetchall()
    return {name: (int(t), int(i)) for name, t, i in rows}


def blob_stats(conn: psycopg.Connection) -> tuple[int, int, int, int, int]:
    """Blobs: count, raw bytes, stored bytes, and the user messages stored a second time because they
    were sent last once, with the moving cache_control marker (count, stored bytes)."""
    marked = (
        'substring(data from 1 for 15) = \'{"role":"user",\'::bytea'
        " AND position('\"cache_control\"'::bytea in data) > 0"
    )
    row = conn.execute(
        "SELECT count(*), sum(octet_length(data)), sum(pg_column_size(data)),"
        f" count(*) FILTER (WHERE {marked}), coalesce(sum(pg_column_size(data)) FILTER (WHERE {marked}), 0)"
        " FROM blobs"
    ).fetchone()
    return tuple(int(v) for v in row)  # type: ignore[return-value]


def storage_run(server_uri: str, gen: Generator) -> Storage:
    """One session ingested turn by turn (one transaction each) into a fresh database: everything in
    it belongs to that session."""
    url = create_database(server_uri)
    migrate(url)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CHECKPOINT")
        empty = db_size(conn)
        convo = gen.new_main(gen.rng.choice(gen.identities), STORAGE_TURNS)
        known = KnownHashes()  # this database has none of the main run's pieces
        naive, last = 0, b""
        for _ in range(STORAGE_TURNS):
            rec = gen.step(convo, agent=False)
            naive += len(rec.request_body)
            last = rec.request_body
            write_batch(conn, [prepare(rec)], known)
        cols = ("response_raw", "response", "body_layout", "response_headers", "ratelimit")
        per_col = conn.execute(
            "SELECT " + ", ".join(f"coalesce(sum(pg_column_size({c})), 0)" for c in cols) + " FROM requests"
        ).fetchone()
        rows = row_bytes(conn)
        blobs = blob_stats(conn)
        before, delta = relation_sizes(conn), db_size(conn) - empty
        conn.execute("VACUUM FULL")
        after, vacuumed = relation_sizes(conn), db_size(conn) - empty
        relations = {t: (*before[t], *after.get(t, (0, 0))) for t in before}
        return Storage(
            STORAGE_TURNS, len(orjson.loads(last)["messages"]), len(last), naive, rows, delta, vacuumed,
            len(zlib.compress(last, 6)), dict(zip(cols, (int(v) for v in per_col), strict=True)),
            dict(sorted(relations.items(), key=lambda kv: -sum(kv[1][:2]))), blobs,
        )  # fmt: skip


# --- report --------------------------------------------------------------------------------------


def fmt_rows(n: int) -> str:
    return f"{n / 1000:.0f}k" if n >= 1000 else str(n)


def report_stages(stages: list[Stage]) -> list[str]:
    lines = [
        "Ingest + link of one request per transaction, continuing existing conversations"
        " (resumed turn + next turn; total = prepare + write_batch)",
        f"  {'stage':<7}{'rows':>9}{'table MB':>9}{'n':>5}{'p50':>7}{'p95':>7}{'max':>7}"
        f"{'prep p50':>9}{'db p50':>7}{'py CPU':>13}{'pg CPU':>8}{'msgs':>6}{'commit':>8}{'RTT':>7}"
        f"{'calib':>7}{'other':>7}{'steal':>7}",
    ]
    for st in stages:
        s = st.of("resumed", "next turn")
        tot = [x.total_ms for x in s]
        py_prep = mean([x.py_cpu_ms - x.py_write_cpu_ms for x in s])
        py_write = mean([x.py_write_cpu_ms for x in s])
        lines.append(
            f"  {fmt_rows(st.target):<7}{st.rows:>9,}{st.table_mb:>9.0f}{len(s):>5}{pct(tot, 50):>7.2f}"
            f"{pct(tot, 95):>7.2f}{max(tot, default=math.nan):>7.2f}"
            f"{_p50(s, 'prepare_ms'):>9.2f}{_p50(s, 'db_ms'):>7.2f}{f'{py_prep:.2f}+{py_write:.2f}':>13}"
            f"{mean([x.pg_cpu_ms for x in s]):>8.2f}{_p50(s, 'messages'):>6.0f}{st.commit_ms:>8.2f}"
            f"{st.rtt_ms:>7.3f}{st.calib_ms:>7.2f}{st.other_cpu_pct:>6.0f}%{st.steal_pct:>6.0f}%"
        )
    lines += [
        "  (ms. table MB: requests with TOAST and indexes. py CPU: mean CPU of this process per request,"
        " prepare + write_batch;",
        "   pg CPU: of its Postgres backend. msgs: p50 messages per sampled request. commit: p50 of a one-row"
        " INSERT + COMMIT,",
        "   the cheapest durable write; RTT: SELECT 1. calib: p50 of prepare() of one fixed 32-message"
        " record, caches off,",
        "   between the samples: the machine's speed meanwhile. other / steal: % of one CPU used by other"
        " processes / stolen",
        "   by the hypervisor while sampling: near 0 on a quiet machine, else rerun)",
        "",
    ]
    lines.append("  by kind of request: total ms p50 / p95 / max (db p50) per stage")
    lines.append(f"  {'kind (n per stage)':<28}" + "".join(f"{fmt_rows(st.target):>24}" for st in stages))
    for kind in KINDS:
        row = f"  {f'{kind} ({len(stages[-1].of(kind))})':<28}"
        for st in stages:
            tot = [x.total_ms for x in st.of(kind)]
            cell = (
                f"{pct(tot, 50):.1f}/{pct(tot, 95):.1f}/{max(tot, default=math.nan):.1f}"
                f" ({_p50(st.of(kind), 'db_ms'):.1f})"
            )
            row += f"{cell:>24}"
        lines.append(row)
    return lines


def report_slowest(stages: list[Stage]) -> list[str]:
    lines = ["Slowest timed request per stage, and its slowest statements (ms)"]
    for st in stages:
        timed = [x for x in st.samples if x.category != "untimed"]
        worst = max(timed, key=lambda x: x.total_ms)
        top = sorted(worst.statements, key=lambda kv: -kv[1])[:3]
        lines.append(
            f"  {fmt_rows(st.target):<6}{worst.category:<22}{worst.total_ms:>8.1f}"
            f" (prepare {worst.prepare_ms:.1f}, db {worst.db_ms:.1f}): "
            + ", ".join(f"{label} {ms:.1f}" for label, ms in top)
        )
    return lines


def report_stalls(stages: list[Stage], over_ms: float = 10.0) -> list[str]:
    lines = [
        f"Statements that took over {over_ms:.0f} ms, per stage: count (max ms), over all ingested samples"
    ]
    for st in stages:
        slow: dict[str, list[float]] = {}
        for x in st.samples:
            for label, ms in x.statements:
                if ms > over_ms:
                    slow.setdefault(label, []).append(ms)
        found = ", ".join(
            f"{k} {len(v)} ({max(v):.0f})" for k, v in sorted(slow.items(), key=lambda kv: -len(kv[1]))
        )
        lines.append(f"  {fmt_rows(st.target):<6}{len(st.samples):>5} requests: {found or 'none'}")
    return lines


def report_length(stages: list[Stage]) -> list[str]:
    longs = [s for st in stages for s in st.of("long")]
    lines = ["Time vs conversation length (the long conversation, one turn at a time, caches warm)"]
    lines.append(f"  {'messages':<12}{'n':>4}{'total p50':>11}{'prep p50':>10}{'db p50':>8}{'pg CPU':>8}")
    for lo in range(0, LONG_MESSAGES, 50):
        s = [x for x in longs if lo < x.messages <= lo + 50]
        if not s:
            continue
        lines.append(
            f"  {f'{lo + 1}-{lo + 50}':<12}{len(s):>4}{pct([x.total_ms for x in s], 50):>11.2f}"
            f"{pct([x.prepare_ms for x in s], 50):>10.2f}{pct([x.db_ms for x in s], 50):>8.2f}"
            f"{mean([x.pg_cpu_ms for x in s]):>8.2f}"
        )
    return lines


def statement_breakdown(samples: list[Sample]) -> dict[str, float]:
    """Mean ms per request of each statement label (0 when a request did not run it)."""
    totals: dict[str, float] = {}
    for s in samples:
        for label, ms in s.statements:
            totals[label] = totals.get(label, 0.0) + ms
    n = max(1, len(samples))
    return {k: v / n for k, v in totals.items()}


def report_breakdown(stage: Stage) -> list[str]:
    short = stage.of("next turn")
    late = [s for s in stage.of("long") if s.messages >= LATE_MESSAGES]
    groups = {"resumed": stage.of("resumed"), "next turn": short, f"long >= {LATE_MESSAGES} msgs": late}
    parts = {k: statement_breakdown(v) for k, v in groups.items()}
    labels = sorted(
        {lab for p in parts.values() for lab in p},
        key=lambda lab: -max(p.get(lab, 0) for p in parts.values()),
    )
    lines = [f"Where write_batch spends its time at {fmt_rows(stage.target)} rows (mean ms per request)"]
    lines.append(f"  {'statement':<36}" + "".join(f"{k:>20}" for k in groups))
    for lab in labels:
        lines.append(f"  {lab:<36}" + "".join(f"{parts[k].get(lab, 0.0):>20.3f}" for k in groups))
    resid = {
        k: mean([s.db_ms for s in v]) - sum(parts[k].values()) if v else math.nan for k, v in groups.items()
    }
    lines.append(f"  {'BEGIN/COMMIT, savepoint, Python':<36}" + "".join(f"{resid[k]:>20.3f}" for k in groups))
    lines.append(
        f"  {'db total':<36}" + "".join(f"{mean([s.db_ms for s in v]):>20.3f}" for v in groups.values())
    )
    return lines


def report_plans(checks: list[PlanCheck]) -> list[str]:
    lines = ["Plans of every statement linking ran at the largest stage (custom plan | generic plan)"]
    for c in checks:
        flag = "  !!! SEQ SCAN ON requests" if c.seq_scan_on_requests else ""
        lines.append(f"  {c.label}{flag}")
        lines.append(f"      custom:  {'; '.join(c.custom) or '(no scan)'}")
        if c.generic != c.custom:
            lines.append(f"      generic: {'; '.join(c.generic) or '(no scan)'}")
        for s in c.other_seq_scans:
            lines.append(f"      note: {s}")
    return lines


def report_storage(st: Storage) -> list[str]:
    stored = sum(st.rows.values())
    kib = 1024

    def r(v: int) -> str:
        return f"{v / kib:>9,.0f} KiB = {v / st.final_body:6.2f}x the final body"

    rows = ", ".join(f"{k} {v / kib:,.0f}" for k, v in st.rows.items())
    n_blobs, raw, stored_b, marked, marked_b = st.blobs
    cols = ", ".join(f"{k} {v / kib:,.0f}" for k, v in st.requests_columns.items())
    return [
        f"Storage: one {st.turns}-turn session, {st.messages} messages in its final request, fresh database",
        f"  final request body              {st.final_body / kib:>9,.0f} KiB"
        f" (zlib -6: {st.zlib_final / kib:,.0f} KiB; stored pieces are TOAST/pglz-compressed)",
        f"  naive: every body whole         {r(st.naive)}",
        f"  stored rows (pg_column_size)    {r(stored)}",
        f"      KiB by table: {rows}",
        f"      KiB of requests columns: {cols}",
        f"      blobs: {n_blobs:,} rows, {raw / kib:,.0f} KiB raw, {stored_b / kib:,.0f} KiB stored;"
        f" {marked:,} of them ({marked_b / kib:,.0f} KiB) are user messages stored twice: once as sent last,"
        " with the moving cache_control marker, once as resent without it",
        f"  database size delta             {r(st.db_delta)}  (tables, TOAST, indexes, dead row versions)",
        f"  delta after VACUUM FULL         {r(st.db_delta_vacuumed)}",
        "      KiB per table, table (heap+TOAST+maps) / indexes, after ingest -> after VACUUM FULL:",
    ] + [
        f"        {name:<22}{t0 / kib:>7,.0f} / {i0 / kib:>5,.0f}  ->  {t1 / kib:>7,.0f} / {i1 / kib:>5,.0f}"
        for name, (t0, i0, t1, i1) in st.relations.items()
        if t0 + i0 > 64 * kib
    ]


def _p50(samples: list[Sample], attr: str = "total_ms") -> float:
    return pct([getattr(x, attr) for x in samples], 50)


def growth_by_kind(stages: list[Stage]) -> dict[str, float]:
    """p50 at the largest stage / p50 at the smallest, per kind of request."""
    kinds = ("resumed", "next turn", "sub-agent start", "post-compaction start")
    return {k: ratio(_p50(stages[-1].of(k)), _p50(stages[0].of(k))) for k in kinds}


def report_summary(
    stages: list[Stage], checks: list[PlanCheck], storage: Storage, mislinked: int
) -> list[str]:
    p50s = [_p50(st.of("resumed", "next turn")) for st in stages]
    flat = ratio(p50s[-1], p50s[0])
    speed = ratio(stages[-1].calib_ms, stages[0].calib_ms)  # > 1: the machine was slower at the last stage
    worst_kind, worst = max(growth_by_kind(stages).items(), key=lambda kv: kv[1])
    late = [x for x in stages[-1].of("long") if x.messages >= LATE_MESSAGES]
    short = stages[-1].of("resumed", "next turn")
    length_total = ratio(_p50(late), _p50(short))
    length_db = ratio(_p50(late, "db_ms"), _p50(short, "db_ms"))
    store = sum(storage.rows.values()) / storage.final_body
    seq = [c.label for c in checks if c.seq_scan_on_requests]
    big, small = fmt_rows(stages[-1].target), fmt_rows(stages[0].target)
    return checks_table([
        ("p50 at every stage", " / ".join(f"{v:.2f}" for v in p50s) + " ms", f"< {TARGET_P50_MS} ms",
         all(v < TARGET_P50_MS for v in p50s)),
        (f"p50 {big} / {small} rows", f"{flat:.2f} (calib ratio {speed:.2f})", f"< {TARGET_FLAT_RATIO}",
         flat < TARGET_FLAT_RATIO),
        (f"worst kind {big} / {small}", f"{worst_kind} {worst:.2f}", f"< {TARGET_FLAT_RATIO}",
         worst < TARGET_FLAT_RATIO),
        (f">= {LATE_MESSAGES} msgs / short, total", f"{length_total:.2f}", f"< {TARGET_FLAT_RATIO} (info)",
         length_total < TARGET_FLAT_RATIO),
        (f">= {LATE_MESSAGES} msgs / short, db", f"{length_db:.2f}", f"< {TARGET_FLAT_RATIO} (info)",
         length_db < TARGET_FLAT_RATIO),
        ("storage / final body", f"{store:.2f}x", f"<= {TARGET_STORAGE_RATIO:.0f}x",
         store <= TARGET_STORAGE_RATIO),
        ("seq scans on requests", ", ".join(seq) or "none", "none", not seq),
        ("samples linked as expected", f"{mislinked} wrong", "0 wrong", mislinked == 0),
    ])  # fmt: skip


# --- main ----------------------------------------------------------------------------------------


def table_mb(conn: psycopg.Connection) -> float:
    return conn.execute("SELECT pg_total_relation_size('requests') / 1048576.0").fetchone()[0]


def count_rows(conn: psycopg.Connection) -> int:
    return conn.execute("SELECT count(*) FROM requests").fetchone()[0]


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="stages of 2k, 10k, 20k requests")
    p.add_argument("--stages", type=str, default="", help="comma-separated stage sizes (overrides --quick)")
    p.add_argument("--fill-budget", type=float, default=DEFAULT_FILL_BUDGET_S,
                   help="seconds of bulk fill at most; later stages are skipped when the rate says they"
                        " would not fit (default %(default)s)")  # fmt: skip
    p.add_argument("--seed", type=int, default=7)
    return p.parse_args()


@dataclass
class Results:
    stages: list[Stage] = field(default_factory=list)
    fill_s: float = 0.0
    fill_rows: int = 0
    sessions: int = 0
    skipped: str = ""
    links: list[tuple[str, int]] = field(default_factory=list)
    checks: list[PlanCheck] = field(default_factory=list)
    mislinked: list[tuple[str, str, str | None]] = field(default_factory=list)
    storage: Storage | None = None


def stage_sizes(args: argparse.Namespace) -> tuple[int, ...]:
    if args.stages:
        return tuple(int(x) for x in args.stages.split(","))
    return QUICK_STAGES if args.quick else FULL_STAGES


def over_budget(res: Results, need: int, budget_s: float, target: int) -> bool:
    if not res.fill_s or not need:
        return False
    rate = res.fill_rows / res.fill_s
    if res.fill_s + need / rate <= budget_s:
        return False
    res.skipped = (
        f"stage {fmt_rows(target)} and later skipped: {need:,} more requests at {rate:.0f}/s would take"
        f" the fill past its budget of {budget_s:.0f} s (--fill-budget)"
    )
    print(res.skipped, flush=True)
    return True


def grow_and_measure(
    url: str, postmaster: int, args: argparse.Namespace, text: Text, shapes: Shapes, res: Results
) -> None:
    """Fill stage by stage (forked workers), time samples at each stage, then EXPLAIN linking."""
    rng = random.Random(args.seed + 1)
    gen = Generator(rng, text.with_rng(rng), shapes)
    sizes = stage_sizes(args)
    long_convo = gen.new_main(gen.identities[0], turns=10**6)
    calibration_convo = gen.new_main(gen.identities[1], turns=10**6)
    calibration_record = [gen.step(calibration_convo, agent=False) for _ in range(16)][-1]  # 32 messages
    long_turns = math.ceil((LONG_MESSAGES // 2) / len(sizes))
    pool = ParkedPool(rng)
    workers = FillWorkers(url, args.seed, text, shapes, FILL_PROCESSES)  # before any connection: fork
    try:
        with psycopg.connect(url, autocommit=True, cursor_factory=TimingCursor) as conn:
            conn.execute("CREATE TABLE bench_floor (id bigserial PRIMARY KEY, at timestamptz DEFAULT now())")
            sampler = Sampler(conn, KnownHashes())
            load = OtherLoad(postmaster)  # and this process with its fill workers
            for target in sizes:
                need = max(0, target - count_rows(conn))
                if over_budget(res, need, args.fill_budget, target):
                    break
                f0 = time.monotonic()
                pool.add(workers.fill(need))
                gen.clock.t = max(gen.clock.t, workers.clock)  # samples arrive after what they continue
                after_fill(conn)
                fill_s = time.monotonic() - f0
                res.fill_s, res.fill_rows = res.fill_s + fill_s, res.fill_rows + need
                print(f"stage {fmt_rows(target)}: filled {need:,} requests in {fill_s:.0f} s"
                      f" ({need / max(fill_s, 1e-9):.0f}/s with VACUUM ANALYZE, CHECKPOINT); timing samples",
                      flush=True)  # fmt: skip
                rows = count_rows(conn)
                gc.collect()
                gc.freeze()  # this benchmark's own objects (sessions, samples) out of the GC's way
                load.start()
                rtt, commit = sampler.floor(FLOOR_SAMPLES)
                calib = sampler.calibrate(calibration_record, CALIBRATION_RUNS)
                samples = []
                for job in stage_jobs(gen, pool.convos, long_convo, long_turns, rng):
                    samples += sampler.run(job)
                    calib += sampler.calibrate(calibration_record, 2)
                other, steal = load.pct()
                res.stages.append(
                    Stage(target, rows, samples, rtt, commit, table_mb(conn), other, steal, pct(calib, 50))
                )
            print("EXPLAIN of every statement linking runs", flush=True)
            res.checks = check_plans(conn, capture_linking(sampler, gen, pool.convos))
            res.links = conn.execute(
                "SELECT coalesce(link, '(unlinked)'), count(*) FROM requests GROUP BY 1 ORDER BY 2 DESC"
            ).fetchall()
            res.mislinked = sampler.mislinked
            res.sessions = sum(workers.finished)
    finally:
        workers.close()


def run(args: argparse.Namespace) -> int:
    t0 = time.monotonic()
    text = Text(random.Random(args.seed))
    shapes = Shapes.build(text)
    print(f"synthetic text ready in {time.monotonic() - t0:.1f} s; stages {stage_sizes(args)}", flush=True)
    res = Results()
    with temporary_server(prefix="nexus-bench-pg-") as server:
        url = create_database(server.get_uri())
        migrate(url)
        grow_and_measure(url, postmaster_pid(server.pgdata), args, text, shapes, res)
        print("storage: one long session into a fresh database", flush=True)
        rng = random.Random(args.seed + 2)
        res.storage = storage_run(server.get_uri(), Generator(rng, text.with_rng(rng), shapes))
    print_sections(report(res))
    print(f"\n(run took {time.monotonic() - t0:.0f} s)")
    if any(c.seq_scan_on_requests for c in res.checks):
        print("\nFAIL: a statement linking runs reads the whole requests table (Seq Scan, see Plans above)",
              file=sys.stderr)  # fmt: skip
        return 1
    return 0


def report(res: Results) -> list[list[str]]:
    assert res.storage is not None
    head = [
        f"{os.cpu_count()} CPUs; Postgres embedded (tests/support/pg.py), default settings. Fill:"
        f" {res.fill_rows:,} requests in {res.fill_s:.0f} s ({res.fill_rows / max(res.fill_s, 1e-9):.0f}/s,"
        f" {FILL_PROCESSES} processes, batches of {FILL_BATCH}); {res.sessions:,} finished sessions;"
        " links: " + ", ".join(f"{k} {v:,}" for k, v in res.links)
    ]
    if res.skipped:
        head.append(res.skipped)
    sections = [
        head,
        report_stages(res.stages),
        report_slowest(res.stages),
        report_stalls(res.stages),
        report_length(res.stages),
        report_breakdown(res.stages[-1]),
        report_plans(res.checks),
        report_storage(res.storage),
    ]
    if res.mislinked:
        sections.append(["Mislinked samples (category, expected, got): " + str(res.mislinked[:10])])
    sections.append(report_summary(res.stages, res.checks, res.storage, len(res.mislinked)))
    return sections


def main() -> int:
    args = parse_args()
    try:
        return run(args)
    except KeyboardInterrupt:
        print("\ninterrupted; the temporary Postgres was stopped and removed", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
