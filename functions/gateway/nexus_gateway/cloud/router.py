"""The router: inside the VPC, between the streaming front and the workers.

Each request gets a route key (``routing.route_key``) and goes to the first worker in the key's
rendezvous order that takes it. A worker that refuses the connection (gone, or stopping: a draining
worker has closed its listener) is skipped for the next, so a conversation whose worker is gone
resumes on another from the session store. Once a worker has
started answering, the answer is streamed back as it comes, and never retried elsewhere: the turn
may have run.

Served by uvicorn behind the Lambda Web Adapter (``router.sh``), or as a process in the local cloud
shape: ``python -m nexus_gateway.cloud.router --port N`` with ``NEXUS_GATEWAY_WORKERS``.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import aiohttp
from nexus import env

from nexus_gateway.cloud import asgi, routing
from nexus_gateway.cloud.discovery import Workers
from nexus_gateway.cloud.settings import CloudSettings
from nexus_gateway.errors import GatewayError

log = logging.getLogger("nexus.gateway.router")

CONNECT_TIMEOUT_S = 2.0  # inside one VPC: a worker that does not accept in this time is not there
NO_WORKER_RETRY_AFTER_S = 30  # a task starting from zero takes 30-45 s on Fargate


class Router:
    def __init__(self, workers: Workers) -> None:
        self.workers = workers
        self.session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        # A new connection per request: a refused connect then proves the request never reached a
        # worker, so trying the next worker cannot run a turn twice.
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(force_close=True, limit=0),
            timeout=aiohttp.ClientTimeout(total=None, connect=CONNECT_TIMEOUT_S, sock_read=None),
            auto_decompress=False,
        )

    async def stop(self) -> None:
        if self.session is not None:
            await self.session.close()

    async def __call__(self, scope: asgi.Scope, receive: asgi.Receive, send: asgi.Send) -> None:
        if scope["type"] == "lifespan":
            await asgi.lifespan(receive, send, self.start, self.stop)
            return
        if scope["type"] != "http":
            return
        if scope["path"] == asgi.HEALTH_PATH and scope["method"] == "GET":
            workers = len(await self.workers.addresses())
            await asgi.send_json(send, 200, b'{"status":"ok","workers":%d}' % workers)
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
        headers = asgi.request_headers(scope)
        headers.pop(routing.ROUTE_HEADER, None)  # only the router sets it
        key = routing.route_key(scope["method"], scope["path"], headers, body)
        target = scope["raw_path"].decode("latin-1") if scope.get("raw_path") else scope["path"]
        if scope.get("query_string"):
            target += "?" + scope["query_string"].decode("latin-1")
        await self.relay(
            scope["method"], target, {**headers, routing.ROUTE_HEADER: key}, body, key, receive, send
        )

    async def relay(
        self,
        method: str,
        target: str,
        headers: dict[str, str],
        body: bytes,
        key: str,
        receive: asgi.Receive,
        send: asgi.Send,
    ) -> None:
        assert self.session is not None
        tried = 0
        for address in routing.rank(key, await self.workers.addresses()):
            tried += 1
            try:
                response = await self.session.request(
                    method, f"http://{address}{target}", headers=headers, data=body
                )
            except (aiohttp.ClientConnectorError, TimeoutError) as exc:
                log.warning("worker %s refused the request (%s); trying the next", address, exc)
                self.workers.forget(address)
                continue
            sse = response.headers.get("content-type", "").startswith("text/event-stream")
            await asgi.stream_out(
                send,
                receive,
                response.status,
                asgi.response_headers(list(response.headers.items())),
                _chunks(response, address, sse),
            )
            return
        message = (
            "no gateway worker is running yet; one is starting, retry shortly"
            if tried == 0
            else f"no gateway worker could take the request ({tried} tried); retry shortly"
        )
        await asgi.send_error(
            send, GatewayError(503, message, headers={"Retry-After": str(NO_WORKER_RETRY_AFTER_S)})
        )


# The worker died mid-answer (its task was lost): OpenAI's clients raise on an error event, so a
# stream ends with one rather than stopping short (which a client could take for a whole answer).
WORKER_LOST = GatewayError(
    502, "the gateway worker serving this turn stopped; send the turn again", code="worker_lost"
)


async def _chunks(response: aiohttp.ClientResponse, address: str, sse: bool) -> AsyncIterator[bytes]:
    try:
        async for chunk in response.content.iter_any():
            yield chunk
    except aiohttp.ClientError as exc:
        log.warning("worker %s stopped mid-answer: %s", address, exc)
        if not sse:
            raise  # a body cut short: the connection is aborted, and the client sees it
        yield b"\n\ndata: " + WORKER_LOST.json() + b"\n\n"
    finally:
        response.close()


def create(settings: CloudSettings) -> Router:
    if not settings.workers:
        raise SystemExit(f"router: set {env.GATEWAY_WORKERS} (the workers' DNS name, or host:port,...)")
    return Router(Workers(settings.workers, settings.worker_port))


def main(argv: list[str] | None = None) -> None:
    from nexus_gateway.cloud.serving import load, serve

    settings = load("router")
    serve(create(settings), "router", settings, argv)


if __name__ == "__main__":
    main()
