"""One prompt template: a Markdown file with YAML front matter, its body using ``{{argument}}``
placeholders (the original product's template syntax).

```
---
name: review-pr
description: Review a pull request for bugs and style
arguments:
  - name: pr
    description: the pull request number
    required: true
  - name: focus
    description: what to look at first
    required: false
---
Review pull request #{{pr}}. Look first at {{focus}}.
```

``name`` defaults to the file's stem; ``arguments`` may also be a list of plain names (all required).
Every placeholder in the body must be a declared argument: a typo is caught at sync, not at use.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

import yaml

NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")  # usable as a slash command: /mcp__nexus__<name>
ARGUMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$")
PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_-]*)\s*\}\}")
MAX_BYTES = 256 * 1024


class TemplateError(ValueError):
    """A file that is not a valid prompt template; the message says what to fix."""


class ArgumentError(ValueError):
    """Arguments that do not fit the template (missing required, unknown, not text)."""


@dataclass(frozen=True, slots=True)
class Argument:
    name: str
    description: str | None = None
    required: bool = True

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "required": self.required}


@dataclass(frozen=True, slots=True)
class Template:
    name: str
    description: str | None
    arguments: tuple[Argument, ...]
    body: str
    path: str = ""
    extra: dict[str, Any] = field(default_factory=dict)  # other front matter keys, kept as they are

    @property
    def content_hash(self) -> str:
        """What decides whether a sync makes a new version: everything but the path."""
        doc = repr((self.name, self.description, [a.to_json() for a in self.arguments], self.body))
        return hashlib.sha256(doc.encode()).hexdigest()

    def render(self, values: dict[str, str] | None) -> str:
        return render(self.body, self.arguments, values)


def _split(text: str) -> tuple[str | None, str]:
    """(front matter, body); no front matter when the file does not start with a ``---`` line."""
    lines = text.splitlines(keepends=True)
    if not lines or lines[0].strip() != "---":
        return None, text
    for i in range(1, len(lines)):
        if lines[i].strip() in ("---", "..."):
            return "".join(lines[1:i]), "".join(lines[i + 1 :])
    raise TemplateError("front matter starts with --- but never ends (no closing --- line)")


def _arguments(raw: object) -> tuple[Argument, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise TemplateError("arguments: must be a list")
    out: list[Argument] = []
    for i, item in enumerate(raw):
        if isinstance(item, str):
            item = {"name": item}
        if not isinstance(item, dict):
            raise TemplateError(
                f"arguments[{i}]: must be a name or a mapping with name, description, required"
            )
        name = item.get("name")
        if not isinstance(name, str) or not ARGUMENT.match(name):
            raise TemplateError(f"arguments[{i}].name: {name!r} is not a valid argument name")
        unknown = set(item) - {"name", "description", "required"}
        if unknown:
            raise TemplateError(f"arguments[{i}] ({name}): unknown keys {', '.join(sorted(unknown))}")
        description = item.get("description")
        if description is not None and not isinstance(description, str):
            raise TemplateError(f"arguments[{i}].description: must be text")
        required = item.get("required", True)
        if not isinstance(required, bool):
            raise TemplateError(f"arguments[{i}].required: must be true or false")
        if any(a.name == name for a in out):
            raise TemplateError(f"arguments: {name!r} is declared twice")
        out.append(Argument(name, description, required))
    return tuple(out)


def parse(text: str, path: str = "") -> Template:
    """A template from a file's text; raises TemplateError with what is wrong."""
    if len(text.encode()) > MAX_BYTES:
        raise TemplateError(f"larger than {MAX_BYTES // 1024} KiB")
    front, body = _split(text)
    meta: object = {}
    if front is not None:
        try:
            meta = yaml.safe_load(front) or {}
        except yaml.YAMLError as exc:
            raise TemplateError(f"front matter is not valid YAML: {exc}".splitlines()[0]) from None
    if not isinstance(meta, dict):
        raise TemplateError("front matter must be a mapping (name: ..., description: ..., arguments: [...])")
    stem = path.rsplit("/", 1)[-1].removesuffix(".md")
    name = meta.get("name", stem)
    if not isinstance(name, str) or not NAME.match(name):
        raise TemplateError(
            f"name: {name!r} must be 1-64 lower-case letters, digits, '-' or '_' (it becomes a slash command)"
        )
    description = meta.get("description")
    if description is not None and not isinstance(description, str):
        raise TemplateError("description: must be text")
    arguments = _arguments(meta.get("arguments"))
    body = body.strip("\n")
    if not body.strip():
        raise TemplateError("the body (after the front matter) is empty")
    declared = {a.name for a in arguments}
    undeclared = sorted({m for m in PLACEHOLDER.findall(body)} - declared)
    if undeclared:
        raise TemplateError(
            "the body uses undeclared arguments: " + ", ".join("{{" + n + "}}" for n in undeclared)
        )
    extra = {k: v for k, v in meta.items() if k not in ("name", "description", "arguments")}
    return Template(name, description, arguments, body, path, extra)


def render(body: str, arguments: tuple[Argument, ...], values: dict[str, str] | None) -> str:
    """The body with each ``{{name}}`` replaced by its value (an optional argument not given: empty).
    Raises ArgumentError for a missing required argument, an unknown one, or a value that is not text."""
    values = dict(values or {})
    declared = {a.name: a for a in arguments}
    unknown = sorted(set(values) - set(declared))
    if unknown:
        raise ArgumentError(
            f"unknown argument(s): {', '.join(unknown)} (this prompt takes: {', '.join(declared) or 'none'})"
        )
    for name, value in values.items():
        if not isinstance(value, str):
            raise ArgumentError(f"argument {name!r} must be text")
    missing = [a.name for a in arguments if a.required and not values.get(a.name)]
    if missing:
        raise ArgumentError(f"missing required argument(s): {', '.join(missing)}")
    # One pass: a value that itself contains {{x}} is not substituted again.
    return PLACEHOLDER.sub(lambda m: values.get(m.group(1), ""), body)
