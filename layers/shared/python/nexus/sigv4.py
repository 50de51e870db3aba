"""AWS Signature Version 4 for the few requests the proxy makes to AWS (Secrets Manager, SQS, S3).

Only what those requests need: no query strings, payloads hashed in full, the path used as given
(already URI-encoded by the caller; S3 signs it as is, and the other services' paths here are ``/``).
``tests/unit/test_sigv4.py`` checks every signature against botocore's signer.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

ALGORITHM = "AWS4-HMAC-SHA256"


@dataclass(frozen=True, slots=True)
class Credentials:
    access_key: str
    secret_key: str
    token: str | None = None


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def sign(
    method: str,
    url: str,
    headers: dict[str, str],
    body: bytes,
    *,
    service: str,
    region: str,
    credentials: Credentials,
    now: float | None = None,
    content_sha256_header: bool = False,
) -> dict[str, str]:
    """``headers`` plus ``host``, ``x-amz-date``, the session token and ``authorization``.
    ``content_sha256_header``: S3 wants the payload's hash in ``x-amz-content-sha256`` too."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() if now is None else now))
    parts = urlsplit(url)
    payload_hash = hashlib.sha256(body).hexdigest()
    out = {k.lower(): v for k, v in headers.items()}
    out["host"] = parts.netloc
    out["x-amz-date"] = stamp
    if credentials.token:
        out["x-amz-security-token"] = credentials.token
    if content_sha256_header:
        out["x-amz-content-sha256"] = payload_hash
    signed = sorted(k for k in out if k not in ("user-agent", "expect", "x-amzn-trace-id", "content-length"))
    canonical = "\n".join(
        [
            method,
            parts.path or "/",
            "",  # no query string
            *(f"{k}:{' '.join(out[k].split())}" for k in signed),
            "",
            ";".join(signed),
            payload_hash,
        ]
    )
    scope = f"{stamp[:8]}/{region}/{service}/aws4_request"
    to_sign = f"{ALGORITHM}\n{stamp}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
    key = _hmac(f"AWS4{credentials.secret_key}".encode(), stamp[:8])
    for part in (region, service, "aws4_request"):
        key = _hmac(key, part)
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    out["authorization"] = (
        f"{ALGORITHM} Credential={credentials.access_key}/{scope}, "
        f"SignedHeaders={';'.join(signed)}, Signature={signature}"
    )
    return out
