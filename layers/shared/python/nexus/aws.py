"""boto3 clients as the Lambda functions use them: fail fast and retry a little, because a caller
(a streaming client, a browser) is waiting meanwhile."""

from __future__ import annotations

from typing import Any

from botocore.config import Config

CLIENT_CONFIG = Config(connect_timeout=2, read_timeout=5, retries={"max_attempts": 4, "mode": "standard"})


def client(service: str) -> Any:
    import boto3

    return boto3.client(service, config=CLIENT_CONFIG)
