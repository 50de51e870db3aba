"""The gateway's pure parts: history hashing, the SSRF address rule, settings, request translation."""

from __future__ import annotations

import asyncio

import pytest
from nexus_gateway import chat_request, continuity, images
from nexus_gateway.dialogue import Message, text_block
from nexus_gateway.errors import GatewayError
from nexus_gateway.settings import SettingsError, load


def _m(role: str, *blocks: dict) -> Message:
    return Message(role, list(blocks))  # type: ignore[arg-type]


def test_a_history_hashes_the_same_however_the_client_splits_text_or_orders_argument_keys():
    seed = continuity.seed("key1", "cfg")
    a = [
        _m("user", text_block("hello "), text_block("there")),
        _m(
            "assistant",
            text_block("hi"),
            {"type": "tool_use", "id": "t1", "name": "f", "input": {"a": 1, "b": 2}},
        ),
    ]
    b = [
        _m("user", text_block("hello there")),
        _m(
            "assistant",
            text_block("hi"),
            {"type": "tool_use", "id": "t1", "name": "f", "input": {"b": 2, "a": 1}},
        ),
    ]
    assert continuity.chain(seed, a) == continuity.chain(seed, b)


def test_histories_of_different_callers_or_configurations_never_share_a_key():
    msgs = [_m("user", text_block("hello"))]
    keys = {
        continuity.key_after(continuity.seed(scope, cfg), msgs)
        for scope, cfg in (("k1", "c1"), ("k2", "c1"), ("k1", "c2"))
    }
    assert len(keys) == 3


def test_each_prefix_has_its_own_key_and_a_changed_message_changes_every_key_after_it():
    seed = continuity.seed("k", "c")
    msgs = [_m("user", text_block(str(i))) for i in range(4)]
    keys = continuity.chain(seed, msgs)
    assert len(set(keys)) == 4
    edited = [*msgs[:2], _m("user", text_block("other")), msgs[3]]
    changed = continuity.chain(seed, edited)
    assert changed[:2] == keys[:2] and not set(changed[2:]) & set(keys)


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("93.184.216.34", True),
        ("2606:2800:220:1:248:1893:25c8:1946", True),
        ("127.0.0.1", False),
        ("10.1.2.3", False),
        ("172.16.0.1", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),  # cloud metadata
        ("100.64.0.1", False),  # carrier-grade NAT
        ("0.0.0.0", False),
        ("::1", False),
        ("fe80::1", False),
        ("fc00::1", False),
        ("::ffff:127.0.0.1", False),  # IPv4-mapped loopback
        ("::ffff:169.254.169.254", False),
        ("2002:7f00:1::", False),  # 6to4 of 127.0.0.1
        ("224.0.0.1", False),
        ("198.51.100.7", False),  # documentation range
    ],
)
def test_only_public_addresses_pass_the_image_guard(address, public):
    assert images.public_address(address) is public


def test_data_urls_must_hold_a_real_image():
    png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
    block = images.from_data_url(f"data:image/jpeg;base64,{png}", "p")
    assert block["source"]["media_type"] == "image/png"  # the bytes decide, not the label
    with pytest.raises(GatewayError, match="not a PNG"):
        images.from_data_url("data:image/png;base64,aGVsbG8=", "p")
    with pytest.raises(GatewayError, match="base64"):
        images.from_data_url("data:image/png;base64,%%%", "p")


def test_settings_refuse_unknown_names_and_bad_values(monkeypatch, tmp_path):
    monkeypatch.setenv("NEXUS_GATEWAY_MAX_SESION", "3")
    with pytest.raises(SettingsError, match="NEXUS_GATEWAY_MAX_SESION"):
        load()
    monkeypatch.delenv("NEXUS_GATEWAY_MAX_SESION")
    conf = tmp_path / "gw.toml"
    conf.write_text('max_sessions = 3\nbuiltin_tools = ["Read"]\nbogus = 1\n')
    monkeypatch.setenv("NEXUS_GATEWAY_CONFIG", str(conf))
    with pytest.raises(SettingsError, match="bogus"):
        load()
    conf.write_text('max_sessions = 3\nbuiltin_tools = ["Read"]\n')
    monkeypatch.setenv("NEXUS_GATEWAY_WARM_SPARES", "5")
    s = load()
    assert (s.max_sessions, s.warm_spares, s.builtin_tools) == (3, 5, ["Read"])  # environment wins
    monkeypatch.setenv("NEXUS_GATEWAY_MAX_SESSIONS", "lots")
    with pytest.raises(SettingsError, match="max_sessions"):
        load()


