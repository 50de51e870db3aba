"""Where a linked request goes in its conversation's tree: which branch, and whether it is a
sub-agent's. Pure: the same decision serves ingest (state read from the database) and full
recomputes after out-of-order arrivals (state replayed in memory)."""

from __future__ import annotations

from dataclasses import dataclass, field

MAIN = "main"


@dataclass(slots=True)
class Node:
    id: str
    session_id: str | None
    messages_key: bytes | None
    branch: str | None = None
    is_subtask: bool = False
    parent_task_request_id: str | None = None
    kind: str = "main"  # the request kind (nexus.classify)


@dataclass(slots=True)
class Counters:
    """Per conversation: how many branches of each kind exist (names are numbered from these)."""

    branch: int = 0
    compact: int = 0
    subtasks: set[str] = field(default_factory=set)


@dataclass(slots=True)
class Placement:
    link: str  # root | continue | retry | subtask | compact | side
    branch: str
    is_subtask: bool = False
    parent_task_request_id: str | None = None
    new_branch_kind: str | None = None  # set when this request opened a branch


def root() -> Placement:
    return Placement("root", MAIN, new_branch_kind="main")


def continuation(node: Node, parent: Node, siblings: list[Node], counters: Counters) -> Placement:
    """``siblings``: earlier continuations of the same parent, oldest first."""
    if node.kind == "compaction":
        # A summarisation request is a step of its parent's line, never a branch of its own (the CLI
        # sends it with the history cut before the last answer, so it shares a parent with that turn).
        return Placement("continue", parent.branch or MAIN, parent.is_subtask, parent.parent_task_request_id)
    siblings = [s for s in siblings if s.kind != "compaction"]
    for s in siblings:
        if s.messages_key is not None and s.messages_key == node.messages_key:
            # the same request again (a retry, e.g. after a 529): not a branch
            return Placement("retry", s.branch or MAIN, s.is_subtask, s.parent_task_request_id)
    forked = (
        node.session_id is not None and parent.session_id is not None and node.session_id != parent.session_id
    )
    if not siblings and not forked:
        return Placement("continue", parent.branch or MAIN, parent.is_subtask, parent.parent_task_request_id)
    # a second continuation of the same point (edited message, rewind) or a fork into a new session
    counters.branch += 1
    return Placement(
        "continue",
        f"branch_{counters.branch}",
        parent.is_subtask,
        parent.parent_task_request_id,
        new_branch_kind="branch",
    )


def side(anchor: Node) -> Placement:
    """A side call, count_tokens or quota probe: on the branch of its session's latest request."""
    return Placement("side", anchor.branch or MAIN, anchor.is_subtask, anchor.parent_task_request_id)


def compaction(counters: Counters) -> Placement:
    counters.compact += 1
    return Placement("compact", f"compact_{counters.compact}", new_branch_kind="compact")


def subtask(invoking_request_id: str, invocation_number: int, counters: Counters) -> Placement:
    name = f"subtask_{invocation_number}"
    new = name not in counters.subtasks
    counters.subtasks.add(name)
    return Placement("subtask", name, True, invoking_request_id, new_branch_kind="subtask" if new else None)
