"""The prompt library synced from a local Git repository (no network): versions, history, removals,
bad files reported by path, the same commit twice adding nothing."""

from __future__ import annotations

import subprocess
from pathlib import Path

import psycopg
import pytest
from nexus.db import prompts as library
from nexus.db.migrate import migrate
from nexus.prompts.source import SourceError, read

GIT_ENV = {
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@example.com",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@example.com",
    "PATH": "/usr/bin:/bin",
    "HOME": "/nonexistent",
}


class Repo:
    """A real Git repository in a temporary directory, changed with the git binary."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.git("init", "-q", "-b", "main")

    def git(self, *args: str) -> str:
        out = subprocess.run(
            ["git", *args], cwd=self.root, env=GIT_ENV, capture_output=True, text=True, check=True
        )
        return out.stdout.strip()

    def write(self, path: str, text: str) -> None:
        (self.root / path).parent.mkdir(parents=True, exist_ok=True)
        (self.root / path).write_text(text)

    def commit(self, message: str = "change") -> str:
        self.git("add", "-A")
        self.git("commit", "-q", "-m", message)
        return self.git("rev-parse", "HEAD")


def review(extra: str = "") -> str:
    return (
        f"---\nname: review\ndescription: Review a change\narguments: [pr]\n---\nReview #{{{{pr}}}}.{extra}\n"
    )


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    r = Repo(tmp_path / "prompts-repo")
    r.write("prompts/review.md", review())
    r.write("prompts/explain.md", "---\narguments:\n  - name: topic\n---\nExplain {{topic}} simply.\n")
    r.write("prompts/broken.md", "---\nname: Not Valid\n---\nhi\n")
    r.write("prompts/README.md", "How to write prompts (not a prompt).\n")
    r.write("notes/other.md", "outside the library path\n")
    return r


@pytest.fixture
def conn(database_url: str):
    migrate(database_url)
    with psycopg.connect(database_url, autocommit=True) as c:
        yield c


def test_sync_keeps_history_and_is_idempotent(repo: Repo, conn, tmp_path: Path):
    cache = tmp_path / "cache"
    first = repo.commit("first")

    snap = read(str(repo.root), None, "prompts", cache)
    assert snap.commit == first
    assert [t.name for t in snap.templates] == ["explain", "review"]
    assert list(snap.errors) == ["prompts/broken.md"] and "name" in snap.errors["prompts/broken.md"]
    r1 = library.apply(conn, snap)
    assert (sorted(r1.added), r1.changed, r1.removed) == (["explain", "review"], [], [])

    # Same commit again: a sync is recorded, no version is added.
    r2 = library.apply(conn, read(str(repo.root), None, "prompts", cache))
    assert (r2.added, r2.changed, r2.removed, sorted(r2.unchanged)) == ([], [], [], ["explain", "review"])
    assert [v["version"] for v in library.versions(conn, "review")] == [1]

    # A change makes version 2; the first stays readable.
    repo.write("prompts/review.md", review(" Be brief."))
    second = repo.commit("edit review")
    r3 = library.apply(conn, read(str(repo.root), None, "prompts", cache))
    assert (r3.commit, r3.changed, r3.added) == (second, ["review"], [])
    assert [(v["version"], v["commit"]) for v in library.versions(conn, "review")] == [
        (2, second),
        (1, first),
    ]
    assert library.version(conn, "review")["body"] == "Review #{{pr}}. Be brief."
    assert library.version(conn, "review", 1)["body"] == "Review #{{pr}}."

    # A removal marks the prompt removed: hidden from the library, its history kept.
    repo.git("rm", "-q", "prompts/explain.md")
    repo.commit("remove explain")
    r4 = library.apply(conn, read(str(repo.root), None, "prompts", cache))
    assert r4.removed == ["explain"]
    assert [p["name"] for p in library.library(conn)] == ["review"]
    removed = library.version(conn, "explain")
    assert removed is not None and removed["removed_at"] is not None

    # Brought back: a new version, in the library again.
    repo.write("prompts/explain.md", "---\narguments: [topic]\n---\nExplain {{topic}} to a child.\n")
    repo.commit("restore explain")
    r5 = library.apply(conn, read(str(repo.root), None, "prompts", cache))
    assert r5.added == ["explain"]
    assert library.version(conn, "explain")["version"] == 2

    syncs = conn.execute(
        "SELECT commit, added, changed, removed, unchanged, errors FROM prompt_syncs ORDER BY id"
    ).fetchall()
    assert [s[1:5] for s in syncs] == [(2, 0, 0, 0), (0, 0, 0, 2), (0, 1, 0, 1), (0, 0, 1, 1), (1, 0, 0, 1)]
    assert all("prompts/broken.md" in s[5] for s in syncs)


def test_ref_selects_a_branch_a_tag_or_a_commit(repo: Repo, tmp_path: Path):
    first = repo.commit("first")
    repo.git("tag", "v1")
    repo.git("checkout", "-q", "-b", "next")
    repo.write("prompts/new.md", "A new prompt.\n")
    nxt = repo.commit("on next")
    repo.git("checkout", "-q", "main")
    cache = tmp_path / "cache"
    assert read(str(repo.root), "next", "prompts", cache).commit == nxt
    assert "new" in [t.name for t in read(str(repo.root), "next", "prompts", cache).templates]
    assert read(str(repo.root), "v1", "prompts", cache).commit == first
    assert read(str(repo.root), first, "prompts", cache).commit == first
    assert read(str(repo.root), None, "prompts", cache).commit == first  # the remote's HEAD: main
    with pytest.raises(SourceError, match="no branch, tag or commit 'nope'"):
        read(str(repo.root), "nope", "prompts", cache)
    with pytest.raises(SourceError, match="cannot fetch"):
        read(str(tmp_path / "missing"), None, "", cache)


def test_search_matches_name_description_and_body(repo: Repo, conn, tmp_path: Path):
    repo.commit()
    library.apply(conn, read(str(repo.root), None, "prompts", tmp_path / "c"))
    assert [p["name"] for p in library.library(conn, "simply")] == ["explain"]
    assert [p["name"] for p in library.library(conn, "REVIEW a")] == ["review"]
    assert library.library(conn, "100%") == []


def test_a_refused_token_is_a_readable_source_error(tmp_path: Path):
    """An HTTPS host that answers 401 (a private repository without a token, or with a wrong one)."""
    import http.server
    import threading

    class Refuse(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="git"')
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Refuse)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}/team/prompts.git"
    try:
        with pytest.raises(SourceError, match="HTTP 401, a private repository needs a token"):
            read(url, None, "", tmp_path / "c")
        with pytest.raises(SourceError, match="HTTP 401, the token was refused"):
            read(url, None, "", tmp_path / "c", "x-access-token", "wrong")
    finally:
        server.shutdown()


def test_nexus_prompts_sync_reads_its_source_from_the_environment_or_the_options(
    repo: Repo, database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    import json

    from nexus_cli.main import main

    repo.commit()
    for var in ("NEXUS_STAGE", "NEXUS_PROMPTS_REF", "NEXUS_PROMPTS_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("NEXUS_PROMPTS_REPO", str(repo.root))
    monkeypatch.setenv("NEXUS_PROMPTS_PATH", "prompts")
    assert main(["prompts", "sync"]) == 1  # a file was skipped
    out = capsys.readouterr().out
    assert f"synced {repo.root} at " in out and "2 added, 0 changed, 0 removed, 0 unchanged" in out
    assert "  skipped  prompts/broken.md: name:" in out
    # Options win over the environment: the whole repository, where notes/other.md is a prompt too.
    assert main(["prompts", "sync", "--path", "", "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["added"] == ["other"]
    monkeypatch.delenv("NEXUS_PROMPTS_REPO")
    assert main(["prompts", "sync"]) == 2
    assert "which repository? --repo URL" in capsys.readouterr().err
