"""Nexus client keys: who may use the proxy, and which credential goes upstream per team mode."""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from tests.integration.http import CLAUDE_HEADERS, post
from tests.support.stack import NEXUS, Stack, running_stack

pytestmark = pytest.mark.shared_stack

BODY = b'{"model":"claude-opus-5-5","max_tokens":5,"stream":true,"messages":[{"role":"user","content":"hi"}]}'


@pytest.fixture(scope="module")
def keyed(pg_server, fake_upstream, tmp_path_factory):
    """A stack that requires Nexus keys, with a pass-through team and a team-key team."""

    def configure(s: Stack) -> None:
        assert s.nexus("teams", "set-mode", "corp", "team-key").returncode == 0
        assert s.nexus("teams", "set-api-key", "corp", input="sk-ant-team-corp-key\n").returncode == 0
        s.client_keys = {}
        for team, user in (("oss", "ada"), ("corp", "bob")):
            out = s.nexus("keys", "create", "--team", team, "--user", user)
            assert out.returncode == 0, out.stderr
            s.client_keys[user] = out.stdout.strip()

    with running_stack(
        pg_server, fake_upstream, tmp_path_factory.mktemp("keyed"), keys="required", before_start=configure
    ) as s:
        yield s


def _no_secret_key(headers: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k not in ("x-api-key", "authorization")}


def _auth_error(r, says: str) -> None:
    assert r.status == 401
    doc = r.json()
    assert doc == {
        "type": "error",
        "error": {"type": "authentication_error", "message": doc["error"]["message"]},
    }
    assert says in doc["error"]["message"]


def test_key_is_printed_once_and_only_its_hash_is_stored(keyed):
    secrets = (keyed.data_dir / "secrets.json").read_text()
    for key in keyed.client_keys.values():
        assert key.startswith("nxk_") and key not in secrets
    listed = json.loads(keyed.nexus("keys", "list", "--json").stdout)
    assert {(k["team"], k["user"]) for k in listed} == {("oss", "ada"), ("corp", "bob")}
    assert all(k not in json.dumps(listed) for k in keyed.client_keys.values())


def test_passthrough_sends_the_clients_own_credentials(keyed, upstream):
    headers = {**CLAUDE_HEADERS, "x-nexus-key": keyed.client_keys["ada"], "x-claude-code-session-id": "pt-1"}
    r = post(keyed.proxy_url, "/v1/messages?beta=true", BODY, headers)
    assert r.status == 200
    seen = upstream.messages_requests()[-1]
    assert seen.header("x-api-key") == CLAUDE_HEADERS["x-api-key"]
    assert seen.header("x-nexus-key") is None, "the Nexus key must not leak upstream"
    (row,) = keyed.wait_count(1, session_id="pt-1")
    assert (row["team"], row["user"]) == ("oss", "ada")


def test_passthrough_with_oauth_bearer(keyed, upstream):
    headers = {
        **_no_secret_key(CLAUDE_HEADERS),
        "authorization": "Bearer sk-ant-oat01-user-token",
        "anthropic-beta": "oauth-2025-04-20",
        "x-nexus-key": keyed.client_keys["ada"],
    }
    assert post(keyed.proxy_url, "/v1/messages", BODY, headers).status == 200
    seen = upstream.messages_requests()[-1]
    assert seen.header("authorization") == "Bearer sk-ant-oat01-user-token"
    assert seen.header("anthropic-beta") == "oauth-2025-04-20"


@pytest.mark.parametrize("how", ["x-api-key", "bearer"])
def test_team_key_mode_sends_the_teams_key(keyed, upstream, how):
    key = keyed.client_keys["bob"]
    auth = {"x-api-key": key} if how == "x-api-key" else {"authorization": f"Bearer {key}"}
    headers = {**_no_secret_key(CLAUDE_HEADERS), **auth, "x-claude-code-session-id": f"tk-{how}"}
    assert post(keyed.proxy_url, "/v1/messages", BODY, headers).status == 200
    seen = upstream.messages_requests()[-1]
    assert seen.header("x-api-key") == "sk-ant-team-corp-key"
    assert seen.header("authorization") is None
    (row,) = keyed.wait_count(1, session_id=f"tk-{how}")
    assert (row["team"], row["user"]) == ("corp", "bob")


def test_missing_wrong_and_mismatched_keys_get_anthropic_401(keyed, upstream):
    _auth_error(post(keyed.proxy_url, "/v1/messages", BODY), "missing Nexus key")
    _auth_error(
        post(keyed.proxy_url, "/v1/messages", BODY, {**CLAUDE_HEADERS, "x-nexus-key": "nxk_abc_def"}),
        "invalid Nexus key",
    )
    # a pass-through member sending the Nexus key as the API key, and the reverse
    _auth_error(
        post(
            keyed.proxy_url, "/v1/messages", BODY, {**CLAUDE_HEADERS, "x-api-key": keyed.client_keys["ada"]}
        ),
        "uses pass-through",
    )
    _auth_error(
        post(
            keyed.proxy_url, "/v1/messages", BODY, {**CLAUDE_HEADERS, "x-nexus-key": keyed.client_keys["bob"]}
        ),
        "uses a team key",
    )
    assert upstream.seen == []


def test_revoked_key_stops_working_without_restart(keyed, upstream, tmp_path):
    out = keyed.nexus("keys", "create", "--team", "oss", "--user", "eve")
    key = out.stdout.strip()
    headers = {**CLAUDE_HEADERS, "x-nexus-key": key}
    assert post(keyed.proxy_url, "/v1/messages", BODY, headers).status == 200
    key_id = key.split("_")[1]
    revoked = keyed.nexus("keys", "revoke", key_id)
    assert revoked.returncode == 0 and "revoked" in revoked.stdout
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        r = post(keyed.proxy_url, "/v1/messages", BODY, headers)
        if r.status == 401:
            break
        time.sleep(0.2)
    _auth_error(r, "revoked")
    assert "revoked" in keyed.nexus("keys", "list").stdout


def test_cli_errors_are_readable(keyed):
    out = keyed.nexus("keys", "revoke", "doesnotexist")
    assert (
        out.returncode == 2
        and out.stderr.startswith("nexus: no key with id")
        and "Traceback" not in out.stderr
    )


def test_refuses_to_listen_beyond_localhost_without_keys(tmp_path):
    out = subprocess.run(
        [str(NEXUS), "dev", "--host", "0.0.0.0", "--keys", "optional", "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2
    assert "refusing to listen on 0.0.0.0 without keys" in out.stderr


def test_open_mode_says_so_when_it_starts(stack):
    assert "keys       optional (listening on localhost only)" in stack.log()
