"""The front: the gateway's public entry in AWS (a function URL in RESPONSE_STREAM mode, outside the
VPC, served through the Lambda Web Adapter by ``front.sh``). It relays each request to the router
inside the VPC and streams the answer back; it holds no state and knows nothing of the APIs.

Transports: ``InvokeWithResponseStream`` of the router function (``NEXUS_GATEWAY_ROUTER_FUNCTION``)
in AWS, or plain HTTP to a router process (``NEXUS_GATEWAY_ROUTER_URL``) in the local cloud shape.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any, Protocol

import aiohttp
from nexus import env

from nexus_gateway.cloud import asgi
from nexus_gateway.cloud.lambda_stream import BadStream, PreludeReader, url_event
from nexus_gateway.cloud.settings import CloudSettings
from nexus_gateway.errors import GatewayError

log = logging.getLogger("nexus.gateway.front")

Head = tuple[int, list[tuple[str, str]]]


class Unreachable(Exception):
    """The router could not be reached or failed before answering."""


class Transport(Protocol):
    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    async def open(
        self, method: str, path: str, query: str, headers: dict[str, str], body: bytes, client: str
    ) -> tuple[Head, AsyncIterator[bytes]]: ...


class HttpTransport:
    def __init__(self, router_url: str) -> None:
        self.base = router_url.rstrip("/")
        self.session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self.session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=None, connect=5, sock_read=None), auto_decompress=False
        )

    async def stop(self) -> None:
        if self.session is not None:
            await self.session.close()

    async def open(
        self, method: str, path: str, query: str, headers: dict[str, str], body: bytes, client: str
    ) -> tuple[Head, AsyncIterator[bytes]]:
        assert self.session is not None
        url = self.base + path + (f"?{query}" if query else "")
        try:
            response = await self.session.request(method, url, headers=headers, data=body)
        except aiohttp.ClientError as exc:
            raise Unreachable(str(exc)) from None

        async def chunks() -> AsyncIterator[bytes]:
            try:
                async for chunk in response.content.iter_any():
                    yield chunk
            finally:
                response.close()

        return (response.status, list(response.headers.items())), chunks()


class LambdaTransport:
    """boto3's event stream is blocking: each next chunk is read in a thread."""

    def __init__(self, function_name: str) -> None:
        self.function_name = function_name
        self.client: Any = None

    async def start(self) -> None:
        import boto3
        from botocore.config import Config

        # A turn may go quiet for minutes (tools running, long thinking): the read timeout is the
        # function URL's own limit. One retry, for throttling before the router starts.
        config = Config(connect_timeout=2, read_timeout=900, retries={"max_attempts": 2, "mode": "standard"})
        self.client = boto3.client("lambda", config=config)

    async def stop(self) -> None:
        pass

    async def open(
        self, method: str, path: str, query: str, headers: dict[str, str], body: bytes, client: str
    ) -> tuple[Head, AsyncIterator[bytes]]:
        payload = url_event(method, path, query, headers, body, client)
        try:
            response = await asyncio.to_thread(
                self.client.invoke_with_response_stream, FunctionName=self.function_name, Payload=payload
            )
        except Exception as exc:  # botocore's errors: throttled, not found, access denied...
            raise Unreachable(f"invoking the router failed: {exc}") from None
        return await from_event_stream(iter(response["EventStream"]))


async def from_event_stream(events: Iterator[dict[str, Any]]) -> tuple[Head, AsyncIterator[bytes]]:
    """The router's answer from boto3's event stream (``PayloadChunk`` events, then one
    ``InvokeComplete``): its head once the prelude is read, and its body as it comes."""
    reader = PreludeReader()
    pending = b""
    while reader.head is None:
        event = await asyncio.to_thread(next, events, None)
        if event is None or "InvokeComplete" in event:
            detail = (event or {}).get("InvokeComplete", {})
            raise Unreachable(f"the router ended before answering: {detail.get('ErrorCode') or 'no data'}")
        try:
            pending += reader.feed(event.get("PayloadChunk", {}).get("Payload", b""))
        except BadStream as exc:
            raise Unreachable(str(exc)) from None
    head = reader.head

    async def chunks() -> AsyncIterator[bytes]:
        if pending:
            yield pending
        while True:
            event = await asyncio.to_thread(next, events, None)
            if event is None:
                return
            if "InvokeComplete" in event:
                error = event["InvokeComplete"].get("ErrorCode")
                if error:  # the router failed mid-answer: abort, so the client sees it
                    raise ConnectionError(f"the router failed mid-answer: {error}")
                return
            yield event.get("PayloadChunk", {}).get("Payload", b"")

    return head, chunks()


class Front:
    def __init__(self, transport: Transport) -> None:
        self.transport = transport

    async def __call__(self, scope: asgi.Scope, receive: asgi.Receive, send: asgi.Send) -> None:
        if scope["type"] == "lifespan":
            await asgi.lifespan(receive, send, self.transport.start, self.transport.stop)
            return
        if scope["type"] != "http":
            return
        if scope["path"] == asgi.HEALTH_PATH and scope["method"] == "GET":
            await asgi.send_json(send, 200, b'{"status":"ok"}')
            return
        try:
            body = await asgi.read_body(receive)
        except asgi.TooLarge:
            await asgi.send_error(
                send, GatewayError(413, "the request is larger than the gateway accepts (6 MB)")
            )
            return
        except ConnectionAbortedError:
            return
        client = (scope.get("client") or ("0.0.0.0", 0))[0]
        try:
            (status, headers), chunks = await self.transport.open(
                scope["method"],
                scope["path"],
                scope.get("query_string", b"").decode("latin-1"),
                asgi.request_headers(scope),
                body,
                client,
            )
        except Unreachable as exc:
            log.error("router unreachable: %s", exc)
            if isinstance(self.transport, LambdaTransport):
                _count_unreachable()
            await asgi.send_error(
                send,
                GatewayError(
                    502,
                    "the gateway could not reach its workers; retry shortly",
                    headers={"Retry-After": "5"},
                ),
            )
            return
        await asgi.stream_out(send, receive, status, asgi.response_headers(headers), chunks)


def _count_unreachable() -> None:
    """One EMF line (Lambda turns it into a metric); imported only on this rare path."""
    from aws_lambda_powertools.metrics import MetricUnit, single_metric
    from nexus import metrics

    with single_metric(
        name=metrics.GATEWAY_UNREACHABLE, unit=MetricUnit.Count, value=1, namespace=metrics.NAMESPACE
    ) as metric:
        metric.add_dimension("service", metrics.GATEWAY_SERVICE)


def create(settings: CloudSettings) -> Front:
    if settings.router_function:
        return Front(LambdaTransport(settings.router_function))
    if settings.router_url:
        return Front(HttpTransport(settings.router_url))
    raise SystemExit(f"front: set {env.GATEWAY_ROUTER_FUNCTION} (AWS) or {env.GATEWAY_ROUTER_URL}")


def main(argv: list[str] | None = None) -> None:
    from nexus_gateway.cloud.serving import load, serve

    settings = load("front")
    serve(create(settings), "front", settings, argv)


if __name__ == "__main__":
    main()
