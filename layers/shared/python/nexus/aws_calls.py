"""The proxy's calls to AWS without botocore: Secrets Manager (read a secret, its version), SQS (send a
message) and S3 (put an object), signed with ``nexus.sigv4`` and sent with ``http.client``.

Why: botocore's import and its first client (endpoint data, service models) are about 200 ms, and a
new Lambda sandbox pays them before it can answer; these four calls need a few kilobytes of code.
The clients keep botocore's method names and reply shapes for what they offer, so
``SecretsManagerStore`` and ``SqsSink`` take either (docs/adr/0022-proxy-aws-calls-without-botocore.md).

Behaviour kept from ``nexus.aws``: connect within 2 s, a reply within 5 s, up to 4 attempts for
throttling, server errors and broken connections (standard mode's backoff), region and credentials
from the environment (Lambda sets them), ``AWS_ENDPOINT_URL`` / ``AWS_ENDPOINT_URL_<SERVICE>`` honoured.
"""

from __future__ import annotations

import http.client
import json
import os
import random
import re
import ssl
import threading
import time
from collections.abc import Mapping
from types import SimpleNamespace
from typing import Any
from urllib.parse import quote, urlsplit

from nexus.sigv4 import Credentials, sign

CONNECT_TIMEOUT_S = 2.0
READ_TIMEOUT_S = 5.0
MAX_ATTEMPTS = 4
MAX_BACKOFF_S = 20.0
# Error codes botocore's standard retry mode retries besides 5xx answers (botocore/retries/standard.py).
RETRYABLE_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottledException",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "TransactionInProgressException",
        "RequestLimitExceeded",
        "BandwidthLimitExceeded",
        "LimitExceededException",
        "RequestThrottled",
        "SlowDown",
        "PriorRequestNotComplete",
        "EC2ThrottledException",
        "RequestTimeout",
        "RequestTimeoutException",
        "InternalError",
    }
)
USER_AGENT = "nexus-proxy"


class AwsError(Exception):
    """AWS answered with an error; ``code`` is its error code (``ResourceNotFoundException``...)."""

    def __init__(self, code: str, message: str, status: int) -> None:
        super().__init__(f"{code} ({status}): {message}")
        self.code, self.message, self.status = code, message, status


class ResourceNotFoundException(AwsError):
    pass


_tls: ssl.SSLContext | None = None


def _tls_context() -> ssl.SSLContext:
    # Loading the CA certificates takes tens of ms: once per process, at the first HTTPS call.
    global _tls
    if _tls is None:
        _tls = ssl.create_default_context()
    return _tls


class AwsEndpoint:
    """One service's endpoint with signed requests over one kept-alive connection."""

    def __init__(self, service: str, env_name: str, environ: Mapping[str, str] | None = None) -> None:
        environ = os.environ if environ is None else environ
        region = environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION")
        access_key, secret_key = environ.get("AWS_ACCESS_KEY_ID"), environ.get("AWS_SECRET_ACCESS_KEY")
        if not region or not access_key or not secret_key:
            raise RuntimeError(
                "AWS region and credentials must be in the environment (AWS_REGION, AWS_ACCESS_KEY_ID, "
                "AWS_SECRET_ACCESS_KEY), as Lambda sets them"
            )
        self.service, self.region = service, region
        self.credentials = Credentials(access_key, secret_key, environ.get("AWS_SESSION_TOKEN") or None)
        suffix = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
        self.custom = environ.get(f"AWS_ENDPOINT_URL_{env_name}") or environ.get("AWS_ENDPOINT_URL")
        self.base = (self.custom or f"https://{service}.{region}.{suffix}").rstrip("/")
        self._conn: http.client.HTTPConnection | None = None
        self._conn_for: str | None = None
        self._lock = threading.Lock()

    def _connection(self, scheme: str, netloc: str) -> http.client.HTTPConnection:
        if self._conn is None or self._conn_for != netloc:
            if self._conn is not None:
                self._conn.close()
            if scheme == "https":
                self._conn = http.client.HTTPSConnection(
                    netloc, timeout=CONNECT_TIMEOUT_S, context=_tls_context()
                )
            else:
                self._conn = http.client.HTTPConnection(netloc, timeout=CONNECT_TIMEOUT_S)
            self._conn.connect()
            assert self._conn.sock is not None
            self._conn.sock.settimeout(READ_TIMEOUT_S)
            self._conn_for = netloc
        return self._conn

    def _drop_connection(self) -> None:
        if self._conn is not None:
            self._conn.close()
        self._conn = None

    def request(
        self, method: str, url: str, headers: dict[str, str], body: bytes, *, s3: bool = False
    ) -> tuple[int, bytes]:
        """Status and body of a successful answer; raises AwsError (or OSError after the last
        attempt)."""
        parts = urlsplit(url)
        target = parts.path or "/"
        for attempt in range(1, MAX_ATTEMPTS + 1):
            signed = sign(
                method,
                url,
                {**headers, "user-agent": USER_AGENT},
                body,
                service=self.service,
                region=self.region,
                credentials=self.credentials,
                content_sha256_header=s3,
            )
            try:
                with self._lock:
                    conn = self._connection(parts.scheme, parts.netloc)
                    try:
                        conn.request(method, target, body=body, headers=signed)
                        resp = conn.getresponse()
                        status, data = resp.status, resp.read()
                    except BaseException:
                        self._drop_connection()
                        raise
                    if resp.will_close:
                        self._drop_connection()
            except (OSError, http.client.HTTPException):
                if attempt == MAX_ATTEMPTS:
                    raise
            else:
                if status < 300:
                    return status, data
                error = _error(status, data)
                if attempt == MAX_ATTEMPTS or not (
                    status >= 500 or status == 429 or error.code in RETRYABLE_CODES
                ):
                    raise error
            time.sleep(random.random() * min(MAX_BACKOFF_S, 2.0**attempt))  # standard mode's backoff
        raise AssertionError("unreachable")

    def json_call(self, target: str, params: dict[str, Any], json_version: str) -> dict[str, Any]:
        headers = {"content-type": f"application/x-amz-json-{json_version}", "x-amz-target": target}
        _, data = self.request("POST", self.base + "/", headers, json.dumps(params).encode())
        doc: dict[str, Any] = json.loads(data) if data else {}
        return doc


