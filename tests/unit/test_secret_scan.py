"""The secrets scan finds what it must and only that: planted secrets in a data directory and in a
test's output are found (masked in its report), a Nexus key is found even unregistered, the secret
store is where credentials may be, and its team credentials join the secrets looked for."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import secret_scan
from tests.support.secret_scan import Scanner

PLANTED = "sk-ant-api03-planted-in-a-unit-test-0001"
NEXUS_KEY = "nxk_0123456789_" + "A" * 16 + "b-_c" * 4


@pytest.fixture
def planted(tmp_path: Path) -> Iterator[Path]:
    """A data directory with secrets planted in it, removed afterwards (the scan at the end of the
    suite would rightly find them)."""
    yield _data_dir(tmp_path / "nexus")
    shutil.rmtree(tmp_path / "nexus")


def _data_dir(root: Path) -> Path:
    (root / "spool" / "dead").mkdir(parents=True)
    (root / "spool" / "dead" / "1.frame").write_bytes(b"frame\x00" + PLANTED.encode() + b"\x00rest")
    (root / "nexus-dev.log").write_text(f"2026 proxy INFO forwarded with key {NEXUS_KEY}\n")
    (root / "notes.txt").write_text("nothing here: sk-ant-api03-[redacted 1a2b3c4d5e6f]\n")
    store = {
        "nexus/team/t/anthropic-api-key": PLANTED,
        "nexus/team/o/oauth": json.dumps(
            {"access_token": "sk-ant-oat01-team-token-1", "refresh_token": "rt"}
        ),
        "nexus/keys": json.dumps({"k": {"hash": "abc"}}),
    }
    (root / "secrets.json").write_text(json.dumps(store))
    return root


def test_planted_secrets_are_found_where_they_are_and_nowhere_else(planted: Path) -> None:
    found = Scanner({PLANTED}).tree(planted)
    assert {(Path(f.where).name, f.secret) for f in found} == {
        ("1.frame", secret_scan.mask(PLANTED)),
        ("nexus-dev.log", secret_scan.mask(NEXUS_KEY)),  # shaped like a Nexus key: a finding
    }
    assert all(PLANTED not in str(f) and NEXUS_KEY not in str(f) for f in found)  # the report is masked


def test_a_secret_inside_a_longer_token_is_found() -> None:
    scanner = Scanner({"sk-ant-api03-short-one", "sk-ant-api03-short-one-longer"})
    found = scanner.data(b'{"x-api-key": "sk-ant-api03-short-one-longer"}', "here")
    assert {f.secret for f in found} == {
        secret_scan.mask("sk-ant-api03-short-one"),
        secret_scan.mask("sk-ant-api03-short-one-longer"),
    }
    assert scanner.data(b"sk-ant-api03-short-on", "cut short") == []


def test_secrets_of_other_shapes_are_found_too() -> None:
    assert Scanner({"plain-token-without-prefix"}).data(b"a plain-token-without-prefix b", "x")


def test_the_secret_store_names_the_team_credentials(planted: Path) -> None:
    assert secret_scan.store_credentials(planted) == {PLANTED, "sk-ant-oat01-team-token-1"}


def test_printed_output_is_checked_against_secrets_registered_later() -> None:
    secret = "sk-ant-api03-printed-before-it-was-known"
    secret_scan.watch_output("tests/some.py::test_x: Captured stdout call", f"made key {secret}\n")
    assert secret_scan.output_findings(set()) == []
    [finding] = secret_scan.output_findings({secret})
    assert finding.where == "tests/some.py::test_x: Captured stdout call"
