"""Which headers pass through a proxy, and how secrets are kept out of stored headers."""

from __future__ import annotations

import hashlib

# RFC 9110 section 7.6.1 hop-by-hop headers, plus the framing headers the HTTP stack on each side
# owns (host, content-length are recomputed from the unchanged URL and body bytes).
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
REQUEST_SKIP = HOP_BY_HOP | {"host", "content-length"}

# Added in AWS by the function URL front end and the Lambda Web Adapter, not by the client. They
# describe the account and the function, so they go neither upstream nor into the record.
PLATFORM_HEADERS = frozenset(
    {
        "x-amzn-request-context",
        "x-amzn-lambda-context",
        "x-amzn-trace-id",
        "x-forwarded-for",
        "x-forwarded-proto",
        "x-forwarded-port",
    }
)

# Headers whose values are credentials: never stored or logged.
SECRET_HEADERS = frozenset({"x-api-key", "authorization", "x-nexus-key", "cookie", "set-cookie"})

NEXUS_KEY_HEADER = "x-nexus-key"


def fingerprint(secret: str) -> str:
    """Short stable fingerprint of a secret: lets records be grouped per credential without storing it."""
    return hashlib.sha256(secret.encode()).hexdigest()[:12]


def redact(name: str, value: str) -> str:
    if name.lower() in SECRET_HEADERS:
        return f"[redacted {fingerprint(value)}]"
    return value


def redacted_pairs(pairs: list[tuple[str, str]]) -> list[list[str]]:
    return [[k, redact(k, v)] for k, v in pairs]
