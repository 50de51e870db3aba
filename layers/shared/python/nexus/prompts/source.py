"""Reading the prompt library out of a Git repository at one commit, with dulwich (pure Python: the
same code runs in a Lambda function, which has no ``git`` binary, and on a laptop).

The repository is fetched into a bare cache directory (``fetch`` is incremental after the first
time), ``ref`` is resolved (a branch, a tag, a full commit id; default: the remote's HEAD), and every
``*.md`` file under ``path`` at that commit is parsed. A bad file is reported by its path and skipped:
it never stops the rest of the library from syncing.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nexus.prompts.template import Argument, Template, TemplateError, parse

SHA = re.compile(r"^[0-9a-f]{40}$")


class SourceError(Exception):
    """The repository cannot be read, or ``ref`` names nothing in it; the message is for a person."""


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The library as one commit holds it: parsed templates, and the files that did not parse."""

    repo: str
    ref: str | None
    path: str
    commit: str
    templates: tuple[Template, ...]
    errors: dict[str, str] = field(default_factory=dict)  # file path -> what is wrong

    def to_json(self) -> dict[str, Any]:
        """A JSON document (the AWS fetcher hands the snapshot to the in-VPC writer this way)."""
        return {
            "repo": self.repo,
            "ref": self.ref,
            "path": self.path,
            "commit": self.commit,
            "errors": self.errors,
            "templates": [
                {
                    "name": t.name,
                    "description": t.description,
                    "arguments": [a.to_json() for a in t.arguments],
                    "body": t.body,
                    "path": t.path,
                }
                for t in self.templates
            ],
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Snapshot:
        templates = tuple(
            Template(
                t["name"],
                t.get("description"),
                tuple(
                    Argument(a["name"], a.get("description"), bool(a.get("required", True)))
                    for a in t["arguments"]
                ),
                t["body"],
                t.get("path", ""),
            )
            for t in doc["templates"]
        )
        return cls(
            doc["repo"], doc.get("ref"), doc.get("path", ""), doc["commit"], templates, dict(doc["errors"])
        )


def public_repo(url: str) -> str:
    """The repository's address without credentials, as stored and shown."""
    return re.sub(r"^([a-z+]+://)[^/@]+@", r"\1", url)


def cache_dir(base: Path, repo: str) -> Path:
    return base / hashlib.sha256(public_repo(repo).encode()).hexdigest()[:16]


def _fetch(
    repo: str, cache: Path, username: str | None, password: str | None
) -> tuple[Any, dict[bytes, bytes]]:
    from dulwich.client import HTTPProxyUnauthorized, HTTPUnauthorized, get_transport_and_path
    from dulwich.errors import GitProtocolError, HangupException, NotGitRepository
    from dulwich.repo import Repo

    cache.mkdir(parents=True, exist_ok=True)
    target = Repo(str(cache)) if (cache / "objects").is_dir() else Repo.init_bare(str(cache))
    location = str(Path(repo).resolve()) if "://" not in repo and Path(repo).exists() else repo
    try:
        client, remote_path = get_transport_and_path(location, username=username, password=password)
        result = client.fetch(remote_path, target)
    except (HTTPUnauthorized, HTTPProxyUnauthorized):
        why = "the token was refused" if password else "a private repository needs a token"
        raise SourceError(f"cannot fetch {public_repo(repo)}: HTTP 401, {why}") from None
    except (GitProtocolError, HangupException, NotGitRepository, OSError) as exc:
        raise SourceError(f"cannot fetch {public_repo(repo)}: {str(exc) or type(exc).__name__}") from None
    refs: dict[bytes, bytes] = {bytes(k): bytes(v) for k, v in result.refs.items() if v is not None}
    symrefs: dict[bytes, bytes] = {bytes(k): bytes(v) for k, v in (result.symrefs or {}).items()}
    head_target = symrefs.get(b"HEAD")
    if head_target is not None and head_target in refs:
        refs[b"HEAD"] = refs[head_target]
    return target, refs


def resolve(target: Any, refs: dict[bytes, bytes], ref: str | None) -> str:
    """The commit id ``ref`` names (tags peeled to their commit)."""
    from dulwich.objects import Commit, Tag

    candidates: list[bytes] = []
    if ref is None:
        candidates = [b"HEAD"]
    else:
        raw = ref.encode()
        candidates = [raw, b"refs/heads/" + raw, b"refs/tags/" + raw]
    sha: bytes | None = None
    for name in candidates:
        if refs.get(name):
            sha = refs[name]
            break
    if sha is None and ref is not None and SHA.match(ref) and ref.encode() in target.object_store:
        sha = ref.encode()
    if sha is None:
        raise SourceError(
            f"no branch, tag or commit {ref!r} in the repository" if ref else "the repository has no HEAD"
        )
    obj = target.object_store[sha]
    while isinstance(obj, Tag):
        obj = target.object_store[obj.object[1]]
    if not isinstance(obj, Commit):
        raise SourceError(f"{ref!r} does not name a commit")
    return str(obj.id.decode())


def read(
    repo: str,
    ref: str | None,
    path: str,
    cache_base: Path,
    username: str | None = None,
    password: str | None = None,
) -> Snapshot:
    """Fetch ``repo`` and parse the templates under ``path`` at ``ref``. Raises SourceError."""
    from dulwich.object_store import iter_tree_contents

    target, refs = _fetch(repo, cache_dir(cache_base, repo), username, password)
    commit = resolve(target, refs, ref)
    prefix = path.strip("/")
    tree = target.object_store[commit.encode()].tree
    templates: list[Template] = []
    errors: dict[str, str] = {}
    seen: dict[str, str] = {}
    for entry in iter_tree_contents(target.object_store, tree):
        name = entry.path.decode("utf-8", "replace")
        if not name.endswith(".md") or (prefix and not name.startswith(prefix + "/")):
            continue
        if name.rsplit("/", 1)[-1].lower() == "readme.md":
            continue  # a library's own documentation, not a prompt
        try:
            text = target.object_store[entry.sha].data.decode("utf-8")
            t = parse(text, name)
        except UnicodeDecodeError:
            errors[name] = "not UTF-8 text"
            continue
        except TemplateError as exc:
            errors[name] = str(exc)
            continue
        if t.name in seen:
            errors[name] = f"name {t.name!r} is already used by {seen[t.name]}"
            continue
        seen[t.name] = name
        templates.append(t)
    target.close()
    return Snapshot(
        public_repo(repo), ref, prefix, commit, tuple(sorted(templates, key=lambda t: t.name)), errors
    )
