"""The seed project's conversation API, the operator's endpoints, images fetched by URL, and the
whole API against its OpenAPI document (schemathesis)."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import openai
import pytest
import schemathesis

from tests.conftest import strict_skips
from tests.gateway.conftest import Gateway
from tests.support import openapi_run
from tests.support.fake_upstream import text_reply

PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c63f8cfc0500f0004850180848a98"
    "8d0000000049454e44ae426082"
)


def _call(gateway: Gateway, method: str, path: str, body: dict | None = None, key: str | None = None):
    req = urllib.request.Request(
        gateway.url + path, data=json.dumps(body).encode() if body is not None else None, method=method
    )
    req.add_header("authorization", f"Bearer {key or gateway.key}")
    req.add_header("content-type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_conversations_created_continued_by_id_listed_and_read(gateway: Gateway, upstream):
    status, conv = _call(gateway, "POST", "/conversations", {"model": "sonnet", "metadata": {"project": "x"}})
    assert status == 200 and conv["id"].startswith("conv_") and conv["turns"] == 0
    client = gateway.client()
    upstream.enqueue(text_reply("Nice to meet you, Ada."), text_reply("Your name is Ada."))
    first = client.chat.completions.create(
        model="sonnet",
        messages=[{"role": "user", "content": "My name is Ada"}],
        extra_body={"conversation_id": conv["id"]},
    )
    second = client.chat.completions.create(
        model="sonnet",
        messages=[{"role": "user", "content": "What is my name?"}],  # only the new message: the seed's API
        extra_body={"conversation_id": conv["id"]},
    )
    assert second.choices[0].message.content == "Your name is Ada."
    assert first.model_extra["conversation_id"] == second.model_extra["conversation_id"] == conv["id"]
    roles = [m["role"] for m in upstream.messages_requests()[1].json()["messages"] if m["role"] != "system"]
    assert roles == ["user", "assistant", "user"]  # the second turn continued the same session

    status, got = _call(gateway, "GET", f"/conversations/{conv['id']}")
    assert status == 200 and got["turns"] == 2 and got["metadata"] == {"project": "x"}
    assert [(m["role"], m["content"]) for m in got["messages"]] == [
        ("user", "My name is Ada"),
        ("assistant", "Nice to meet you, Ada."),
        ("user", "What is my name?"),
        ("assistant", "Your name is Ada."),
    ]
    assert got["usage"]["completion_tokens"] == 24 and got["usage"]["prompt_tokens"] == 200
    status, listed = _call(gateway, "GET", "/conversations?limit=100")
    assert status == 200 and conv["id"] in [c["id"] for c in listed["data"]]
    status, missing = _call(gateway, "GET", "/conversations/conv_nope")
    assert status == 404 and missing["error"]["code"] == "conversation_not_found"
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(
            model="sonnet",
            messages=[{"role": "user", "content": "x"}],
            extra_body={"conversation_id": "conv_nope"},
        )


def test_conversation_input_is_checked_and_a_nul_is_kept_readable(gateway: Gateway, upstream):
    """Found by the OpenAPI suite: a non-string model or system answered 500 or was stored as given,
    and text with U+0000 (which PostgreSQL cannot hold) answered 500."""
    for body, param in (({"model": 5}, "model"), ({"system": ["x"]}, "system"), ({"system": {}}, "system")):
        status, doc = _call(gateway, "POST", "/conversations", body)
        assert status == 400 and doc["error"]["param"] == param, doc
    status, conv = _call(
        gateway, "POST", "/conversations", {"system": "a\u0000b", "metadata": {"k": "v\u0000"}}
    )
    assert status == 200, conv
    status, got = _call(gateway, "GET", f"/conversations/{conv['id']}")
    assert status == 200 and got["system"] == "a\u2400b" and got["metadata"] == {"k": "v\u2400"}
    status, doc = _call(gateway, "GET", "/conversations/conv_%00")
    assert status == 404 and doc["error"]["code"] == "conversation_not_found"
    assert _call(gateway, "GET", "/conversations?after=conv_%00") == (
        200,
        {"object": "list", "data": [], "has_more": False, "last_id": None},
    )
    with pytest.raises(openai.NotFoundError):
        gateway.client().chat.completions.create(
            model="sonnet",
            messages=[{"role": "user", "content": "x"}],
            extra_body={"conversation_id": "c\u0000"},
        )
    assert upstream.messages_requests() == []


def test_forgetting_a_memory_item_by_an_id_with_a_nul_is_a_404(gateway: Gateway):
    """PostgreSQL refused the id (500). Found reading the memory routes for the OpenAPI suite."""
    status, doc = _call(gateway, "DELETE", "/memory/mem_%00")
    assert status == 404 and doc["error"]["code"] == "memory_item_not_found", doc


def test_a_wrong_method_is_told_every_method_the_path_allows(gateway: Gateway):
    req = urllib.request.Request(gateway.url + "/conversations", method="DELETE")
    req.add_header("authorization", f"Bearer {gateway.key}")
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(req, timeout=10)
    assert info.value.code == 405 and info.value.headers["allow"] == "GET, POST"  # was "POST"
    assert json.loads(info.value.read())["error"]["message"] == "DELETE is not allowed on /v1/conversations."


def test_stats_health_and_ready(gateway: Gateway):
    with urllib.request.urlopen(gateway.url.removesuffix("/v1") + "/health", timeout=5) as r:
        assert json.loads(r.read()) == {"status": "ok"}
    with urllib.request.urlopen(gateway.url.removesuffix("/v1") + "/ready", timeout=5) as r:
        assert json.loads(r.read())["status"] == "ready"
    stats = gateway.stats()
    assert {"workers", "idle", "busy", "suspended", "queued", "max"} <= set(stats["pool"])
    assert stats["requests"] >= 1 and stats["first_delta_ms"]["p50"] > 0
    assert {"cache_hits", "errors", "rejected", "resumes"} <= set(stats)


def test_reasoning_effort_turns_on_adaptive_thinking_with_that_effort(gateway: Gateway, upstream):
    upstream.enqueue(text_reply("Thought about it."))
    r = gateway.client().chat.completions.create(
        model="opus", messages=[{"role": "user", "content": "Think"}], reasoning_effort="high"
    )
    assert r.choices[0].message.content == "Thought about it."
    body = upstream.messages_requests()[0].json()
    assert body["thinking"]["type"] == "adaptive"
    assert "high" in json.dumps(body)


# --- images by URL: a server on a public address (added to loopback for the test) ----------------

PUBLIC = "93.184.216.34"


class _Images(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        port = self.server.server_address[1]
        routes = {
            "/pixel.png": (200, {"content-type": "image/png"}, PNG),
            "/not-an-image": (200, {"content-type": "image/png"}, b"<html>surprise</html>"),
            "/to-loopback": (302, {"location": f"http://127.0.0.1:{port}/pixel.png"}, b""),
            "/to-metadata": (302, {"location": "http://169.254.169.254/latest/meta-data/"}, b""),
            "/huge.png": (200, {"content-type": "image/png"}, PNG + b"\0" * (6 * 1024 * 1024)),
        }
        status, headers, body = routes.get(self.path, (404, {}, b""))
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def image_host() -> Iterator[str]:
    added = subprocess.run(["ip", "addr", "add", f"{PUBLIC}/32", "dev", "lo"], capture_output=True)
    if added.returncode != 0 and b"File exists" not in added.stderr:
        reason = f"cannot give loopback a public address for the test: {added.stderr.decode().strip()}"
        if strict_skips():
            pytest.fail(reason)
        pytest.skip(reason)
    server = ThreadingHTTPServer((PUBLIC, 0), _Images)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://{PUBLIC}:{server.server_address[1]}"
    finally:
        server.shutdown()
        subprocess.run(["ip", "addr", "del", f"{PUBLIC}/32", "dev", "lo"], capture_output=True)


def _image(gateway: Gateway, url: str):
    return gateway.client().chat.completions.create(
        model="sonnet",
        messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]}],
    )


def test_an_image_url_on_a_public_host_is_fetched_and_sent_as_an_image(
    gateway: Gateway, upstream, image_host
):
    upstream.enqueue(text_reply("One pixel."))
    assert _image(gateway, image_host + "/pixel.png").choices[0].message.content == "One pixel."
    user = [m for m in upstream.messages_requests()[0].json()["messages"] if m["role"] == "user"]
    content = user[-1]["content"]
    assert content[0]["type"] == "image" and content[0]["source"]["media_type"] == "image/png"


@pytest.mark.parametrize(
    ("path", "says"),
    [
        ("/to-loopback", "non-public address (127.0.0.1)"),
        ("/to-metadata", "non-public address (169.254.169.254)"),
        ("/not-an-image", "not a PNG"),
        ("/huge.png", "larger than"),
        ("/missing.png", "HTTP 404"),
    ],
)
def test_image_urls_that_redirect_inward_or_are_no_image_are_refused(
    gateway: Gateway, upstream, image_host, path, says
):
    with pytest.raises(openai.BadRequestError) as info:
        _image(gateway, image_host + path)
    assert says in info.value.body["message"]
    assert upstream.messages_requests() == []


# --- the whole API against its OpenAPI document ------------------------------------------------------
# Here, on this module's gateway, rather than on a stack of its own: a gateway takes about 20 s to
# start. Last in the module: it creates conversations the tests above do not expect.

OPENAPI_EXAMPLES = int(os.environ.get("NEXUS_GATEWAY_OPENAPI_EXAMPLES", "10"))


@pytest.fixture(scope="module")
def gateway_schema(gateway: Gateway):
    headers = {"Authorization": f"Bearer {gateway.key}"}
    config = openapi_run.config(headers, max_examples=OPENAPI_EXAMPLES)
    schema = schemathesis.openapi.from_url(gateway.url.removesuffix("/v1") + "/openapi.json", config=config)
    schema.statuses = openapi_run.count_statuses(schema)  # type: ignore[attr-defined]
    return schema


def test_the_document_says_what_each_operation_takes_and_answers(gateway_schema) -> None:
    from nexus_gateway import openapi

    doc = gateway_schema.raw_schema
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            assert (method, path) in openapi.OPERATIONS or (method, path) in openapi.OPEN, (method, path)
            codes = set(op["responses"])
            assert "422" not in codes, (method, path)  # bad input is a 400 here
            if path in ("/health", "/ready"):
                assert op["security"] == [], path  # for health checks, without a key
                continue
            assert "401" in codes and op["security"] == [{"nexusKey": []}, {}], (
                method,
                path,
            )  # optional here
            assert ("404" in codes) == ("{" in path or method == "post"), (method, path)
            model_call = path in ("/v1/chat/completions", "/v1/responses")
            assert ("403" in codes) == (model_call or path.startswith("/v1/memory")), (method, path)
            for code in codes - {"200"}:
                error = op["responses"][code]["content"]["application/json"]["schema"]
                assert error == {"$ref": "#/components/schemas/Error"}, (method, path, code)
    chat = doc["paths"]["/v1/chat/completions"]["post"]
    assert chat["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/ChatCompletionRequest"
    )
    assert set(chat["responses"]["200"]["content"]) == {"application/json", "text/event-stream"}
    assert {"400", "429", "502", "504"} <= set(chat["responses"])
    messages = doc["components"]["schemas"]["ChatCompletionRequest"]["properties"]["messages"]
    assert messages["items"] == {"$ref": "#/components/schemas/ChatMessage"}


def test_the_api_keeps_to_its_openapi_document(gateway: Gateway, gateway_schema, upstream) -> None:
    """Every phase and default check of schemathesis, authenticated with a Nexus key: no 5xx, only
    documented statuses, content types and headers, errors in OpenAI's shape, 405 with every allowed
    method. Model calls stay few (the settings bound their cases; most are refused as bad input or
    an unknown model), and are answered by the scripted upstream at once."""
    turns_before = gateway.stats()["requests"]
    scenarios, findings = openapi_run.run(gateway_schema)
    statuses = gateway_schema.statuses
    assert scenarios >= 10, scenarios  # every operation was exercised
    assert statuses[200] > 50 and statuses[400] > 50, statuses  # both valid and invalid input got through
    assert not findings, "\n".join(findings)
    assert gateway.stats()["requests"] - turns_before <= 10 * max(1, OPENAPI_EXAMPLES // 10)
