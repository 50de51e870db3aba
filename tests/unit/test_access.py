"""nexus.access: Nexus keys, team modes and per-request authorisation."""

from __future__ import annotations

import hashlib
import stat

import pytest
from nexus.access import AccessStore, Authenticator, AuthError, UnknownKey
from nexus.secret_store import LocalSecretStore

CLIENT_KEY = "sk-ant-api03-client-own-credential-000000"
OAUTH_TOKEN = "sk-ant-oat01-client-oauth-token-000000"
TEAM_UPSTREAM_KEY = "sk-ant-api03-team-upstream-key-111111"


@pytest.fixture
def store(tmp_path):
    return LocalSecretStore(tmp_path / "secrets.json")


@pytest.fixture
def access(store):
    return AccessStore(store)


@pytest.fixture
def passthrough_key(access):
    access.set_team("pt", "passthrough")
    key, _ = access.create_key("pt", "ada")
    return key


@pytest.fixture
def teamkey_key(access):
    access.set_team("tk", "team-key")
    access.set_team_api_key("tk", TEAM_UPSTREAM_KEY)
    key, _ = access.create_key("tk", "bob")
    return key


def auth(store, require_keys: bool = True) -> Authenticator:
    return Authenticator(store, require_keys=require_keys, refresh_s=0)


def test_create_key_stores_only_its_hash(tmp_path, access):
    key, rec = access.create_key("acme", "ada", name="laptop")
    assert key.startswith(f"nxk_{rec.id}_")
    secret_part = key.split("_", 2)[2]
    assert len(secret_part) >= 24
    assert rec.hash == hashlib.sha256(key.encode()).hexdigest()

    text = (tmp_path / "secrets.json").read_text()
    assert key not in text
    assert secret_part not in text
    assert rec.hash in text
    assert stat.S_IMODE((tmp_path / "secrets.json").stat().st_mode) == 0o600

    stored = access.keys()[rec.id]
    assert (stored.team, stored.user, stored.name, stored.revoked_at) == ("acme", "ada", "laptop", None)


def test_create_key_gives_new_team_passthrough_and_keeps_existing_mode(access):
    access.create_key("fresh", "ada")
    access.set_team("tk", "team-key")
    access.create_key("tk", "bob")
    assert access.teams()["fresh"]["mode"] == "passthrough"
    assert access.teams()["tk"]["mode"] == "team-key"


def test_keys_are_unique(access):
    keys = {access.create_key("acme", f"u{i}")[0] for i in range(5)}
    assert len(keys) == 5
    assert len(access.keys()) == 5


def test_set_team_rejects_unknown_mode(access):
    with pytest.raises(ValueError, match="passthrough"):
        access.set_team("acme", "open")


def test_passthrough_team_keeps_client_credential_and_drops_nexus_key(store, access, passthrough_key):
    grant = auth(store).authorize({"x-nexus-key": passthrough_key, "x-api-key": CLIENT_KEY})
    assert grant.principal.team == "pt"
    assert grant.principal.user == "ada"
    assert grant.principal.key_id == next(iter(access.keys()))
    assert grant.principal.mode == "passthrough"
    assert grant.drop == ("x-nexus-key",)
    assert grant.set == ()
    assert grant.credential == CLIENT_KEY


def test_passthrough_team_accepts_client_oauth_bearer(store, passthrough_key):
    grant = auth(store).authorize({"x-nexus-key": passthrough_key, "authorization": f"Bearer {OAUTH_TOKEN}"})
    assert "authorization" not in grant.drop
    assert grant.credential == OAUTH_TOKEN


def test_passthrough_without_own_credentials_is_refused(store, passthrough_key):
    with pytest.raises(AuthError, match="own Anthropic credentials"):
        auth(store).authorize({"x-nexus-key": passthrough_key})


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param(lambda k: {"x-api-key": k}, id="x-api-key"),
        pytest.param(lambda k: {"authorization": f"Bearer {k}"}, id="bearer"),
        pytest.param(lambda k: {"authorization": f"bearer  {k} "}, id="bearer-lowercase-spaces"),
    ],
)
def test_team_key_team_swaps_in_team_upstream_key(store, teamkey_key, headers):
    grant = auth(store).authorize(headers(teamkey_key))
    assert (grant.principal.team, grant.principal.user, grant.principal.mode) == ("tk", "bob", "team-key")
    assert set(grant.drop) == {"authorization", "x-api-key"}
    assert grant.set == (("x-api-key", TEAM_UPSTREAM_KEY),)
    assert grant.credential == TEAM_UPSTREAM_KEY


