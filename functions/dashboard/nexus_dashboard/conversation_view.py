"""A conversation laid out for reading: the tree (one row per request, one lane per concurrent branch),
per-branch stats with time split into model, tool and user time, and the message timeline.

Pure functions over the rows ``queries.get_conversation`` returns, so the page and its JSON twin
show the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from markupsafe import Markup

from nexus_dashboard.schemas import Conversation, TimeSpent

LANE_W = 14  # px between lane centres in the tree's per-row drawing


def _end(r: dict[str, Any]) -> datetime:
    received: datetime = r["received_at"]
    return received + timedelta(milliseconds=r["duration_ms"] or 0)


def number_and_link(requests: list[dict[str, Any]]) -> None:
    """Give each request its 1-based position ``n`` and its parent's (``parent_n``; None when the
    parent is not in the list, e.g. filtered out), and how the time before it was spent."""
    by_id = {r["id"]: r for r in requests}
    for n, r in enumerate(requests, 1):
        r["n"] = n
    for r in requests:
        parent = by_id.get(r["parent_request_id"])
        task = by_id.get(r["parent_task_request_id"])
        r["parent_n"] = parent["n"] if parent else None
        r["task_parent_n"] = task["n"] if task else None
        # The gap between the parent's answer and this request: the client running tools after a
        # tool_use answer, otherwise a person reading and typing.
        r["gap_ms"] = None
        r["gap_kind"] = None
        if parent is not None:
            gap = (r["received_at"] - _end(parent)).total_seconds() * 1000
            r["gap_ms"] = max(gap, 0.0)
            r["gap_kind"] = "tool" if parent["stop_reason"] == "tool_use" else "user"


def assign_lanes(requests: list[dict[str, Any]]) -> int:
    """Lane (column) per request: one per branch, reused once a branch is over, main always 0.
    Each row gets ``lanes`` (the lanes whose line crosses it) and returns the lane count."""
    first: dict[str, int] = {}
    last: dict[str, int] = {}
    for i, r in enumerate(requests):
        first.setdefault(r["branch"] or "main", i)
        last[r["branch"] or "main"] = i
    # A branch's line runs on to its last fork, so the fork's connector has a line to leave from.
    index = {r["id"]: i for i, r in enumerate(requests)}
    for i, r in enumerate(requests):
        p = index.get(_drawn_parent(r))
        if p is not None:
            pb = requests[p]["branch"] or "main"
            last[pb] = max(last[pb], i)
    lane_of: dict[str, int] = {}
    busy_until: list[int] = []  # per lane: the last row it is taken
    for name in sorted(first, key=lambda b: (b != "main", first[b])):
        free = [k for k, end in enumerate(busy_until) if k > 0 and end < first[name]]
        if free:
            lane = free[0]
            busy_until[lane] = last[name]
        else:
            lane = len(busy_until)
            busy_until.append(last[name])
        lane_of[name] = lane
    for i, r in enumerate(requests):
        r["lane"] = lane_of[r["branch"] or "main"]
        r["lanes"] = sorted(lane_of[b] for b in first if first[b] <= i <= last[b])
        r["lane_starts"] = first[r["branch"] or "main"] == i
        r["lane_ends"] = last[r["branch"] or "main"] == i
        p = index.get(_drawn_parent(r))
        r["parent_lane"] = requests[p]["lane"] if p is not None and r["lane_starts"] else None
    return len(busy_until)


def _drawn_parent(r: dict[str, Any]) -> str | None:
    """A sub-agent's first request hangs off the request whose tool call spawned it."""
    parent: str | None = r["parent_request_id"] or r["parent_task_request_id"]
    return parent


@dataclass(slots=True)
class TimeSplit:
    model_ms: float = 0.0
    tool_ms: float = 0.0
    user_ms: float = 0.0

    def add(self, r: dict[str, Any]) -> None:
        self.model_ms += r["duration_ms"] or 0.0
        if r["gap_kind"] == "tool":
            self.tool_ms += r["gap_ms"]
        elif r["gap_kind"] == "user":
            self.user_ms += r["gap_ms"]

    def as_dict(self) -> TimeSpent:
        return {
            "model_ms": round(self.model_ms),
            "tool_ms": round(self.tool_ms),
            "user_ms": round(self.user_ms),
        }


def time_split(requests: list[dict[str, Any]]) -> tuple[TimeSpent, dict[str, TimeSpent]]:
    total = TimeSplit()
    per_branch: dict[str, TimeSplit] = {}
    for r in requests:
        total.add(r)
        per_branch.setdefault(r["branch"] or "main", TimeSplit()).add(r)
    return total.as_dict(), {b: s.as_dict() for b, s in per_branch.items()}


def layout(conv: dict[str, Any], branch: str | None) -> Conversation:
    """The conversation (as ``queries.get_conversation`` reads it) with its tree laid out, optionally
    narrowed to one branch."""
    requests = conv["requests"]
    number_and_link(requests)
    total, per_branch = time_split(requests)
    shown = [r for r in requests if branch is None or (r["branch"] or "main") == branch]
    lanes = assign_lanes(shown)
    for b in conv["branches"]:
        b.update(per_branch.get(b["name"], TimeSplit().as_dict()))
    laid_out = {**conv, "requests": shown, "lane_count": lanes, "time": total, "branch_filter": branch}
    # Its rows now hold every key of TreeRequest and Branch (FastAPI checks the shape at runtime).
    return cast(Conversation, laid_out)


def tree_svg(r: dict[str, Any], lane_count: int, row_h: int = 36) -> Markup:
    """The drawing left of one tree row: lane lines through it, its node, and a fork connector from
    the parent's lane when a branch starts here. Static SVG: no script, CSP-clean."""
    w = lane_count * LANE_W + 6
    mid = row_h // 2
    parts: list[str] = []
    for lane in r["lanes"]:
        x = 3 + lane * LANE_W + LANE_W // 2
        top = mid if lane == r["lane"] and r["lane_starts"] else 0
        bottom = mid if lane == r["lane"] and r["lane_ends"] else row_h
        if top < bottom:
            parts.append(f'<line class="l{lane % 6}" x1="{x}" y1="{top}" x2="{x}" y2="{bottom}"/>')
    x = 3 + r["lane"] * LANE_W + LANE_W // 2
    if r["parent_lane"] is not None and r["parent_lane"] != r["lane"]:
        px = 3 + r["parent_lane"] * LANE_W + LANE_W // 2
        parts.append(f'<path class="l{r["lane"] % 6}" d="M{px} 0 C{px} {mid} {x} 0 {x} {mid}"/>')
    kind = r["link"] or "root"
    parts.append(f'<circle class="n-{kind} l{r["lane"] % 6}" cx="{x}" cy="{mid}" r="5"/>')
    return Markup(
        f'<svg class="lanes" width="{w}" height="{row_h}" viewBox="0 0 {w} {row_h}" aria-hidden="true">'
        + "".join(parts)
        + "</svg>"
    )
