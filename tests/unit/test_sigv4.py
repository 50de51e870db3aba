"""nexus.sigv4 signs exactly as botocore's own SigV4 signer does, for each kind of request the proxy
sends (Secrets Manager and SQS JSON calls, an S3 PUT), with and without a session token."""

from __future__ import annotations

import time

import pytest
from botocore.auth import S3SigV4Auth, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials as BotoCredentials
from nexus.sigv4 import Credentials, sign

NOW = 1_795_000_000.0  # a fixed instant, so both signers sign the same timestamp


def _botocore(auth_cls, method, url, headers, body, service, creds):
    request = AWSRequest(method=method, url=url, headers=dict(headers), data=body)
    request.context["timestamp"] = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(NOW))
    auth = auth_cls(BotoCredentials(creds.access_key, creds.secret_key, creds.token), service, "eu-west-1")
    # add_auth without its clock: the same steps, at NOW
    auth._modify_request_before_signing(request)
    canonical = auth.canonical_request(request)
    auth._inject_signature_to_request(
        request, auth.signature(auth.string_to_sign(request, canonical), request)
    )
    return request.headers["Authorization"]


@pytest.mark.parametrize("token", [None, "session-token-from-lambda"])
@pytest.mark.parametrize(
    ("service", "url", "headers", "body"),
    [
        (
            "secretsmanager",
            "https://secretsmanager.eu-west-1.amazonaws.com/",
            {"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": "secretsmanager.GetSecretValue"},
            b'{"SecretId": "prod/nexus/keys"}',
        ),
        (
            "sqs",
            "http://127.0.0.1:5000/",
            {"Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": "AmazonSQS.SendMessage"},
            b'{"QueueUrl": "https://sqs.eu-west-1.amazonaws.com/1/r.fifo", "MessageBody": "x  y"}',
        ),
    ],
)
def test_json_calls_are_signed_like_botocore(service, url, headers, body, token) -> None:
    creds = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", token)
    ours = sign("POST", url, headers, body, service=service, region="eu-west-1", credentials=creds, now=NOW)
    assert ours["authorization"] == _botocore(SigV4Auth, "POST", url, headers, body, service, creds)


@pytest.mark.parametrize("token", [None, "session-token-from-lambda"])
def test_an_s3_put_is_signed_like_botocore(token) -> None:
    creds = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", token)
    url = "https://nexus-records.s3.eu-west-1.amazonaws.com/records/0193e0b1-0000-7000-8000-00000000c01d"
    body = bytes(range(256)) * 100
    ours = sign(
        "PUT",
        url,
        {},
        body,
        service="s3",
        region="eu-west-1",
        credentials=creds,
        now=NOW,
        content_sha256_header=True,
    )
    assert ours["authorization"] == _botocore(S3SigV4Auth, "PUT", url, {}, body, "s3", creds)
