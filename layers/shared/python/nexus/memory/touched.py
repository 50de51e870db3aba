"""Which files a turn's tool calls named: Claude Code's own file tools (``Read``, ``Edit``,
``Write``...) by their documented argument, and a client's functions by the usual names of a file
argument. Searches (``Glob``, ``Grep``) and commands (``Bash``) name no file they touched."""

from __future__ import annotations

import posixpath
from collections.abc import Iterable
from typing import Any

MAX_FILES = 100
MAX_PATH = 1024

# Claude Code's tools that read or write one file, and the argument that names it.
FILE_TOOLS = {
    "Read": "file_path",
    "Edit": "file_path",
    "MultiEdit": "file_path",
    "Write": "file_path",
    "NotebookEdit": "notebook_path",
    "NotebookRead": "notebook_path",
}
# Claude Code's other tools: whatever a "path" argument of theirs names is not a file touched.
OTHER_TOOLS = frozenset(
    {"Bash", "BashOutput", "Glob", "Grep", "LS", "WebFetch", "WebSearch", "Task", "Agent", "TodoWrite"}
)
# A client function's argument names that name a file.
FILE_ARGUMENTS = ("file_path", "filepath", "path", "filename", "notebook_path")


def _path(value: Any, cwd: str | None) -> str | None:
    if not isinstance(value, str):
        return None
    value = value.strip()
    if not value or len(value) > MAX_PATH or any(c in value for c in "\n\r\x00"):
        return None
    if cwd and not value.startswith("/") and ":" not in value[:3]:
        value = posixpath.join(cwd, value)
    return str(posixpath.normpath(value))


def files_touched(calls: Iterable[tuple[str, Any]], cwd: str | None = None) -> list[str]:
    """The files named by ``calls`` (tool name, arguments), in order, without repeats, at most
    ``MAX_FILES``. Relative paths are taken relative to ``cwd`` when it is known."""
    out: dict[str, None] = {}
    for name, args in calls:
        if not isinstance(args, dict) or name in OTHER_TOOLS:
            continue
        keys = (FILE_TOOLS[name],) if name in FILE_TOOLS else FILE_ARGUMENTS
        for key in keys:
            path = _path(args.get(key), cwd)
            if path is not None:
                out.setdefault(path, None)
        if len(out) >= MAX_FILES:
            break
    return list(out)[:MAX_FILES]
