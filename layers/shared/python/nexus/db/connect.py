"""Where a process gets its database connection: ``DATABASE_URL`` if set (the local stack, tests, a
self-managed database), otherwise the RDS secret named by ``NEXUS_DB_SECRET_ARN`` (AWS).

The secret is read through Powertools parameters and cached for five minutes. The database password
rotates (Secrets Manager rotation): a connection refused for its password reads the secret afresh
and tries once more, so connections opened after a rotation (a pool's new or replaced ones) work at
once, and no request fails for the cache (``SecretConninfo``).
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import psycopg
from psycopg.conninfo import make_conninfo
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from nexus import env

SECRET_MAX_AGE_S = 300


class DatabaseSettings(BaseSettings):
    """The database's location; each process's settings model extends this one."""

    # Unset and empty are the same (a stage template or a shell may export an empty variable).
    model_config = SettingsConfigDict(extra="ignore", env_ignore_empty=True, populate_by_name=True)

    database_url: str | None = Field(None, validation_alias=env.DATABASE_URL)
    db_secret_arn: str | None = Field(None, validation_alias=env.DB_SECRET_ARN)


def conninfo_from_secret(secret: str | dict[str, Any], application_name: str = "nexus") -> str:
    """libpq connection string from an RDS secret (``host``, ``port``, ``username``, ``password``...)."""
    doc = orjson.loads(secret) if isinstance(secret, str) else secret
    return make_conninfo(
        host=doc["host"],
        port=str(doc.get("port", 5432)),
        user=doc["username"],
        password=doc["password"],
        dbname=doc.get("dbname") or "nexus",
        sslmode=doc.get("sslmode", "require"),
        connect_timeout="5",
        application_name=application_name,
    )


def conninfo(settings: DatabaseSettings, refresh: bool = False, application_name: str = "nexus") -> str:
    if settings.database_url:
        return settings.database_url
    if not settings.db_secret_arn:
        raise RuntimeError(f"set {env.DATABASE_URL} or {env.DB_SECRET_ARN}")
    from aws_lambda_powertools.utilities import parameters

    secret = parameters.get_secret(settings.db_secret_arn, max_age=SECRET_MAX_AGE_S, force_fetch=refresh)
    return conninfo_from_secret(secret, application_name)


def password_refused(exc: Exception) -> bool:
    return isinstance(exc, psycopg.OperationalError) and "password authentication failed" in str(exc)


class SecretConninfo:
    """A connection pool's conninfo (``__call__``: psycopg_pool calls it for each new connection) and
    the connection classes to go with it: refused for its password, a connection reads the secret
    afresh (the password was rotated since it was cached) and tries once more."""

    def __init__(self, settings: DatabaseSettings, application_name: str = "nexus") -> None:
        self.settings = settings
        self.application_name = application_name

    def __call__(self, refresh: bool = False) -> str:
        return conninfo(self.settings, refresh=refresh, application_name=self.application_name)

    def connection_class(self) -> type[psycopg.Connection[Any]]:
        fresh = self

        class RotationAware(psycopg.Connection[Any]):
            @classmethod
            def connect(cls, conninfo: str = "", **kwargs: Any) -> RotationAware:
                try:
                    return super().connect(conninfo, **kwargs)
                except psycopg.OperationalError as exc:
                    if not password_refused(exc):
                        raise
                    return super().connect(fresh(refresh=True), **kwargs)

        return RotationAware

    def async_connection_class(self) -> type[psycopg.AsyncConnection[Any]]:
        fresh = self

        class RotationAware(psycopg.AsyncConnection[Any]):
            @classmethod
            async def connect(cls, conninfo: str = "", **kwargs: Any) -> RotationAware:
                try:
                    return await super().connect(conninfo, **kwargs)
                except psycopg.OperationalError as exc:
                    if not password_refused(exc):
                        raise
                    return await super().connect(await asyncio.to_thread(fresh, True), **kwargs)

        return RotationAware


def connect(settings: DatabaseSettings, application_name: str = "nexus", **kwargs: Any) -> psycopg.Connection:
    source = SecretConninfo(settings, application_name)
    return source.connection_class().connect(source(), **kwargs)
