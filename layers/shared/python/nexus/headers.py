"""Which headers pass through a proxy, and how secrets are kept out of stored headers."""

from __future__ import annotations

import hashlib
from urllib.parse import unquote_plus

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
SECRET_HEADERS = frozenset(
    {
        "x-api-key",
        "authorization",
        "proxy-authorization",
        "x-nexus-key",
        "cookie",
        "set-cookie",
        "api-key",
        "x-auth-token",
    }
)
# Query parameters that carry credentials in clients that put them in the URL.
SECRET_PARAMS = frozenset(
    {
        "api_key",
        "api-key",
        "apikey",
        "key",
        "x-api-key",
        "token",
        "access_token",
        "refresh_token",
        "id_token",
        "auth",
        "authorization",
        "password",
        "secret",
        "client_secret",
        "sig",
        "signature",
    }
)

NEXUS_KEY_HEADER = "x-nexus-key"
# Headers for Nexus itself (the key, which client made the request): recorded, never sent upstream.
NEXUS_PREFIX = "x-nexus-"
CLIENT_HEADER = "x-nexus-client"  # "gateway" on requests the gateway's engine makes


def fingerprint(secret: str) -> str:
    """Short stable fingerprint of a secret: lets records be grouped per credential without storing it."""
    return hashlib.sha256(secret.encode()).hexdigest()[:12]


def redact(name: str, value: str) -> str:
    if name.lower() in SECRET_HEADERS:
        return f"[redacted {fingerprint(value)}]"
    return value


def redact_query(query: str) -> str:
    """The raw query string with the values of credential-like parameters redacted (for storage;
    the upstream gets the query unchanged)."""
    if "=" not in query:
        return query
    parts = query.split("&")
    for i, part in enumerate(parts):
        name, eq, value = part.partition("=")
        if eq and unquote_plus(name).lower() in SECRET_PARAMS:
            parts[i] = f"{name}=[redacted {fingerprint(unquote_plus(value))}]"
    return "&".join(parts)


def redacted_pairs(pairs: list[tuple[str, str]]) -> list[list[str]]:
    return [[k, redact(k, v)] for k, v in pairs]
