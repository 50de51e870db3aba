"""nexus.bodies: content-addressed request bodies must join back to the exact original bytes."""

from __future__ import annotations

import json

import orjson
import pytest
from nexus.bodies import BLOB_MIN_CHARS, chain_ids, join_body, sha256, split_body

LONG_SYSTEM = "You are Claude Code, Anthropic's official CLI for Claude. " * 40
TOOLS = [
    {
        "name": name,
        "description": f"The {name} tool. " * 20,
        "input_schema": {"type": "object", "properties": {"arg": {"type": "string"}}, "required": ["arg"]},
    }
    for name in ("Bash", "Read", "Edit", "Grep")
]


def user(text: str) -> dict:
    return {"role": "user", "content": [{"type": "text", "text": text}]}


def assistant(text: str) -> dict:
    return {"role": "assistant", "content": [{"type": "text", "text": text}]}


def tool_turn(n: int) -> list[dict]:
    return [
        {
            "role": "assistant",
            "content": [
                {"type": "tool_use", "id": f"toolu_{n}", "name": "Bash", "input": {"arg": f"ls {n}"}}
            ],
        },
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": f"toolu_{n}", "content": f"file{n}.py"}],
        },
    ]


def claude_code_body(messages: list[dict]) -> bytes:
    return orjson.dumps(
        {
            "model": "claude-sonnet-4-5-20250929",
            "messages": messages,
            "system": [{"type": "text", "text": LONG_SYSTEM}],
            "tools": TOOLS,
            "metadata": {"user_id": "user_abc"},
            "max_tokens": 32000,
            "stream": True,
        }
    )


def roundtrip(raw: bytes) -> bytes:
    """Split, store the layout as JSON (as ingest does), then join from the stored blobs only."""
    split = split_body(raw)
    layout = orjson.loads(orjson.dumps(split.layout))
    store = dict(split.blobs)
    return join_body(layout, [store[h] for h in split.message_hashes], store.__getitem__)


BODY = {
    "model": "claude-sonnet-4-5",
    "max_tokens": 1024,
    "system": LONG_SYSTEM,
    "messages": [user("hi"), assistant("hello"), user("how are you?")],
    "tools": TOOLS,
}

OBJECT_CASES = {
    "compact": orjson.dumps(BODY),
    "pretty": json.dumps(BODY, indent=2).encode(),
    "odd_whitespace": (
        b' \r\n{ "model" :\t"claude-sonnet-4-5" ,\n\n"messages"  :\r\n [\n  '
        b'{"role":"user","content":"a"}  ,\t{"role" : "assistant","content":"b"}\n\n,'
        b'{"role":"user","content":"c"}\r\n]  ,"tools":'
        + json.dumps(TOOLS, indent=3).encode()
        + b'\t,"max_tokens":   5\n}\n\n  '
    ),
    "messages_space_after_comma": (
        b'{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}'
    ),
    "messages_not_first_or_last": b'{"a":1,"messages":[{"role":"user","content":"x"}],"z":2}',
    "unicode_raw": json.dumps(
        {"messages": [user("héllo 日本語 🎉 \u2028 ok")], "system": "Ünïcödé " * 50}, ensure_ascii=False
    ).encode(),
    "unicode_escaped": json.dumps(
        {"messages": [user("héllo 日本語 🎉")], "system": "Ünïcödé " * 50}, ensure_ascii=True
    ).encode(),
    "unicode_key": '{"messagés":1,"messages":[{"content":"ü"}],"ключ":"значение"}'.encode(),
    "empty_messages_compact": b'{"model":"m","messages":[]}',
    "empty_messages_space": b'{"model":"m","messages": [ ]}',
    "empty_messages_newline": b'{"model":"m","messages":[\n]}',
    "no_messages": b'{"model":"claude-haiku-4-5","max_tokens":1}',
    "messages_null": b'{"messages":null}',
    "messages_object": b'{"messages":{"role":"user"}}',
    "empty_object": b"{}",
    "empty_object_spaced": b" {  } ",
    "nested_messages_key": b'{"metadata":{"messages":[1,2]},"messages":[{"a":{"messages":[3]}}]}',
}

