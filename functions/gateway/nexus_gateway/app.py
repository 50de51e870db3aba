"""The gateway's HTTP API: OpenAI's shapes in and out, Claude Code as the engine.

Routes stay thin: requests become a ``Dialogue`` (``chat_request``, ``responses``), the engine
(``service.Gateway``) runs the turn, and the events become OpenAI's responses (``chat``,
``responses``). Every error, including the framework's own (unknown path, wrong method, a body
that is not JSON), leaves in OpenAI's error shape.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import AsyncIterator, MutableMapping
from contextlib import asynccontextmanager
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from nexus.secret_store import LocalSecretStore, SecretStore
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match, Route

from nexus_gateway import cache, catalog, chat, chat_request, conversations, memory, openapi, responses
from nexus_gateway.cloud import routing
from nexus_gateway.engine.events import Answer
from nexus_gateway.errors import GatewayError, bad_request
from nexus_gateway.service import Gateway
from nexus_gateway.settings import GatewaySettings, load

SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}


def _error(exc: GatewayError) -> Response:
    return Response(exc.json(), exc.status, headers=exc.headers, media_type="application/json")


async def _json_body(request: Request) -> Any:
    raw = await request.body()
    if not raw:
        raise bad_request("the request body is empty: send a JSON object")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise bad_request(f"We could not parse the JSON body of your request: {exc}") from None


def _headers(request: Request) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in request.scope["headers"]}


async def _until_disconnect(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def _collect_or_abandon(request: Request, events: AsyncIterator[Any]) -> Answer | None:
    """The whole answer of a non-streaming request; None if the client went away first (the turn is
    interrupted and its session freed at once)."""
    collecting = asyncio.ensure_future(chat.collect(events))
    watching = asyncio.ensure_future(_until_disconnect(request))
    try:
        await asyncio.wait({collecting, watching}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watching.cancel()
    if not collecting.done():
        collecting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await collecting
        await events.aclose()  # type: ignore[attr-defined]
        return None
    await events.aclose()  # type: ignore[attr-defined]
    return collecting.result()


def _allowed(app: FastAPI, scope: MutableMapping[str, Any]) -> list[str]:
    """The methods of the path the request matched (its first route's template, as routing picks
    it: /v1/memory/search is not /v1/memory/{item_id}), over every route with that template."""
    routes = [r for r in app.router.routes if isinstance(r, Route) and r.methods]
    matched = next((r for r in routes if r.matches(scope)[0] is not Match.NONE), None)
    if matched is None:
        return []
    return sorted({m for r in routes if r.path == matched.path for m in r.methods or ()})


def create_app(settings: GatewaySettings, secrets: SecretStore) -> FastAPI:
    gateway = Gateway(settings, secrets)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await gateway.start()
        publisher = None
        if settings.publish_metrics:
            from nexus.aws import client

            from nexus_gateway.cloud.metrics import Publisher

            assert gateway.pool is not None
            publisher = Publisher(gateway.pool, client("cloudwatch"))
            publisher.start()
        app.state.ready = True
        yield
        app.state.ready = False
        if publisher is not None:
            await publisher.stop()
        await gateway.close()

    app = FastAPI(
        title="Nexus gateway",
        version="0.1.0",
        description="OpenAI-compatible API with Claude Code as its engine.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.openapi = lambda: openapi.document(app, settings.require_keys)  # type: ignore[method-assign]
    app.state.gateway = gateway
    app.state.ready = False

    @app.exception_handler(GatewayError)
    async def gateway_error(request: Request, exc: GatewayError) -> Response:
        return _error(exc)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        message = {
            404: f"Unknown request URL: {request.method} {request.url.path}.",
            405: f"{request.method} is not allowed on {request.url.path}.",
        }.get(exc.status_code, str(exc.detail))
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            # Starlette names the methods of the first route with this path only; a path served by
            # two routes (GET and POST /v1/conversations) allows both.
            headers = {"Allow": ", ".join(_allowed(app, request.scope))}
        return _error(
            GatewayError(
                exc.status_code,
                message,
                code="unknown_url" if exc.status_code == 404 else None,
                headers=headers,
            )
        )

    @app.exception_handler(RequestValidationError)
    async def bad_input(request: Request, exc: RequestValidationError) -> Response:
        first = exc.errors()[0]
        param = ".".join(str(p) for p in first["loc"][1:]) or None
        return _error(bad_request(f"Invalid value for '{param}': {first['msg']}", param, "invalid_value"))

    @app.exception_handler(Exception)
    async def crash(request: Request, exc: Exception) -> Response:
        import logging

        logging.getLogger("nexus.gateway").exception("unexpected error on %s", request.url.path)
        return _error(GatewayError(500, "internal error in the Nexus gateway (logged)"))

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        started = time.perf_counter()
        headers = _headers(request)
        caller = gateway.caller(headers)
        req = chat_request.parse(await _json_body(request))
        dialogue = await chat_request.dialogue(req, gateway.image_limits)
        after = None
        if req.conversation_id is not None:
            after = await gateway.conversation(req.conversation_id, caller, "conversation_id")
        recalled = await gateway.memory.prepare(caller, dialogue, after, headers, req.nexus_memory)
        cid = chat.completion_id()
        turn = gateway.turn(dialogue, caller, started, after, recalled)
        events, cache_headers = gateway.cached(turn, request.headers.get(cache.HEADER))
        notes = {**cache_headers, **(recalled.headers() if recalled is not None else {})}
        extra = {"conversation_id": after.id} if after is not None else {}
        if req.stream:
            include_usage = bool(req.stream_options and req.stream_options.include_usage)

            async def body() -> AsyncIterator[bytes]:
                async with contextlib.aclosing(events) as ev:
                    async for piece in chat.stream(ev, dialogue.model.id, cid, include_usage, extra):
                        yield piece

            return StreamingResponse(body(), media_type="text/event-stream", headers={**SSE_HEADERS, **notes})
        answer = await _collect_or_abandon(request, events)
        if answer is None:
            return Response(status_code=499)
        if turn.lease is not None:
            extra = {"conversation_id": turn.lease.conversation.id}
        return JSONResponse(chat.completion(answer, dialogue.model.id, cid, extra), headers=notes)

    @app.post("/v1/responses")
    async def create_response(request: Request) -> Response:
        started = time.perf_counter()
        headers = _headers(request)
        caller = gateway.caller(headers)
        req = responses.parse(await _json_body(request))
        after = None
        if req.previous_response_id:
            stored = await gateway.state.get_response(req.previous_response_id)
            if stored is None or stored.scope != caller.scope:
                raise GatewayError(
                    404,
                    f"Previous response with id '{req.previous_response_id}' not found.",
                    param="previous_response_id",
                    code="previous_response_not_found",
                )
            conv = await gateway.conversation(stored.conversation_id, caller, "previous_response_id")
            # Continue from that response, even if others followed it (then the session forks there).
            after = dataclasses.replace(conv, state_key=stored.state_key)
        dialogue = await responses.dialogue(req, gateway.image_limits)
        notes = (
            {"x-nexus-unsupported-tools": ", ".join(dialogue.skipped_tools)} if dialogue.skipped_tools else {}
        )
        recalled = await gateway.memory.prepare(caller, dialogue, after, headers, req.nexus_memory)
        notes.update(recalled.headers() if recalled is not None else {})
        rid = responses.response_id(routing.valid_key(request.headers.get(routing.ROUTE_HEADER)))
        turn = gateway.turn(dialogue, caller, started, after, recalled)
        events = turn.events()

        async def save(doc: dict[str, Any]) -> None:
            if req.store is not False and turn.lease is not None:
                conv = turn.lease.conversation
                await gateway.state.save_response(rid, caller.scope, conv.id, conv.state_key, doc)

        if req.stream:

            async def body() -> AsyncIterator[bytes]:
                async with contextlib.aclosing(events) as ev:
                    async for piece, final in responses.stream(ev, rid, req, dialogue.model.id):
                        if final is not None:
                            await save(final)
                        yield piece

            return StreamingResponse(body(), media_type="text/event-stream", headers={**SSE_HEADERS, **notes})
        answer = await _collect_or_abandon(request, events)
        if answer is None:
            return Response(status_code=499)
        output, status = responses.output_of(answer)
        doc = responses.envelope(rid, req, dialogue.model.id, int(time.time()), status, output, answer.usage)
        await save(doc)
        return JSONResponse(doc, headers=notes)

    @app.get("/v1/responses/{response_id}")
    async def get_response(request: Request, response_id: str) -> dict[str, Any]:
        caller = gateway.caller(_headers(request))
        stored = await gateway.state.get_response(response_id)
        if stored is None or stored.scope != caller.scope:
            raise GatewayError(404, f"No response found with id '{response_id}'.", code="response_not_found")
        return stored.body

    @app.get("/v1/models")
    async def models(request: Request) -> dict[str, Any]:
        gateway.caller(_headers(request))
        return {"object": "list", "data": catalog.listing()}

    @app.get("/v1/models/{model_id:path}")
    async def model(request: Request, model_id: str) -> dict[str, Any]:
        gateway.caller(_headers(request))
        m = catalog.resolve(model_id)
        return catalog.entry(m.id)

    conversations.register(app, gateway, _headers, _json_body)
    memory.register(app, gateway, _headers)

    @app.get("/stats")
    async def stats(request: Request) -> dict[str, Any]:
        gateway.caller(_headers(request))
        assert gateway.pool is not None
        return {
            "uptime_s": round(time.monotonic() - gateway.started, 1),
            "pool": gateway.pool.census(),
            "relay_upstream_calls": gateway.relay.forwarded,
            **gateway.pool.stats.as_dict(),
        }

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/ready")
    async def ready() -> Response:
        if not app.state.ready or gateway.pool is None:
            return _error(GatewayError(503, "the gateway is starting"))
        return JSONResponse({"status": "ready", "pool": gateway.pool.census()})

    return app


def create_from_env() -> FastAPI:
    """uvicorn factory: settings from NEXUS_GATEWAY_* (and the TOML file they name)."""
    from nexus_gateway.settings import SettingsError

    try:
        settings = load()
    except SettingsError as exc:
        raise SystemExit(f"gateway: {exc}") from None
    return create_app(*_in_place(settings))


def _in_place(settings: GatewaySettings) -> tuple[GatewaySettings, SecretStore]:
    """Locally: keys in the data directory's secret store. In AWS (a worker task): keys from the
    stage's Secrets Manager prefix."""
    if settings.secrets_prefix is None:
        return settings, LocalSecretStore.in_data_dir(settings.data_dir)
    from nexus.aws import client
    from nexus.secrets_manager import SecretsManagerStore

    return settings, SecretsManagerStore(client("secretsmanager"), settings.secrets_prefix)
