"""Where the Lambda functions get their database connection: ``DATABASE_URL`` if set (tests, a
self-managed database), otherwise the RDS secret named by ``NEXUS_DB_SECRET_ARN``.

The secret is read through Powertools parameters and cached for five minutes. The database password
rotates (Secrets Manager rotation); a connection refused for its password refetches the secret once.
"""

from __future__ import annotations

import os
from typing import Any

import orjson
import psycopg
from psycopg.conninfo import make_conninfo

from nexus import env

SECRET_MAX_AGE_S = 300


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


def conninfo(refresh: bool = False, application_name: str = "nexus") -> str:
    if os.environ.get(env.DATABASE_URL):
        return os.environ[env.DATABASE_URL]
    arn = os.environ.get(env.DB_SECRET_ARN)
    if not arn:
        raise RuntimeError("set DATABASE_URL or NEXUS_DB_SECRET_ARN")
    from aws_lambda_powertools.utilities import parameters

    secret = parameters.get_secret(arn, max_age=SECRET_MAX_AGE_S, force_fetch=refresh)
    return conninfo_from_secret(secret, application_name)


def connect(application_name: str = "nexus", **kwargs: Any) -> psycopg.Connection:
    try:
        return psycopg.connect(conninfo(application_name=application_name), **kwargs)
    except psycopg.OperationalError as exc:
        if "password authentication failed" not in str(exc):
            raise
        # Rotated since we cached it: one fresh read, then give up (the caller retries later).
        return psycopg.connect(conninfo(refresh=True, application_name=application_name), **kwargs)
