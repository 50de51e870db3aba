"""What the AWS sync's two functions agree on (ADR 0023): the snapshot as the applier's payload, round
trip and refusals; the token secret's forms."""

from __future__ import annotations

import orjson
import pytest
from nexus.prompts import handoff
from nexus.prompts.source import Snapshot
from nexus.prompts.sync import TOKEN_USER, token_from_secret
from nexus.prompts.template import parse


def snapshot(*texts: str) -> Snapshot:
    templates = tuple(parse(t, f"prompts/p{i}.md") for i, t in enumerate(texts))
    return Snapshot("https://git.example.com/p.git", "main", "prompts", "c" * 40, templates, {"x.md": "bad"})


def test_the_snapshot_travels_as_json_and_comes_back_the_same():
    snap = snapshot("---\nname: a\narguments: [who]\n---\nHi {{who}}.", "---\nname: b\n---\nBye.")
    payload = handoff.encode(snap)
    assert handoff.decode(orjson.loads(payload)) == snap


def test_over_the_limit_the_message_names_the_size_the_limit_and_the_largest_prompts():
    snap = snapshot("---\nname: small\n---\nx", "---\nname: big\n---\n" + "y" * 4096)
    with pytest.raises(handoff.SnapshotTooLarge) as exc:
        handoff.encode(snap, limit=4000)
    message = str(exc.value)
    assert (
        "over Lambda's 4,000-byte limit for one invocation (2 prompts; the largest: prompts/p1.md (4 KiB)"
        in (message)
    )
    assert "nothing was applied" in message


@pytest.mark.parametrize(
    ("event", "message"),
    [
        ([], "expected a JSON object, got list"),
        ({"commit": "c"}, "missing repo, templates, errors"),
        ({"repo": "r", "commit": "c", "templates": {}, "errors": {}}, "templates must be a list"),
        ({"repo": "r", "commit": "c", "templates": [{"name": "a"}], "errors": {}}, "a template is malformed"),
        (
            {
                "repo": "r",
                "commit": "c",
                "errors": {},
                "templates": [{"name": "Bad Name", "arguments": [], "body": "x"}],
            },
            "invalid prompts ['Bad Name']",
        ),
    ],
)
def test_what_is_not_a_snapshot_is_refused_with_what_is_wrong(event, message):
    with pytest.raises(ValueError, match="not a prompt library snapshot") as exc:
        handoff.decode(event)
    assert message in str(exc.value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, (None, None)),
        ("{}", (None, None)),  # as the stack creates the secret: a public repository
        ("  ghp_plain\n", (TOKEN_USER, "ghp_plain")),
        ('{"token": "glpat-x"}', (TOKEN_USER, "glpat-x")),
        ('{"token": "app-pw", "username": "ada"}', ("ada", "app-pw")),
    ],
)
def test_the_token_secret_holds_a_token_or_a_json_object(value, expected):
    assert token_from_secret(value) == expected


@pytest.mark.parametrize("value", ["{not json", '{"token": 42}', '{"token": "x", "username": 5}'])
def test_a_token_secret_of_another_shape_is_refused(value):
    with pytest.raises(ValueError, match="prompts token secret"):
        token_from_secret(value)