def _error(status: int, data: bytes) -> AwsError:
    code, message = "", data[:500].decode("utf-8", "replace")
    try:
        doc = json.loads(data)
        code = str(doc.get("__type", "")).rpartition("#")[2]
        message = str(doc.get("message") or doc.get("Message") or "")
    except ValueError:
        found = re.search(rb"<Code>([^<]+)</Code>", data)  # S3 answers errors in XML
        code = found.group(1).decode() if found else ""
    code = code or f"HTTP{status}"
    cls = ResourceNotFoundException if code == "ResourceNotFoundException" else AwsError
    return cls(code, message, status)


class SecretsManagerClient:
    """What ``SecretsManagerStore`` calls: reads (``get_secret_value``, ``describe_secret``) and the
    one write a proxy makes, its early OAuth refresh request (``put_secret_value``)."""

    exceptions = SimpleNamespace(ResourceNotFoundException=ResourceNotFoundException)

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self.endpoint = AwsEndpoint("secretsmanager", "SECRETS_MANAGER", environ)

    def get_secret_value(self, **params: Any) -> dict[str, Any]:
        return self.endpoint.json_call("secretsmanager.GetSecretValue", params, "1.1")

    def describe_secret(self, **params: Any) -> dict[str, Any]:
        return self.endpoint.json_call("secretsmanager.DescribeSecret", params, "1.1")

    def put_secret_value(self, **params: Any) -> dict[str, Any]:
        return self.endpoint.json_call("secretsmanager.PutSecretValue", params, "1.1")

    def create_secret(self, **params: Any) -> dict[str, Any]:
        return self.endpoint.json_call("secretsmanager.CreateSecret", params, "1.1")


class SqsClient:
    """What ``SqsSink`` calls: ``send_message`` (SQS's JSON protocol)."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self.endpoint = AwsEndpoint("sqs", "SQS", environ)

    def send_message(self, **params: Any) -> dict[str, Any]:
        return self.endpoint.json_call("AmazonSQS.SendMessage", params, "1.0")


class S3Client:
    """What ``SqsSink`` calls: ``put_object`` (bucket in the host name on AWS, in the path on a
    custom endpoint, as botocore does for an IP address)."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self.endpoint = AwsEndpoint("s3", "S3", environ)

    # botocore's parameter names, so SqsSink calls either client the same way.
    def put_object(self, *, Bucket: str, Key: str, Body: bytes) -> dict[str, Any]:
        key = quote(Key, safe="/~")
        if self.endpoint.custom:
            url = f"{self.endpoint.base}/{Bucket}/{key}"
        else:
            scheme, _, host = self.endpoint.base.partition("://")
            url = f"{scheme}://{Bucket}.{host}/{key}"
        self.endpoint.request("PUT", url, {}, Body, s3=True)
        return {}
