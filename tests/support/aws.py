"""AWS for the proxy's cloud path, emulated by moto's server on 127.0.0.1 (over HTTP): what the stack
creates for the proxy (the record queue, the record bucket, a team and a Nexus key in Secrets
Manager), and the environment the stack gives the function, pointed at moto with ``AWS_ENDPOINT_URL``.
``SqsThrottle`` makes the emulated SQS refuse sends over a rate, as SQS does (``RequestThrottled``).

Used by the integration tests of the proxy's AWS path, the fault tests, and ``bench/cold_start.py``
and ``bench/faults.py``.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
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


class SqsThrottle:
    """SQS's request rate limit in front of moto: ``SendMessage`` calls over ``rate`` per second
    (a token bucket ``burst`` deep) are refused as SQS refuses them, ``400 RequestThrottled``; and
    ``refuse(n)``: the next ``n`` sends are refused whatever the rate (a throttling episode, as
    the one sender that meets it sees it). Off until set; ``throttled`` and ``passed`` count."""

    def __init__(self) -> None:
        self.rate: float | None = None
        self.burst = 1.0
        self.throttled = 0
        self.passed = 0
        self.refusing = 0
        self._tokens = 0.0
        self._at = time.monotonic()
        self._lock = threading.Lock()

    def limit(self, rate: float | None, burst: float = 1.0) -> None:
        with self._lock:
            self.rate, self.burst, self._tokens, self._at = rate, burst, burst, time.monotonic()

    def refuse(self, n: int) -> None:
        with self._lock:
            self.refusing = n

    def allow(self) -> bool:
        with self._lock:
            if self.refusing > 0:
                self.refusing -= 1
                self.throttled += 1
                return False
            if self.rate is None:
                self.passed += 1
                return True
            now = time.monotonic()
            self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
            self._at = now
            if self._tokens >= 1:
                self._tokens -= 1
                self.passed += 1
                return True
            self.throttled += 1
            return False

    def wrap(self, app: Callable[..., Iterable[bytes]]) -> Callable[..., Iterable[bytes]]:
        def throttled(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            if environ.get("HTTP_X_AMZ_TARGET") == "AmazonSQS.SendMessage" and not self.allow():
                body = json.dumps(
                    {"__type": "com.amazonaws.sqs#RequestThrottled", "message": "Request is throttled."}
                ).encode()
                start_response(
                    "400 Bad Request",
                    [
                        ("Content-Type", "application/x-amz-json-1.0"),
                        ("x-amzn-query-error", "RequestThrottled;Sender"),
                        ("Content-Length", str(len(body))),
                    ],
                )
                return [body]
            return app(environ, start_response)

        return throttled


class _MotoServer(ThreadedMotoServer):
    """moto's threaded server with the throttle in front of it."""

    def __init__(self, throttle: SqsThrottle, **kw: Any) -> None:
        super().__init__(**kw)
        self.throttle = throttle

    def _server_entry(self) -> None:
        from werkzeug.serving import make_server

        app = self.throttle.wrap(DomainDispatcherApplication(create_backend_app))
        self._server = make_server(
            self._ip_address, self._port, app, True, request_handler=MotoRequestHandler
        )
        self._server_ready_event.set()
        self._server.serve_forever()


@dataclass
class EmulatedAws:
    env: dict[str, str]  # FUNCTION_ENV plus the endpoint and the queue's URL
    key: str  # a Nexus key of the pass-through team "bench"
    queue_url: str
    sqs: Any
    s3: Any
    throttle: SqsThrottle = field(default_factory=SqsThrottle)

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
    throttle = SqsThrottle()
    server = _MotoServer(throttle, ip_address="127.0.0.1", port=port, verbose=False)
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
        yield EmulatedAws(environ, key, queue_url, sqs, s3, throttle)
    finally:
        server.stop()


@dataclass
class LambdaContext:
    """What Powertools reads from the Lambda context object."""

    function_name: str = "nexus-ingest"
    memory_limit_in_mb: int = 1024
    invoked_function_arn: str = "arn:aws:lambda:eu-west-1:123456789012:function:nexus-ingest"
    aws_request_id: str = "c6af9ac6-7b61-11e6-9a41-93e8deadbeef"


def lambda_in_process(self: Any, event: Any = None) -> tuple[str, bool, str]:
    """moto's Lambda invocation (``LambdaFunction._invoke_lambda``), redirected: the function's
    handler runs in this process, with a context object, and its exception is the invocation's
    error, as Lambda reports it."""
    module, _, name = self.handler.rpartition(".")
    handler = getattr(importlib.import_module(module), name)
    context = LambdaContext(function_name=self.function_name, invoked_function_arn=self.function_arn)
    try:
        return (
            json.dumps(handler(event if isinstance(event, dict) else json.loads(event or "{}"), context)),
            False,
            "",
        )
    except Exception as exc:
        return json.dumps({"errorType": type(exc).__name__, "errorMessage": str(exc)}), True, ""


def function_url_event(
    key: str, method: str = "GET", path: str = "/api/requests", body: str | None = None, query: str = ""
) -> dict[str, Any]:
    """A request to a Lambda function URL (payload 2.0), as the dashboard's entry receives it, from
    the holder of ``key`` (a Bearer credential)."""
    host = "abc.lambda-url.eu-west-1.on.aws"
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": query,
        "headers": {"authorization": f"Bearer {key}", "host": host, "content-type": "application/json"},
        "body": body,
        "requestContext": {
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": "test",
            },
            "domainName": host,
            "stage": "$default",
        },
        "isBase64Encoded": False,
    }
