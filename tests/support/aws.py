"""AWS for the proxy's cloud path, emulated by moto's server on 127.0.0.1 (over HTTP): what the stack
creates for the proxy (the record queue, the record bucket, a team and a Nexus key in Secrets
Manager), and the environment the stack gives the function, pointed at moto with ``AWS_ENDPOINT_URL``.

Used by the integration tests of the proxy's AWS path and by ``bench/cold_start.py``.
"""

from __future__ import annotations

import contextlib
import logging
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
from moto.server import ThreadedMotoServer
from nexus import env
from nexus.access import AccessStore
from nexus.secrets_manager import SecretsManagerStore

REGION = "us-east-1"
SECRETS_PREFIX = "staging/"
BUCKET = "nexus-staging-records"
# What infra/proxy.py sets (besides the upstream and the data directory), and Lambda's own variables.
FUNCTION_ENV = {
    env.LAMBDA_FUNCTION_NAME: "nexus-staging-proxy",
    "AWS_REGION": REGION,
    "AWS_DEFAULT_REGION": REGION,
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    env.RECORD_BUCKET: BUCKET,
    env.SECRETS_PREFIX: SECRETS_PREFIX,
    env.REQUIRE_KEYS: "true",
    env.STRIP_PLATFORM_HEADERS: "true",
    env.ACCESS_REFRESH_S: "30",
}


@dataclass
class EmulatedAws:
    env: dict[str, str]  # FUNCTION_ENV plus the endpoint and the queue's URL
    key: str  # a Nexus key of the pass-through team "bench"
    queue_url: str
    sqs: Any
    s3: Any

    def drain(self) -> list[dict[str, Any]]:
        """The messages in the record queue, removed from it."""
        got: list[dict[str, Any]] = []
        while batch := self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10).get(
            "Messages", []
        ):
            for m in batch:
                self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=m["ReceiptHandle"])
            got += batch
        return got


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextlib.contextmanager
def emulated_aws() -> Iterator[EmulatedAws]:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no log line per emulated call
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        endpoint = f"http://127.0.0.1:{port}"
        creds = {"region_name": REGION, "aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
        sqs = boto3.client("sqs", endpoint_url=endpoint, **creds)
        s3 = boto3.client("s3", endpoint_url=endpoint, **creds)
        sm = boto3.client("secretsmanager", endpoint_url=endpoint, **creds)
        queue_url = sqs.create_queue(
            QueueName="nexus-staging-records.fifo", Attributes={"FifoQueue": "true"}
        )["QueueUrl"]
        s3.create_bucket(Bucket=BUCKET)
        access = AccessStore(SecretsManagerStore(sm, SECRETS_PREFIX))
        access.set_team("bench", "passthrough")
        key, _ = access.create_key("bench", "cold-start")
        environ = {**FUNCTION_ENV, "AWS_ENDPOINT_URL": endpoint, env.QUEUE_URL: queue_url}
        yield EmulatedAws(environ, key, queue_url, sqs, s3)
    finally:
        server.stop()
