"""The front's hop to the router in AWS: an HTTP request as a function URL event, sent with
``InvokeWithResponseStream``; the streamed answer in Lambda's HTTP integration response format (a
JSON prelude with status and headers, eight NUL bytes, then the body as it comes), which the router
writes through the Lambda Web Adapter."""

from __future__ import annotations

import base64
import time
import uuid
from typing import Any

import orjson

DELIMITER = b"\0" * 8
MAX_PRELUDE_BYTES = 64 * 1024


class BadStream(Exception):
    """The router's answer is not in the HTTP integration response format."""


def url_event(
    method: str, path: str, query: str, headers: dict[str, str], body: bytes, source_ip: str
) -> bytes:
    """A Lambda function URL event (payload format 2.0), as the Web Adapter reads it."""
    now = time.time()
    return orjson.dumps(
        {
            "version": "2.0",
            "routeKey": "$default",
            "rawPath": path,
            "rawQueryString": query,
            "headers": headers,
            "requestContext": {
                "accountId": "anonymous",
                "apiId": "nexus-gateway-front",
                "domainName": "router.internal",
                "domainPrefix": "router",
                "http": {
                    "method": method,
                    "path": path,
                    "protocol": "HTTP/1.1",
                    "sourceIp": source_ip,
                    "userAgent": headers.get("user-agent", ""),
                },
                "requestId": str(uuid.uuid4()),
                "routeKey": "$default",
                "stage": "$default",
                "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
                "timeEpoch": int(now * 1000),
            },
            "body": base64.b64encode(body).decode(),
            "isBase64Encoded": True,
        }
    )


class PreludeReader:
    """Feed the stream's chunks; ``head`` is set (status, headers) once the prelude is complete,
    and ``feed`` returns body bytes from then on."""

    def __init__(self) -> None:
        self.buffer = b""
        self.head: tuple[int, list[tuple[str, str]]] | None = None

    def feed(self, chunk: bytes) -> bytes:
        if self.head is not None:
            return chunk
        self.buffer += chunk
        end = self.buffer.find(DELIMITER)
        if end < 0:
            if len(self.buffer) > MAX_PRELUDE_BYTES:
                raise BadStream("no prelude delimiter in the first 64 KiB")
            return b""
        try:
            prelude: dict[str, Any] = orjson.loads(self.buffer[:end])
            status = int(prelude.get("statusCode", 200))
        except (orjson.JSONDecodeError, TypeError, ValueError) as exc:
            raise BadStream(f"unreadable prelude: {exc}") from None
        headers = [(str(k), str(v)) for k, v in (prelude.get("headers") or {}).items()]
        headers += [("set-cookie", str(c)) for c in prelude.get("cookies") or []]
        self.head = (status, headers)
        rest, self.buffer = self.buffer[end + len(DELIMITER) :], b""
        return rest
