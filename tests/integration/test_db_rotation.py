"""A rotated database password costs no request. The RDS secret is read through a five-minute
cache; after a rotation, connections already open keep working, and a new one (a pool replacing a
dead or expired connection) is refused for the cached password, reads the secret afresh and
connects. Against a real PostgreSQL that checks passwords (scram-sha-256) and the secret in moto's
Secrets Manager: the dashboard's Lambda entry, the gateway's async pool and ingest's connection."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from typing import Any

import boto3
import psycopg
import pytest
from moto import mock_aws
from nexus.db.connect import DatabaseSettings, connect
from nexus.db.migrate import migrate

from tests.integration.test_cloud_queue import CTX
from tests.support import pg
from tests.support.aws import function_url_event

REGION = "eu-west-1"
ROLE = "nexus_rotated"


class Database:
    def __init__(self, server: Any) -> None:
        self.admin = server.get_uri()
        self.socket_dir = str(server.pgdata)
        self.name = "rotation"

    def secret(self, password: str) -> str:
        """The RDS secret's document, as the stack's generated secret holds it."""
        return json.dumps(
            {
                "engine": "postgres",
                "host": self.socket_dir,
                "port": 5432,
                "username": ROLE,
                "password": password,
                "dbname": self.name,
            }
        )

    def set_password(self, password: str) -> None:
        with psycopg.connect(self.admin, autocommit=True) as conn:
            conn.execute(f"ALTER ROLE {ROLE} PASSWORD '{password}'")

    def drop_connections(self) -> int:
        """What a pool meets after a rotation sooner or later: its connections replaced (lifetime,
        failover, a restart). Returns how many were ended."""
        with psycopg.connect(self.admin, autocommit=True) as conn:
            rows = conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", (ROLE,)
            ).fetchall()
        return len(rows)


@pytest.fixture(scope="module")
def database() -> Iterator[Database]:
    with pg.temporary_server("nexus-rotation-pg-") as server:
        hba = server.pgdata / "pg_hba.conf"
        hba.write_text(f"local all {ROLE} scram-sha-256\n" + hba.read_text())  # first match wins
        db = Database(server)
        with psycopg.connect(db.admin, autocommit=True) as conn:
            conn.execute("SELECT pg_reload_conf()")
            conn.execute(f"CREATE ROLE {ROLE} LOGIN PASSWORD 'first-password'")
            conn.execute(f"CREATE DATABASE {db.name} OWNER {ROLE}")
        migrate(
            psycopg.conninfo.make_conninfo(
                host=db.socket_dir, dbname=db.name, user=ROLE, password="first-password"
            )
        )
        yield db


@pytest.fixture
def secret(database: Database, monkeypatch) -> Iterator[tuple[Any, str]]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(var, "testing")
    database.set_password("first-password")
    with mock_aws():
        sm = boto3.client("secretsmanager", region_name=REGION)
        arn = sm.create_secret(Name="staging/nexus/database", SecretString=database.secret("first-password"))[
            "ARN"
        ]
        yield sm, arn
    database.drop_connections()


def rotate(database: Database, sm: Any, arn: str, password: str) -> None:
    """What Secrets Manager's single-user rotation does: the new password set on the role and
    stored as the secret's current version; open sessions are untouched."""
    database.set_password(password)
    sm.put_secret_value(SecretId=arn, SecretString=database.secret(password))


def lambda_event(method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    """A Function URL request from the dashboard key's holder."""
    return function_url_event(
        "nxd_rotation_key", method, path, json.dumps(body) if body is not None else None
    )


@pytest.fixture
def dashboard(secret, monkeypatch) -> Iterator[Any]:
    """The dashboard's Lambda entry on the rotated database, as a new execution environment."""
    sm, arn = secret
    sm.create_secret(Name="staging/dashboard-key", SecretString="nxd_rotation_key")
    monkeypatch.setenv("NEXUS_DASHBOARD_KEY_SECRET", "staging/dashboard-key")
    monkeypatch.setenv("NEXUS_SECRETS_PREFIX", "staging/")
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv("NEXUS_DB_SECRET_ARN", arn)
    from nexus_dashboard import handler as dash

    monkeypatch.setattr(dash, "_current", {})
    # The entry sets JSON lines up for the whole process (basicConfig(force=True) closes the root's
    # handlers): pytest's are set aside meanwhile, and put back afterwards.
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    root.handlers.clear()
    yield dash
    if "app" in dash._current:
        dash._current["app"].state.pool.close()
    for h in root.handlers:
        h.close()
    root.handlers[:], root.level = handlers, level


def test_the_dashboard_serves_every_request_through_a_rotation(database, secret, dashboard) -> None:
    sm, arn = secret

    def get() -> int:
        return int(dashboard.handle(lambda_event("GET", "/api/requests"), CTX)["statusCode"])

    assert get() == 200
    rotate(database, sm, arn, "second-password")
    assert [get() for _ in range(3)] == [200] * 3  # open connections keep working
    assert database.drop_connections() >= 1
    assert [get() for _ in range(5)] == [200] * 5  # new connections: the fresh secret, no 503
    rotate(database, sm, arn, "third-password")
    database.drop_connections()
    assert [get() for _ in range(5)] == [200] * 5


def test_the_dashboards_lines_are_json_for_cloudwatch(dashboard, capsys) -> None:
    """An admin action's audit line, like every other, in Powertools' JSON: Logs Insights queries
    it by field (``message.action``)."""
    created = dashboard.handle(lambda_event("POST", "/api/keys", {"team": "web", "user": "ann"}), CTX)
    assert created["statusCode"] == 201
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    [audit] = [line for line in lines if isinstance(line["message"], dict) and line["message"].get("audit")]
    assert audit["service"] == "nexus-dashboard" and audit["level"] == "INFO"
    assert audit["message"]["action"] == "key.create" and audit["message"]["actor"]


def test_the_gateways_async_pool_reconnects_with_the_rotated_password(database, secret) -> None:
    from nexus_gateway.service import database_pool

    sm, arn = secret

    async def run() -> list[int]:
        pool = database_pool(None, arn)  # the worker's pool, as `serve` opens it in AWS
        assert pool is not None
        await pool.open(wait=True, timeout=10)
        try:
            rotate(database, sm, arn, "second-password")
            assert database.drop_connections() >= 1
            got = []
            for _ in range(3):
                async with pool.connection(timeout=5) as conn:
                    row = await (await conn.execute("SELECT 1")).fetchone()
                    got.append(row[0] if row else 0)
            return got
        finally:
            await pool.close()

    assert asyncio.run(run()) == [1, 1, 1]


def test_a_plain_connection_after_a_rotation_reads_the_secret_afresh(database, secret) -> None:
    sm, arn = secret
    settings = DatabaseSettings(db_secret_arn=arn)
    connect(settings).close()  # caches the first password
    rotate(database, sm, arn, "second-password")
    with connect(settings, application_name="nexus-ingest") as conn:
        assert conn.execute("SELECT current_user").fetchone() == (ROLE,)
    rotate(database, sm, arn, "wrong-on-purpose")
    database.set_password("yet-another")  # the secret and the role disagree: refused, readably
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        connect(settings)
