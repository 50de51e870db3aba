"""Linking at ingest: each new request finds its parent by index probes, takes its place in a
conversation, and updates the conversation and branch summaries incrementally. Records may arrive
late or out of order: a request whose parent is not there yet starts as its own conversation and is
adopted (its conversation merged, names recomputed) when the parent arrives.

Every lookup is an index probe (tail_key, summary_key, start_key, parent_request_id), so the cost
does not grow with the size of the table.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import psycopg
from psycopg.rows import dict_row

from nexus.tracking import placement as place
from nexus.tracking.keys import TrackingKeys
from nexus.tracking.linkable import LINKED_KINDS, LinkInput

# A cursor that returns rows as dicts (dict_row): what every linking step reads with.
Rows = psycopg.Cursor[dict[str, Any]]

# A first-turn request without an agent-id header is taken for a sub-agent (older CLIs: Task tool)
# only when an invocation with the same prompt happened this recently in the same session.
UNTAGGED_SUBTASK_WINDOW = timedelta(minutes=10)


_NODE_COLS = (
    "id::text, session_id, messages_key, branch, is_subtask, parent_task_request_id::text, "
    "conversation_id, kind"
)


def _node(row: dict[str, Any]) -> place.Node:
    return place.Node(
        row["id"],
        row["session_id"],
        _b(row["messages_key"]),
        row["branch"],
        row["is_subtask"],
        row["parent_task_request_id"],
        row["kind"],
    )


def _b(v: Any) -> bytes | None:
    return bytes(v) if v is not None else None


def _counters(conn: psycopg.Connection, conversation_id: Any) -> place.Counters:
    rows = conn.execute(
        "SELECT name, kind FROM branches WHERE conversation_id = %s", (conversation_id,)
    ).fetchall()
    c = place.Counters()
    for name, kind in rows:
        if kind == "branch":
            c.branch = max(c.branch, int(name.rsplit("_", 1)[1]))
        elif kind == "compact":
            c.compact = max(c.compact, int(name.rsplit("_", 1)[1]))
        elif kind == "subtask":
            c.subtasks.add(name)
    return c


def _find_parent(cur: Rows, r: LinkInput) -> tuple[str, dict[str, Any] | None, dict[str, Any] | None]:
    """(how, parent row, invocation row)."""
    k = r.keys
    if k.prefix_key is not None:
        row = cur.execute(
            f"SELECT {_NODE_COLS} FROM requests WHERE tail_key = %s AND id <> %s"
            " ORDER BY (session_id IS NOT DISTINCT FROM %s) DESC, received_at DESC LIMIT 1",
            (k.prefix_key, r.id, r.session_id),
        ).fetchone()
        if row:
            return "continue", row, None
    if k.continuation_key is not None:
        row = cur.execute(
            f"SELECT {_NODE_COLS} FROM requests WHERE summary_key = %s AND id <> %s"
            " ORDER BY received_at DESC LIMIT 1",
            (k.continuation_key, r.id),
        ).fetchone()
        if row:
            return "compact", row, None
    if k.start_key is not None:
        inv = cur.execute(
            "SELECT i.request_id::text AS request_id, i.tool_use_id, i.position, i.received_at, p.session_id,"
            " EXISTS (SELECT 1 FROM requests c WHERE c.parent_task_request_id = i.request_id"
            "         AND c.task_tool_use_id = i.tool_use_id AND c.link = 'subtask' AND c.id <> %s) AS used"
            " FROM subtask_invocations i JOIN requests p ON p.id = i.request_id"
            " WHERE i.start_key = %s"
            " ORDER BY used, abs(extract(epoch FROM i.received_at - %s)), i.position, i.tool_use_id LIMIT 1",
            (r.id, k.start_key, r.received_at),
        ).fetchone()
        if inv and (
            r.agent_id
            or (
                inv["session_id"] == r.session_id
                and abs(inv["received_at"] - r.received_at) <= UNTAGGED_SUBTASK_WINDOW
            )
        ):
            row = cur.execute(
                f"SELECT {_NODE_COLS} FROM requests WHERE id = %s", (inv["request_id"],)
            ).fetchone()
            return "subtask", row, inv
    return "root", None, None


def _invocation_number(cur: Rows, conversation_id: Any, inv: dict[str, Any]) -> int:
    row = cur.execute(
        "SELECT count(*) FROM subtask_invocations WHERE conversation_id = %s"
        " AND (received_at, position) <= (%s, %s)",
        (conversation_id, inv["received_at"], inv["position"]),
    ).fetchone()
    return int(row["count"]) if row else 0


_TURN_KINDS = tuple(sorted(LINKED_KINDS))


def _side_anchor(cur: Rows, session_id: str, received_at: Any, request_id: str) -> dict[str, Any] | None:
    """Where a side request belongs: the latest turn of its session sent before it, or, for one sent
    before the session's first turn (a start-up probe), the session's earliest turn. A function of
    the stored turns alone, so any arrival order ends with the same anchor."""
    before = cur.execute(
        f"SELECT {_NODE_COLS} FROM requests WHERE session_id = %s AND kind = ANY(%s)"
        " AND conversation_id IS NOT NULL AND (received_at, id) <= (%s, %s::uuid)"
        " ORDER BY received_at DESC, id DESC LIMIT 1",
        (session_id, list(_TURN_KINDS), received_at, request_id),
    ).fetchone()
    if before is not None:
        return before
    return cur.execute(
        f"SELECT {_NODE_COLS} FROM requests WHERE session_id = %s AND kind = ANY(%s)"
        " AND conversation_id IS NOT NULL ORDER BY received_at, id LIMIT 1",
        (session_id, list(_TURN_KINDS)),
    ).fetchone()


def _attach_side_request(cur: Rows, r: LinkInput) -> None:
    """A request that is not a turn (a side call, count_tokens, a quota probe) joins the conversation
    of its session's turn (``_side_anchor``), on that turn's branch; it opens nothing."""
    if r.session_id is None:
        return
    parent = _side_anchor(cur, r.session_id, r.received_at, r.id)
    if parent is None:
        return  # no turn of its session yet: the first one to arrive takes it (_reanchor_side_requests)
    p = place.side(_node(parent))
    cur.execute(
        "UPDATE requests SET conversation_id = %s, parent_request_id = %s, link = %s, branch = %s,"
        " is_subtask = %s, parent_task_request_id = %s WHERE id = %s",
        (
            parent["conversation_id"],
            parent["id"],
            p.link,
            p.branch,
            p.is_subtask,
            p.parent_task_request_id,
            r.id,
        ),
    )
    _add_to_summaries(cur, parent["conversation_id"], r, p, None)


def link_request(conn: psycopg.Connection, r: LinkInput) -> None:
    if r.kind not in LINKED_KINDS:
        with conn.cursor(row_factory=dict_row) as cur:
            _attach_side_request(cur, r)
        return
    with conn.cursor(row_factory=dict_row) as cur:
        how, parent, inv = _find_parent(cur, r)
        me = place.Node(r.id, r.session_id, r.keys.messages_key, kind=r.kind)
        if parent is None:
            conversation_id: Any = r.id
            p = place.root()
            _new_conversation(cur, r)
        else:
            conversation_id = parent["conversation_id"]
            counters = _counters(conn, conversation_id)
            if how == "continue":
                siblings = [
                    _node(s)
                    for s in cur.execute(
                        f"SELECT {_NODE_COLS} FROM requests WHERE parent_request_id = %s"
                        " AND link IN ('continue', 'retry')"
                        " AND id <> %s ORDER BY received_at, id",
                        (parent["id"], r.id),
                    ).fetchall()
                ]
                p = place.continuation(me, _node(parent), siblings, counters)
            elif how == "compact":
                p = place.compaction(counters)
            else:
                assert inv is not None
                p = place.subtask(parent["id"], _invocation_number(cur, conversation_id, inv), counters)
        cur.execute(
            "UPDATE requests SET conversation_id = %s, parent_request_id = %s, link = %s, branch = %s,"
            " is_subtask = %s, parent_task_request_id = %s, task_tool_use_id = %s WHERE id = %s",
            (
                conversation_id,
                parent["id"] if parent else None,
                p.link,
                p.branch,
                p.is_subtask,
                p.parent_task_request_id,
                inv["tool_use_id"] if inv else None,
                r.id,
            ),
        )
        for tool_use_id, position, start_key in r.keys.invocations:
            cur.execute(
                "INSERT INTO subtask_invocations (request_id, conversation_id, tool_use_id, position,"
                " start_key, received_at) VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                (r.id, conversation_id, tool_use_id, position, start_key, r.received_at),
            )
        _add_to_summaries(cur, conversation_id, r, p, parent["id"] if parent else None)
        _adopt_waiting_children(conn, cur, r, conversation_id)
        if how == "subtask" and parent is not None and r.keys.start_key is not None:
            _pair_identical_subtasks(conn, cur, parent["id"], r.keys.start_key)
        if r.session_id is not None:
            _reanchor_side_requests(cur, r)


def _reanchor_side_requests(cur: Rows, r: LinkInput) -> None:
    """Side requests of ``r``'s session whose anchor (``_side_anchor``) is now ``r``: sent after it
    with an older (or no) anchor, or sent before the session's first turn with a later one. Only
    those sent between the turns on either side of ``r`` can be: the scan is that stretch of the
    session (an index range), not the whole session, so a long session costs no more per turn."""
    args = {"s": r.session_id, "turns": list(_TURN_KINDS), "id": r.id, "at": r.received_at}
    bounds = cur.execute(
        "SELECT (SELECT received_at FROM requests WHERE session_id = %(s)s AND kind = ANY(%(turns)s)"
        "        AND (received_at, id) < (%(at)s, %(id)s::uuid) ORDER BY received_at DESC, id DESC LIMIT 1)"
        "  AS since,"
        " (SELECT received_at FROM requests WHERE session_id = %(s)s AND kind = ANY(%(turns)s)"
        "        AND (received_at, id) > (%(at)s, %(id)s::uuid) ORDER BY received_at, id LIMIT 1) AS until",
        args,
    ).fetchone()
    rows = cur.execute(
        "SELECT s.id::text, s.received_at, s.conversation_id FROM requests s"
        " LEFT JOIN requests p ON p.id = s.parent_request_id"
        " WHERE s.session_id = %(s)s AND NOT (s.kind = ANY(%(turns)s)) AND s.id <> %(id)s"
        " AND s.received_at >= coalesce(%(since)s, '-infinity'::timestamptz)"
        " AND s.received_at <= coalesce(%(until)s, 'infinity'::timestamptz) AND ("
        "   ((s.received_at, s.id) >= (%(at)s, %(id)s::uuid)"
        "     AND (p.id IS NULL OR (p.received_at, p.id) < (%(at)s, %(id)s::uuid)"
        "          OR (p.received_at, p.id) > (s.received_at, s.id)))"
        "   OR ((s.received_at, s.id) < (%(at)s, %(id)s::uuid)"
        "     AND (p.id IS NULL OR (p.received_at, p.id) > (%(at)s, %(id)s::uuid))))",
        {**args, "since": bounds["since"] if bounds else None, "until": bounds["until"] if bounds else None},
    ).fetchall()
    touched: set[Any] = set()
    for row in rows:
        anchor = _side_anchor(cur, r.session_id or "", row["received_at"], row["id"])
        if anchor is None:
            continue
        p = place.side(_node(anchor))
        cur.execute(
            "UPDATE requests SET conversation_id = %s, parent_request_id = %s, link = %s, branch = %s,"
            " is_subtask = %s, parent_task_request_id = %s WHERE id = %s",
            (
                anchor["conversation_id"],
                anchor["id"],
                p.link,
                p.branch,
                p.is_subtask,
                p.parent_task_request_id,
                row["id"],
            ),
        )
        touched |= {anchor["conversation_id"], row["conversation_id"]} - {None}
    for conversation_id in touched:  # rare (once per session start at most): counts from the rows
        _rebuild_summaries(cur, conversation_id)


def _pair_identical_subtasks(conn: psycopg.Connection, cur: Rows, parent_id: str, start_key: bytes) -> None:
    """Sub-agents started in one turn with the same prompt cannot be told apart by their prompt: the
    first sent takes the first call, the second the second, whatever order they arrive in. When a
    late arrival breaks that order, the pairs are redone and the conversation replaced."""
    calls = [
        row["tool_use_id"]
        for row in cur.execute(
            "SELECT tool_use_id FROM subtask_invocations WHERE request_id = %s AND start_key = %s"
            " ORDER BY position, tool_use_id",
            (parent_id, start_key),
        ).fetchall()
    ]
    if len(calls) < 2:
        return
    agents = cur.execute(
        "SELECT id::text, task_tool_use_id, conversation_id FROM requests WHERE parent_task_request_id = %s"
        " AND link = 'subtask' AND start_key = %s ORDER BY received_at, id",
        (parent_id, start_key),
    ).fetchall()
    wanted = list(zip((a["id"] for a in agents), calls, strict=False))
    if all(a["task_tool_use_id"] == call for a, (_, call) in zip(agents, wanted, strict=False)):
        return
    for agent_id, call in wanted:
        cur.execute("UPDATE requests SET task_tool_use_id = %s WHERE id = %s", (call, agent_id))
    recompute(conn, agents[0]["conversation_id"])


def _new_conversation(cur: Rows, r: LinkInput) -> None:
    cur.execute(
        "INSERT INTO conversations (id, scope_key, team, user_id, title, first_at, last_at)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (id) DO NOTHING",
        (r.id, r.keys.scope, r.team, r.user_id, r.keys.title, r.received_at, r.received_at),
    )


def _add_to_summaries(
    cur: Rows, conversation_id: Any, r: LinkInput, p: place.Placement, fork: str | None
) -> None:
    cost = r.cost_usd or Decimal(0)
    kind = p.new_branch_kind
    cur.execute(
        "UPDATE conversations SET request_count = request_count + 1,"
        " input_tokens = input_tokens + %(i)s, output_tokens = output_tokens + %(o)s,"
        " cache_creation_input_tokens = cache_creation_input_tokens + %(cw)s,"
        " cache_read_input_tokens = cache_read_input_tokens + %(cr)s, cost_usd = cost_usd + %(cost)s,"
        " first_at = least(first_at, %(at)s), last_at = greatest(last_at, %(at)s),"
        " models = CASE WHEN %(model)s::text IS NULL OR %(model)s = ANY(models) THEN models"
        "               ELSE models || %(model)s::text END,"
        " session_ids = CASE WHEN %(session)s::text IS NULL OR %(session)s = ANY(session_ids)"
        "               THEN session_ids"
        "               ELSE session_ids || %(session)s::text END,"
        " latest_context_tokens = CASE WHEN %(at)s >= last_at AND %(ctx)s::int IS NOT NULL AND NOT %(sub)s"
        "               THEN %(ctx)s ELSE latest_context_tokens END,"
        " latest_model = CASE WHEN %(at)s >= last_at AND %(model)s::text IS NOT NULL AND NOT %(sub)s"
        "               THEN %(model)s ELSE latest_model END,"
        " branch_count = branch_count + %(nb)s, subagent_count = subagent_count + %(ns)s,"
        " compaction_count = compaction_count + %(nc)s"
        " WHERE id = %(conv)s",
        {
            "i": r.input_tokens,
            "o": r.output_tokens,
            "cw": r.cache_creation_input_tokens,
            "cr": r.cache_read_input_tokens,
            "cost": cost,
            "at": r.received_at,
            "model": r.model,
            "session": r.session_id,
            "ctx": r.context_tokens,
            "sub": p.is_subtask,
            "nb": int(kind == "branch"),
            "ns": int(kind == "subtask"),
            "nc": int(kind == "compact"),
            "conv": conversation_id,
        },
    )
    text = f"{r.keys.prompt_text}\n{r.keys.answer_text}"[:100_000]
    if text.strip():
        cur.execute(
            "INSERT INTO conversation_text (request_id, conversation_id, tsv)"
            " VALUES (%s, %s, to_tsvector('english', %s)) ON CONFLICT (request_id) DO NOTHING",
            (r.id, conversation_id, text),
        )
    cur.execute(
        "INSERT INTO branches AS b (conversation_id, name, kind, fork_request_id, request_count,"
        " input_tokens,"
        " output_tokens, cost_usd, first_at, last_at) VALUES (%s, %s, %s, %s, 1, %s, %s, %s, %s, %s)"
        " ON CONFLICT (conversation_id, name) DO UPDATE SET request_count = b.request_count + 1,"
        " input_tokens = b.input_tokens + EXCLUDED.input_tokens,"
        " output_tokens = b.output_tokens + EXCLUDED.output_tokens,"
        " cost_usd = b.cost_usd + EXCLUDED.cost_usd,"
        " first_at = least(b.first_at, EXCLUDED.first_at), last_at = greatest(b.last_at, EXCLUDED.last_at)",
        (
            conversation_id,
            p.branch,
            _branch_kind(p.branch),
            fork if kind not in (None, "main") else None,
            r.input_tokens,
            r.output_tokens,
            cost,
            r.received_at,
            r.received_at,
        ),
    )


def _branch_kind(name: str) -> str:
    return name.split("_", 1)[0] if name != place.MAIN else "main"


def _adopt_waiting_children(conn: psycopg.Connection, cur: Rows, r: LinkInput, conversation_id: Any) -> None:
    """Requests that arrived before this one and were waiting for it as their parent."""
    k = r.keys
    probes = []
    if k.tail_key is not None:
        probes.append(("prefix_key", k.tail_key))
    if k.summary_key is not None:
        probes.append(("continuation_key", k.summary_key))
    for _, _, start_key in k.invocations:
        probes.append(("start_key", start_key))
    orphans: list[Any] = []
    for column, key in probes:
        orphans += [
            row["conversation_id"]
            for row in cur.execute(
                f"SELECT conversation_id FROM requests WHERE {column} = %s AND parent_request_id IS NULL"
                " AND id <> %s AND conversation_id <> %s",
                (key, r.id, conversation_id),
            ).fetchall()
        ]
    if orphans:
        for orphan in dict.fromkeys(orphans):
            merge(conn, into=conversation_id, source=orphan)
        recompute(conn, conversation_id)


def merge(conn: psycopg.Connection, into: Any, source: Any) -> None:
    """Fold conversation ``source`` (a subtree that arrived before its parent) into ``into``."""
    for table in ("requests", "conversation_text", "subtask_invocations"):
        conn.execute(f"UPDATE {table} SET conversation_id = %s WHERE conversation_id = %s", (into, source))
    conn.execute("DELETE FROM conversations WHERE id = %s", (source,))
    conn.execute("DELETE FROM branches WHERE conversation_id = %s", (source,))


def recompute(conn: psycopg.Connection, conversation_id: Any) -> None:
    """Replay the placement of every request of a conversation in time order (after a merge), then
    rebuild its branch and conversation summaries from the requests."""
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            "SELECT id::text, received_at, session_id, agent_id, kind, messages_key, prefix_key,"
            " continuation_key, start_key FROM requests WHERE conversation_id = %s ORDER BY received_at, id",
            (conversation_id,),
        ).fetchall()
        placed: dict[str, place.Node] = {}
        children: dict[str, list[place.Node]] = {}
        counters = place.Counters()
        invocation_order = _invocation_order(cur, conversation_id)
        for i, row in enumerate(rows):
            if row["kind"] not in LINKED_KINDS:
                continue  # side requests keep their place; their branch follows below
            keys = TrackingKeys(
                b"",
                prefix_key=_b(row["prefix_key"]),
                messages_key=_b(row["messages_key"]),
                continuation_key=_b(row["continuation_key"]),
                start_key=_b(row["start_key"]),
            )
            probe = LinkInput(
                row["id"],
                row["received_at"],
                None,
                None,
                row["session_id"],
                row["agent_id"],
                None,
                0,
                0,
                0,
                0,
                None,
                None,
                keys,
            )
            how, parent, inv = _find_parent(cur, probe) if i else ("root", None, None)
            me = place.Node(row["id"], row["session_id"], keys.messages_key, kind=row["kind"])
            parent_node = placed.get(parent["id"]) if parent else None
            if parent_node is None:
                p, parent_id = place.root(), None
            else:
                parent_id = parent_node.id
                if how == "continue":
                    p = place.continuation(me, parent_node, children.get(parent_id, []), counters)
                elif how == "compact":
                    p = place.compaction(counters)
                else:
                    assert inv is not None  # a sub-task's parent comes with its invocation
                    p = place.subtask(
                        parent_id, invocation_order.get((parent_id, inv["tool_use_id"]), 1), counters
                    )
            me.branch, me.is_subtask, me.parent_task_request_id = (
                p.branch,
                p.is_subtask,
                p.parent_task_request_id,
            )
            placed[me.id] = me
            if p.link in ("continue", "retry") and parent_id:
                children.setdefault(parent_id, []).append(me)
            cur.execute(
                "UPDATE requests SET parent_request_id = %s, link = %s, branch = %s, is_subtask = %s,"
                " parent_task_request_id = %s, task_tool_use_id = %s WHERE id = %s",
                (
                    parent_id,
                    p.link,
                    p.branch,
                    p.is_subtask,
                    p.parent_task_request_id,
                    inv["tool_use_id"] if inv and p.link == "subtask" else None,
                    row["id"],
                ),
            )
        cur.execute(
            "UPDATE requests s SET branch = p.branch, is_subtask = p.is_subtask,"
            " parent_task_request_id = p.parent_task_request_id FROM requests p"
            " WHERE s.conversation_id = %s AND s.link = 'side' AND p.id = s.parent_request_id",
            (conversation_id,),
        )
        _rebuild_summaries(cur, conversation_id)


def _invocation_order(cur: Rows, conversation_id: Any) -> dict[tuple[str, str], int]:
    rows = cur.execute(
        "SELECT request_id::text AS request_id, tool_use_id FROM subtask_invocations"
        " WHERE conversation_id = %s ORDER BY received_at, position",
        (conversation_id,),
    ).fetchall()
    return {(r["request_id"], r["tool_use_id"]): n for n, r in enumerate(rows, 1)}


def _rebuild_summaries(cur: Rows, conversation_id: Any) -> None:
    cur.execute("DELETE FROM branches WHERE conversation_id = %s", (conversation_id,))
    cur.execute(
        "INSERT INTO branches (conversation_id, name, kind, fork_request_id, request_count, input_tokens,"
        " output_tokens, cost_usd, first_at, last_at)"
        " SELECT %(c)s, branch, CASE WHEN branch = 'main' THEN 'main' ELSE split_part(branch, '_', 1) END,"
        "  (array_agg(parent_request_id ORDER BY received_at))[1], count(*), coalesce(sum(input_tokens), 0),"
        "  coalesce(sum(output_tokens), 0), coalesce(sum(cost_usd), 0), min(received_at), max(received_at)"
        " FROM requests WHERE conversation_id = %(c)s GROUP BY branch",
        {"c": conversation_id},
    )
    cur.execute(
        "UPDATE conversations c SET request_count = a.n, input_tokens = a.i, output_tokens = a.o,"
        " cache_creation_input_tokens = a.cw, cache_read_input_tokens = a.cr, cost_usd = a.cost,"
        " first_at = a.first_at, last_at = a.last_at, models = a.models, session_ids = a.sessions,"
        " branch_count = a.nb, subagent_count = a.ns, compaction_count = a.nc,"
        " latest_context_tokens = a.ctx, latest_model = a.model"
        " FROM (SELECT count(*) n, coalesce(sum(input_tokens), 0) i, coalesce(sum(output_tokens), 0) o,"
        "   coalesce(sum(cache_creation_input_tokens), 0) cw, coalesce(sum(cache_read_input_tokens), 0) cr,"
        "   coalesce(sum(cost_usd), 0) cost, min(received_at) first_at, max(received_at) last_at,"
        "   array_remove(array_agg(DISTINCT model), NULL) models,"
        "   array_remove(array_agg(DISTINCT session_id), NULL) sessions,"
        "   count(DISTINCT branch) FILTER (WHERE branch LIKE 'branch\\_%%') nb,"
        "   count(DISTINCT branch) FILTER (WHERE branch LIKE 'subtask\\_%%') ns,"
        "   count(DISTINCT branch) FILTER (WHERE branch LIKE 'compact\\_%%') nc,"
        "   (array_agg(context_tokens ORDER BY received_at DESC) FILTER (WHERE NOT is_subtask))[1] ctx,"
        "   (array_agg(model ORDER BY received_at DESC) FILTER (WHERE NOT is_subtask))[1] model"
        "  FROM requests WHERE conversation_id = %(c)s) a WHERE c.id = %(c)s",
        {"c": conversation_id},
    )
