"""Claude subscriptions (OAuth) through Nexus: a member's own login passes through and is recorded by
its fingerprint; a team's stored credential is used by the proxy and renewed by exactly one
refresher, against a scripted token endpoint the tests own; the fake upstream checks every bearer."""

from __future__ import annotations

import contextlib
import json
import re
import threading
import time
from collections.abc import Iterator

import anthropic
import pytest
from nexus.headers import fingerprint

from tests.support.claude_cli import run_claude
from tests.support.fake_oauth import FakeTokenEndpoint
from tests.support.stack import Stack, running_stack

OLD_ACCESS = "sk-ant-oat01-team-old-access"
OLD_REFRESH = "sk-ant-ort01-team-old-refresh"


@pytest.fixture
def tokens(upstream) -> Iterator[FakeTokenEndpoint]:
    upstream.accepts = {OLD_ACCESS}
    endpoint = FakeTokenEndpoint(on_new_token=upstream.accepts.add).start()
    endpoint.valid_refresh.add(OLD_REFRESH)
    yield endpoint
    endpoint.stop()


def _credential(expires_in_s: float, refresh: str = OLD_REFRESH) -> str:
    return json.dumps(
        {"access_token": OLD_ACCESS, "refresh_token": refresh, "expires_at": time.time() + expires_in_s}
    )


@contextlib.contextmanager
def _team_stack(
    pg_server, upstream, tmp_path, tokens: FakeTokenEndpoint, credential: str
) -> Iterator[tuple[Stack, str]]:
    keys: list[str] = []

    def prepare(s: Stack) -> None:
        out = s.nexus("keys", "create", "--team", "max", "--user", "ada")
        assert out.returncode == 0, out.stderr
        keys.append(re.search(r"nxk_\S+", out.stdout).group(0))  # type: ignore[union-attr]
        made = s.nexus("teams", "set-oauth", "max", input=credential)
        assert made.returncode == 0, made.stderr
        assert OLD_ACCESS not in made.stdout and fingerprint(OLD_ACCESS) in made.stdout  # never the token

    env = {"NEXUS_OAUTH_TOKEN_URL": tokens.url}
    with running_stack(pg_server, upstream, tmp_path / "nexus", env=env, before_start=prepare) as s:
        yield s, keys[0]


def _ask(stack: Stack, key: str, text: str = "hello") -> anthropic.types.Message:
    client = anthropic.Anthropic(base_url=stack.proxy_url, api_key=key, max_retries=0)
    return client.messages.create(
        model="claude-sonnet-4-5", max_tokens=20, messages=[{"role": "user", "content": text}]
    )


def _bearers(upstream) -> list[str]:
    return [s.header("authorization") for s in upstream.messages_requests()]


def _stored(stack: Stack) -> dict:
    doc = json.loads((stack.data_dir / "secrets.json").read_text())
    return json.loads(doc["nexus/team/max/oauth"])