def test_team_key_team_without_upstream_key_is_refused(store, access):
    access.set_team("tk2", "team-key")
    key, _ = access.create_key("tk2", "bob")
    with pytest.raises(AuthError, match="no upstream API key"):
        auth(store).authorize({"x-api-key": key})


def _wrong_secret(key: str) -> str:
    # nxk_<id>_<secret>; the secret itself may contain "_", so split after the id only
    key_id, _, secret = key.removeprefix("nxk_").partition("_")
    return f"nxk_{key_id}_{'A' if secret[0] != 'A' else 'B'}{secret[1:]}"


@pytest.mark.parametrize(
    "make_headers",
    [
        pytest.param(lambda k: {"x-nexus-key": _wrong_secret(k), "x-api-key": CLIENT_KEY}, id="wrong-secret"),
        pytest.param(
            lambda k: {"x-nexus-key": "nxk_0000000000_abcdef", "x-api-key": CLIENT_KEY}, id="unknown-id"
        ),
        pytest.param(lambda k: {"x-nexus-key": "not-a-nexus-key", "x-api-key": CLIENT_KEY}, id="garbage"),
        pytest.param(lambda k: {"x-nexus-key": "", "x-api-key": CLIENT_KEY}, id="empty"),
        pytest.param(lambda k: {"x-api-key": _wrong_secret(k)}, id="wrong-secret-as-api-key"),
    ],
)
def test_wrong_key_is_refused_without_echoing_it(store, passthrough_key, make_headers):
    headers = make_headers(passthrough_key)
    with pytest.raises(AuthError, match="invalid Nexus key") as err:
        auth(store).authorize(headers)
    presented = headers.get("x-nexus-key") or headers.get("x-api-key")
    assert not presented or presented not in str(err.value)


@pytest.mark.parametrize(
    "headers",
    [{}, {"x-api-key": CLIENT_KEY}, {"authorization": f"Bearer {OAUTH_TOKEN}"}],
    ids=["nothing", "own-api-key", "own-oauth"],
)
def test_missing_key_is_refused_when_keys_are_required(store, passthrough_key, headers):
    with pytest.raises(AuthError, match="missing Nexus key"):
        auth(store).authorize(headers)


def test_passthrough_key_sent_as_api_key_explains_mode(store, passthrough_key):
    with pytest.raises(AuthError, match="pass-through") as err:
        auth(store).authorize({"x-api-key": passthrough_key})
    assert "X-Nexus-Key" in str(err.value)


def test_team_key_sent_as_nexus_header_explains_mode(store, teamkey_key):
    with pytest.raises(AuthError, match="team key") as err:
        auth(store).authorize({"x-nexus-key": teamkey_key, "x-api-key": CLIENT_KEY})
    assert "x-api-key" in str(err.value)


def test_open_mode_without_key(store):
    grant = auth(store, require_keys=False).authorize({"x-api-key": CLIENT_KEY})
    assert grant.principal.mode == "open"
    assert (grant.principal.team, grant.principal.user, grant.principal.key_id) == (None, None, None)
    assert (grant.drop, grant.set) == ((), ())
    assert grant.credential == CLIENT_KEY


def test_open_mode_still_checks_a_presented_key(store, passthrough_key):
    authn = auth(store, require_keys=False)
    assert authn.authorize({"x-nexus-key": passthrough_key, "x-api-key": CLIENT_KEY}).principal.team == "pt"
    with pytest.raises(AuthError, match="invalid Nexus key"):
        authn.authorize({"x-nexus-key": _wrong_secret(passthrough_key), "x-api-key": CLIENT_KEY})


def test_revocation_is_seen_after_refresh(store, access, passthrough_key):
    authn = auth(store)
    headers = {"x-nexus-key": passthrough_key, "x-api-key": CLIENT_KEY}
    key_id = authn.authorize(headers).principal.key_id
    revoked = access.revoke_key(key_id)
    assert revoked.revoked_at
    with pytest.raises(AuthError, match="revoked"):
        authn.authorize(headers)


