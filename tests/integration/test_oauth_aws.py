"""The OAuth refresher as deployed: the scheduled function's handler against Secrets Manager (moto)
and a scripted token endpoint; the proxy's early-refresh request travels through the same store."""

from __future__ import annotations

import json
import time

import boto3
from nexus import env
from nexus.access import AccessStore, Authenticator
from nexus.oauth import OAuthCredential, load, set_team_oauth
from nexus.secrets_manager import SecretsManagerStore

from tests.integration.test_cloud_queue import REGION, aws  # noqa: F401 - fixture
from tests.support.aws import LambdaContext
from tests.support.fake_oauth import FakeTokenEndpoint


def test_the_scheduled_refresher_renews_and_answers_a_proxys_request(aws, monkeypatch):  # noqa: F811
    endpoint = FakeTokenEndpoint().start()
    endpoint.valid_refresh.update({"rt-soon", "rt-later"})
    try:
        store = SecretsManagerStore(boto3.client("secretsmanager", region_name=REGION), "nexus-staging/")
        key, _ = AccessStore(store).create_key("soon", "ada")
        set_team_oauth(store, "soon", OAuthCredential("at-soon", "rt-soon", time.time() + 120))
        set_team_oauth(store, "later", OAuthCredential("at-later", "rt-later", time.time() + 8 * 3600))
        monkeypatch.setenv(env.SECRETS_PREFIX, "nexus-staging/")
        monkeypatch.setenv(env.OAUTH_TOKEN_URL, endpoint.url)
        from nexus_credentials import handler

        handler._state.clear()
        assert handler.handle({}, LambdaContext()) == {"later": "fresh", "soon": "refreshed"}
        renewed = load(store, "soon")
        assert renewed is not None and renewed.access_token == endpoint.issued[0]

        # A proxy in team-key mode reads the new token; a 401 on it asks for an early renewal.
        auth = Authenticator(store, require_keys=True, refresh_s=30)
        grant = auth.authorize({"x-api-key": key})
        assert ("authorization", f"Bearer {endpoint.issued[0]}") in grant.set
        assert auth.ask_refresh("soon") and not auth.ask_refresh("soon")  # once a minute per process
        # Renewed a moment ago: a 401 right after a renewal does not burn another refresh token.
        assert handler.handle({}, LambdaContext()) == {"later": "fresh", "soon": "fresh"}
        assert auth.ask_refresh("later")  # a token hours from expiry, refused: renewed at once
        assert handler.handle({}, LambdaContext()) == {"later": "refreshed", "soon": "fresh"}
    finally:
        endpoint.stop()
    asked = json.loads(store.get("nexus/oauth/refresh-requests") or "{}")
    assert asked == {}  # answered requests are cleared (and the document is kept, never deleted)