def _dialogue(body: dict):
    return asyncio.run(chat_request.dialogue(chat_request.parse(body), images.FetchLimits()))


def test_chat_messages_become_alternating_anthropic_turns():
    d = _dialogue(
        {
            "model": "opus",
            "messages": [
                {"role": "system", "content": "S1"},
                {"role": "user", "content": "a"},
                {"role": "user", "content": [{"type": "text", "text": "b"}]},
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"x":1}'}}
                    ],
                },
                {"role": "tool", "tool_call_id": "c1", "content": "42"},
                {"role": "user", "content": "and?"},
            ],
            "max_completion_tokens": 50,
        }
    )
    assert d.system == "S1" and d.model.upstream == "claude-opus-5-5" and d.max_tokens == 50
    assert [m.role for m in d.messages] == ["user", "assistant", "user"]
    assert d.messages[0].content == [text_block("a"), text_block("b")]
    assert d.messages[2].content == [
        {"type": "tool_result", "tool_use_id": "c1", "content": "42"},
        text_block("and?"),
    ]


def test_a_tool_result_for_no_call_is_refused():
    with pytest.raises(GatewayError, match="does not answer a tool call"):
        _dialogue({"model": "sonnet", "messages": [{"role": "tool", "tool_call_id": "x", "content": "1"}]})


def test_the_relay_removes_claude_codes_image_path_notes_and_nothing_else():
    import orjson
    from nexus_gateway.engine.relay import scrub

    plain = b'{"messages":[{"role":"user","content":"[Image: source: mine]  is my text"}]}'
    assert scrub(plain) is plain
    body = orjson.dumps(
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "look"},
                        {
                            "type": "image",
                            "source": {"type": "base64", "media_type": "image/png", "data": "x"},
                        },
                        {
                            "type": "text",
                            "text": "[Image: source: /tmp/claude-0/-x/1b2/images/1.png]",
                            "cache_control": {"type": "ephemeral"},
                        },
                    ],
                }
            ]
        }
    )
    content = orjson.loads(scrub(body))["messages"][0]["content"]
    assert [b["type"] for b in content] == ["text", "image"]
    assert content[-1]["cache_control"] == {"type": "ephemeral"}  # the cache marker stays on the last block


def test_the_relay_leaves_the_clients_system_prompt_alone_and_only_it():
    from nexus_gateway.engine.relay import PREAMBLE, scrub

    mine = b'{"type":"text","text":"mine","cache_control":{"type":"ephemeral"}}'
    assert (
        scrub(b'{"system":[' + PREAMBLE + b"," + mine + b'],"tools":[]}')
        == b'{"system":[' + mine + b'],"tools":[]}'
    )
    assert scrub(b'{"model":"m","system":[' + PREAMBLE + b'],"tools":[]}') == b'{"model":"m","tools":[]}'
    quoted = b'{"messages":[{"role":"user","content":"the preamble says You are a Claude agent"}]}'
    assert scrub(quoted) is quoted


def test_the_openapi_document_requires_the_key_where_keys_are_required(tmp_path) -> None:
    from nexus.secret_store import LocalSecretStore
    from nexus_gateway.app import create_app
    from nexus_gateway.settings import GatewaySettings

    def doc(require_keys: bool) -> dict:
        settings = GatewaySettings(data_dir=tmp_path, require_keys=require_keys)
        return create_app(settings, LocalSecretStore(tmp_path / "secrets.json")).openapi()

    required, optional = doc(True), doc(False)
    chat = required["paths"]["/v1/chat/completions"]["post"]
    assert chat["security"] == [{"nexusKey": []}]
    assert optional["paths"]["/v1/chat/completions"]["post"]["security"] == [{"nexusKey": []}, {}]
    assert required["paths"]["/health"]["get"]["security"] == []
    assert required["components"]["securitySchemes"]["nexusKey"]["scheme"] == "bearer"
    assert "HTTPValidationError" not in required["components"]["schemas"]
    error = required["components"]["schemas"]["Error"]["properties"]["error"]
    assert error["required"] == ["message", "type", "param", "code"]
