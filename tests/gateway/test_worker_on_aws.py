"""A worker task as the stack configures it: keys and teams from the stage's Secrets Manager prefix,
the database from the RDS secret (AWS emulated by moto, the database real)."""

from __future__ import annotations

import boto3
import psycopg
from fastapi.testclient import TestClient
from nexus import env
from nexus.access import AccessStore
from nexus.db.migrate import migrate
from nexus.secrets_manager import SecretsManagerStore

from tests.integration.test_cloud_queue import REGION, _db_secret, aws  # noqa: F401 - fixture


def test_a_worker_takes_its_keys_and_database_from_secrets_manager(aws, database_url, monkeypatch, tmp_path):  # noqa: F811
    migrate(database_url)
    access = AccessStore(
        SecretsManagerStore(boto3.client("secretsmanager", region_name=REGION), "nexus-staging/")
    )
    key, _ = access.create_key("gw", "ada")
    access.set_team("gw", "team-key")
    access.set_team_api_key("gw", "sk-ant-team")
    monkeypatch.setenv(env.DB_SECRET_ARN, _db_secret(database_url))
    monkeypatch.setenv(env.SECRETS_PREFIX, "nexus-staging/")
    monkeypatch.setenv("NEXUS_GATEWAY_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("NEXUS_GATEWAY_WARM_SPARES", "0")
    from nexus_gateway.app import create_from_env

    with TestClient(create_from_env()) as client:
        auth = {"authorization": f"Bearer {key}"}
        assert client.get("/v1/models", headers=auth).status_code == 200
        wrong = client.get("/v1/models", headers={"authorization": "Bearer nxk_not-a-key"})
        assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "invalid_api_key"
        made = client.post("/v1/conversations", json={"metadata": {"topic": "aws"}}, headers=auth)
        assert made.status_code == 200, made.text
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT team, user_id FROM gateway_conversations WHERE id = %s", (made.json()["id"],)
        )
        assert row.fetchone() == ("gw", "ada")  # stored in the database the secret names