NON_OBJECT_CASES = {
    "array": b'[{"role":"user"}]',
    "string": b'"messages"',
    "number": b"42",
    "null": b"null",
    "true": b"true",
}

INVALID_CASES = {
    "empty": b"",
    "whitespace": b" \n\t",
    "truncated": b'{"model":"m","messages":[{"role":"user","content":"hi"',
    "trailing_garbage": b'{"model":"m"} x',
    "two_objects": b'{"a":1}{"b":2}',
    "missing_colon": b'{"model" "m"}',
    "bad_message": b'{"messages":[{"role":"user"},oops]}',
    "trailing_comma_in_messages": b'{"messages":[{"a":1},]}',
    "not_json": b"hello world",
    "form_encoded": b"a=1&b=2",
    "bom": b'\xef\xbb\xbf{"model":"m"}',
}

INVALID_UTF8_CASES = {
    "lone_continuation": b"\x80\x81\x82",
    "in_message": b'{"messages":[{"role":"user","content":"\xff\xfe"}]}',
    "truncated_multibyte": '{"system":"日本'.encode()[:-1] + b'"}',
    "surrogate_bytes": b'{"a":"\xed\xa0\x80"}',
    "binary": bytes(range(256)),
}

ALL_CASES = {**OBJECT_CASES, **NON_OBJECT_CASES, **INVALID_CASES, **INVALID_UTF8_CASES}


@pytest.mark.parametrize("raw", list(ALL_CASES.values()), ids=list(ALL_CASES))
def test_join_reproduces_exact_bytes(raw):
    assert roundtrip(raw) == raw


@pytest.mark.parametrize("raw", list(OBJECT_CASES.values()), ids=list(OBJECT_CASES))
def test_object_bodies_are_parsed(raw):
    split = split_body(raw)
    assert split.parsed == json.loads(raw)


@pytest.mark.parametrize(
    "raw",
    [*NON_OBJECT_CASES.values(), *INVALID_CASES.values(), *INVALID_UTF8_CASES.values()],
    ids=[*NON_OBJECT_CASES, *INVALID_CASES, *INVALID_UTF8_CASES],
)
def test_unsplittable_bodies_become_one_blob(raw):
    split = split_body(raw)
    assert split.parsed is None
    assert split.message_hashes == []
    assert split.blobs == {sha256(raw): raw}


def test_each_message_is_a_blob_of_its_exact_bytes():
    raw = b'{"messages":[ {"role":"user","content":"a"} ,\n{"role" : "assistant","content":"b"}]}'
    split = split_body(raw)
    expected = [b'{"role":"user","content":"a"}', b'{"role" : "assistant","content":"b"}']
    assert [split.blobs[h] for h in split.message_hashes] == expected
    assert split.message_hashes == [sha256(m) for m in expected]


def test_small_values_stay_inline_and_large_values_become_blobs():
    small = "x" * 10
    raw = orjson.dumps({"model": small, "system": LONG_SYSTEM, "tools": TOOLS, "messages": []})
    split = split_body(raw)
    assert set(split.blobs.values()) == {orjson.dumps(LONG_SYSTEM), orjson.dumps(TOOLS)}
    assert len(orjson.dumps(LONG_SYSTEM)) >= BLOB_MIN_CHARS
    inline = "".join(p for p in split.layout if isinstance(p, str))
    assert small in inline
    assert LONG_SYSTEM not in inline