def test_new_key_and_mode_change_are_seen_after_refresh(store, access, passthrough_key):
    authn = auth(store)
    authn.authorize({"x-nexus-key": passthrough_key, "x-api-key": CLIENT_KEY})  # warm the cache
    new_key, _ = access.create_key("pt", "eve")
    assert authn.authorize({"x-nexus-key": new_key, "x-api-key": CLIENT_KEY}).principal.user == "eve"
    access.set_team("pt", "team-key")
    access.set_team_api_key("pt", TEAM_UPSTREAM_KEY)
    assert authn.authorize({"x-api-key": new_key}).credential == TEAM_UPSTREAM_KEY


def test_revocation_waits_for_the_refresh_interval(store, access, passthrough_key, monkeypatch):
    import nexus.access as access_mod

    now = [1000.0]

    class FakeTime:
        @staticmethod
        def monotonic() -> float:
            return now[0]

    monkeypatch.setattr(access_mod, "time", FakeTime)
    authn = Authenticator(store, require_keys=True, refresh_s=30)
    headers = {"x-nexus-key": passthrough_key, "x-api-key": CLIENT_KEY}
    key_id = authn.authorize(headers).principal.key_id
    access.revoke_key(key_id)
    now[0] += 10
    assert authn.authorize(headers).principal.key_id == key_id  # still cached
    now[0] += 21
    with pytest.raises(AuthError, match="revoked"):
        authn.authorize(headers)


def test_revoking_an_unknown_key_raises_unknown_key(access):
    with pytest.raises(UnknownKey, match="no key with id 'nope'") as raised:
        access.revoke_key("nope")
    assert raised.value.key_id == "nope"
    assert not isinstance(raised.value, KeyError)  # a domain error, not a dict lookup's


def test_passthrough_refuses_a_nexus_key_as_the_upstream_credential(tmp_path):
    """A Nexus key must never be forwarded to Anthropic, even when a client misconfigures it."""
    from nexus.access import AccessStore, Authenticator, AuthError
    from nexus.secret_store import LocalSecretStore

    store = LocalSecretStore(tmp_path / "s.json")
    key, _ = AccessStore(store).create_key("oss", "ada")
    auth = Authenticator(store, require_keys=True, refresh_s=0)
    with pytest.raises(AuthError, match="only in X-Nexus-Key"):
        auth.authorize({"x-nexus-key": key, "x-api-key": key})


def test_unknown_key_ids_cannot_hammer_a_remote_store(tmp_path) -> None:
    """With a remote store's long refresh interval, forced reloads (unknown key ids) are rate-limited."""

    class CountingStore(LocalSecretStore):
        calls = 0

        def version(self, name: str) -> object:
            CountingStore.calls += 1
            return super().version(name)

    auth = Authenticator(CountingStore(tmp_path / "s.json"), require_keys=True, refresh_s=30)
    for i in range(50):
        with pytest.raises(AuthError):
            auth.authorize({"x-nexus-key": f"nxk_{i:08x}_secret"})
    assert CountingStore.calls <= 4  # two documents, checked once (not 50 times)


class PerSecretVersions:
    """A store versioned per secret, as Secrets Manager is (the local file has one version for all)."""

    def __init__(self) -> None:
        self.data: dict[str, str] = {}
        self.versions: dict[str, int] = {}

    def get(self, name: str) -> str | None:
        return self.data.get(name)

    def put(self, name: str, value: str) -> None:
        self.data[name] = value
        self.versions[name] = self.versions.get(name, 0) + 1

    def delete(self, name: str) -> None:
        self.data.pop(name, None)

    def version(self, name: str) -> object:
        return self.versions.get(name)


def test_a_rotated_team_api_key_reaches_a_running_proxy_at_its_next_check() -> None:
    store = PerSecretVersions()
    access = AccessStore(store)
    key, _ = access.create_key("corp", "ada")
    access.set_team("corp", "team-key")
    access.set_team_api_key("corp", "sk-ant-old")
    auth = Authenticator(store, require_keys=True, refresh_s=0)
    assert dict(auth.authorize({"x-api-key": key}).set)["x-api-key"] == "sk-ant-old"
    access.set_team_api_key("corp", "sk-ant-new")
    assert dict(auth.authorize({"x-api-key": key}).set)["x-api-key"] == "sk-ant-new"
    assert access.teams()["corp"]["mode"] == "team-key"  # the touch keeps the mode