def test_a_token_near_expiry_is_renewed_once_while_requests_keep_succeeding(
    pg_server, upstream, tmp_path, tokens
):
    tokens.gate.clear()  # a slow token endpoint: it answers when the test says so
    # 290 s left: inside the five minutes before expiry, so the refresher renews it at once.
    with _team_stack(pg_server, upstream, tmp_path, tokens, _credential(290)) as (stack, key):
        deadline = time.monotonic() + 20
        while not tokens.calls:
            assert time.monotonic() < deadline, "the refresher did not start a refresh"
            time.sleep(0.05)
        failures: list[BaseException] = []

        def worker() -> None:
            for _ in range(6):
                try:
                    _ask(stack, key)
                except BaseException as exc:
                    failures.append(exc)
                time.sleep(0.3)

        threads = [threading.Thread(target=worker) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        # 48 requests went while the refresh was in flight: all with the old, still valid token.
        assert failures == [] and set(_bearers(upstream)) == {f"Bearer {OLD_ACCESS}"}
        tokens.gate.set()
        deadline = time.monotonic() + 20
        while not tokens.issued and time.monotonic() < deadline:
            time.sleep(0.1)
        new_token = tokens.issued[0]
        deadline = time.monotonic() + 10
        while True:  # the proxy picks the new token up at its next access check
            _ask(stack, key)
            if _bearers(upstream)[-1] == f"Bearer {new_token}" or time.monotonic() > deadline:
                break
            time.sleep(0.2)

        assert failures == []  # every request succeeded, before, during and after the refresh
        assert len(tokens.calls) == 1  # exactly one refresh
        assert tokens.calls[0]["refresh_token"] == OLD_REFRESH
        assert _bearers(upstream)[-1] == f"Bearer {new_token}"  # the new token is in use
        assert {b for b in _bearers(upstream)} <= {f"Bearer {OLD_ACCESS}", f"Bearer {new_token}"}
        seen = upstream.messages_requests()[-1]
        assert "oauth-2025-04-20" in seen.header("anthropic-beta")
        stored = _stored(stack)
        assert stored["refresh_token"] in tokens.valid_refresh  # the rotated refresh token is kept
        assert stored["status"] == "ok" and stored["expires_at"] > time.time() + 7 * 3600

        # The records carry the credential's fingerprint, never the token.
        rows = stack.wait_count(len(upstream.messages_requests()), team="max")  # every one recorded
        accounts = [stack.api(f"/api/requests/{r['id']}")[1]["account"] for r in (rows[0], rows[-1])]
        assert accounts == [fingerprint(new_token), fingerprint(OLD_ACCESS)]
        listed = stack.nexus("teams", "list")
        assert "oauth ok" in listed.stdout and new_token not in listed.stdout


def test_a_refused_refresh_token_asks_for_a_new_sign_in_once(pg_server, upstream, tmp_path, tokens):
    credential = _credential(200, refresh="sk-ant-ort01-revoked")
    with _team_stack(pg_server, upstream, tmp_path, tokens, credential) as (stack, key):
        deadline = time.monotonic() + 20
        while _stored(stack)["status"] != "relogin_needed":
            assert time.monotonic() < deadline, "the credential was not marked"
            time.sleep(0.2)
        time.sleep(5)  # two more refresher passes: no retry loop
        assert len(tokens.calls) == 1
        assert "invalid_grant" in _stored(stack)["error"]
        assert "credential_failed" in stack.log()  # the alert (delivered by the configured notifier)
        assert "revoked" not in stack.log()  # not even the refresh token's text
        assert _ask(stack, key).content  # the old token still works until it expires
        assert "relogin_needed" in stack.nexus("teams", "list").stdout


def test_a_401_on_the_team_token_gets_it_renewed_early(pg_server, upstream, tmp_path, tokens):
    with _team_stack(pg_server, upstream, tmp_path, tokens, _credential(8 * 3600)) as (stack, key):
        assert _ask(stack, key).content
        upstream.accepts.discard(OLD_ACCESS)  # revoked upstream, long before its expiry
        with pytest.raises(anthropic.AuthenticationError):
            _ask(stack, key)
        deadline = time.monotonic() + 20
        while not tokens.issued:  # the proxy asked; the refresher renews within its next pass
            assert time.monotonic() < deadline, "no early refresh"
            time.sleep(0.1)
        deadline = time.monotonic() + 10
        while True:
            try:
                _ask(stack, key)
                break
            except anthropic.AuthenticationError:
                assert time.monotonic() < deadline, "the new token was not picked up"
                time.sleep(0.3)
        assert _bearers(upstream)[-1] == f"Bearer {tokens.issued[0]}" and len(tokens.calls) == 1


@pytest.mark.cli
def test_a_members_own_subscription_passes_through_and_is_recorded_by_fingerprint(stack, upstream, tmp_path):
    token = "sk-ant-oat01-ada-own-subscription"
    upstream.accepts = {token}
    out = stack.nexus("keys", "create", "--team", "solo", "--user", "ada")
    key = re.search(r"nxk_\S+", out.stdout).group(0)  # type: ignore[union-attr]
    result = run_claude(
        stack.proxy_url,
        tmp_path / "home",
        tmp_path / "project",
        "-p",
        "hello from my own plan",
        "--model",
        "claude-sonnet-4-5",
        headers=f"X-Nexus-Key: {key}",
        oauth_token=token,
    )
    assert result["is_error"] is False
    seen = upstream.messages_requests()[-1]
    assert seen.header("authorization") == f"Bearer {token}" and seen.header("x-nexus-key") is None
    [row] = stack.wait_count(1, team="solo")
    _, detail = stack.api(f"/api/requests/{row['id']}")
    assert detail["account"] == fingerprint(token) and row["user"] == "ada" and row["status"] == 200
    assert token not in json.dumps(detail)