def test_consecutive_claude_code_turns_share_prefix_and_large_values():
    turn1_messages = [user("Fix the failing test"), *tool_turn(1), assistant("Looking at it.")]
    turn2_messages = [*turn1_messages, *tool_turn(2)]
    split1 = split_body(claude_code_body(turn1_messages))
    split2 = split_body(claude_code_body(turn2_messages))

    assert len(split1.message_hashes) == 4
    assert len(split2.message_hashes) == 6
    assert split2.message_hashes[:4] == split1.message_hashes
    assert len(set(split2.message_hashes)) == 6

    def non_message_blobs(split):
        messages = set(split.message_hashes)
        return {h: b for h, b in split.blobs.items() if h not in messages}

    shared = non_message_blobs(split1)
    assert shared == non_message_blobs(split2)
    assert set(shared.values()) == {
        orjson.dumps([{"type": "text", "text": LONG_SYSTEM}]),
        orjson.dumps(TOOLS),
    }
    # Only the message list differs, so the layout (the per-request remainder) is identical too.
    assert split1.layout == split2.layout

    ids1, ids2 = chain_ids(split1.message_hashes), chain_ids(split2.message_hashes)
    assert ids2[:4] == ids1
    assert ids2[4] not in ids1


def test_chain_ids_depend_on_the_whole_prefix():
    a, b, c = sha256(b"a"), sha256(b"b"), sha256(b"c")
    assert chain_ids([]) == []
    assert chain_ids([a, b, c])[:2] == chain_ids([a, b])
    assert chain_ids([a, b])[1] != chain_ids([c, b])[1]  # same message, different history
    assert chain_ids([a, b])[1] != chain_ids([b, a])[1]
    assert len(set(chain_ids([a, a, a]))) == 3  # repeated messages are distinct nodes
    assert all(len(i) == 32 for i in chain_ids([a, b, c]))


def test_join_with_edited_message_list_produces_that_list():
    """The layout is independent of the message bytes: joining other messages gives a valid body."""
    raw = b'{"model":"m","messages":[{"n":1},{"n":2}],"stream":true}'
    split = split_body(raw)
    joined = join_body(split.layout, [b'{"n":1}', b'{"n":2}', b'{"n":3}'], split.blobs.__getitem__)
    assert joined == b'{"model":"m","messages":[{"n":1},{"n":2},{"n":3}],"stream":true}'


def test_duplicate_messages_key_roundtrips_exactly():
    raw = b'{"messages":[{"a":1}],"model":"m","messages":[{"b":2},{"c":3}]}'
    assert roundtrip(raw) == raw


def test_deeply_nested_body_falls_back_to_one_blob():
    raw = b'{"messages":[{"content":' + b"[" * 5000 + b"]" * 5000 + b"}]}"
    assert roundtrip(raw) == raw


def test_piece_cache_gives_the_same_split_as_parsing():
    """With the cache, a resent history and the same tools are recognised, not re-parsed; the result
    (layout, hashes, chain, parsed values) is identical to a cold split, and bytes still round-trip."""
    from nexus.bodies import PieceCache

    tools = [{"name": "Bash", "description": "Run a command. " * 30, "input_schema": {"type": "object"}}]
    history: list = []
    cache = PieceCache()
    for turn in range(6):
        history = [
            *history,
            {"role": "user", "content": f"turn {turn} " * 20},
            {"role": "assistant", "content": [{"type": "text", "text": f"answer {turn}"}]},
        ]
        raw = json.dumps({"model": "m", "tools": tools, "messages": history}, separators=(",", ":")).encode()
        warm, cold = split_body(raw, cache), split_body(raw)
        assert (warm.layout, warm.message_hashes, warm.chain, warm.parsed) == (
            cold.layout,
            cold.message_hashes,
            cold.chain,
            cold.parsed,
        )
        assert warm.chain == chain_ids(warm.message_hashes)
        data = {**cold.blobs, **warm.blobs}
        assert join_body(warm.layout, [data[h] for h in warm.message_hashes], data.__getitem__) == raw


def test_piece_cache_never_matches_a_longer_value_by_prefix():
    """A cached '"ab"' must not be taken for the start of '"abc"' (strings, objects and arrays are
    self-delimiting, numbers are not cached)."""
    from nexus.bodies import PieceCache

    cache = PieceCache()
    a = b'{"system":"' + b"x" * 300 + b'","max_tokens":1}'
    b = b'{"system":"' + b"x" * 300 + b'yz","max_tokens":12}'
    split_body(a, cache)
    got = split_body(b, cache)
    assert got.parsed == json.loads(b)
    data = got.blobs
    assert join_body(got.layout, [], data.__getitem__) == b
