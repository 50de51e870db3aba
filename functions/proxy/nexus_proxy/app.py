"""The proxy's ASGI application: routing only; forwarding lives in ``forward.py``.

A bare ASGI callable rather than a framework: this is the hot path, and the proxy has two routes.
"""

from __future__ import annotations

import logging

from nexus.access import Authenticator
from nexus.config import Settings
from nexus.secret_store import LocalSecretStore, SecretStore
from nexus.sink import HoldingSink, RecordSink
from nexus.spool import SpoolWriter

from nexus_proxy.asgi import Receive, Scope, Send
from nexus_proxy.forward import Forwarder, StreamAborted
from nexus_proxy.responses import send_error, send_json

FORWARDED = frozenset({"/v1/messages", "/v1/messages/count_tokens"})
log = logging.getLogger("nexus.proxy")


class ProxyApp:
    def __init__(self, forwarder: Forwarder) -> None:
        self.forwarder = forwarder

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            path = scope["path"]
            if path in FORWARDED:
                if scope["method"] != "POST":
                    return await send_error(
                        send, 405, f"{scope['method']} is not allowed on {path}; use POST"
                    )
                try:
                    return await self.forwarder.handle(scope, receive, send)
                except StreamAborted:
                    raise
                except Exception:
                    # A bug of ours: answer in the protocol's shape, not uvicorn's plain text, if the
                    # response has not started (it raises if it has, and the original is re-raised).
                    log.exception("proxy failed on %s", path)
                    try:
                        await send_error(send, 500, "internal error in the Nexus proxy (logged)")
                    except Exception:
                        pass
                    else:
                        return
                    raise
            if path == "/health" and scope["method"] == "GET":
                status, body = self.forwarder.health()
                return await send_json(send, status, body)
            return await send_error(send, 404, f"{scope['method']} {path} is not an endpoint of this proxy")
        if kind == "lifespan":
            return await self._lifespan(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            msg = await receive()
            if msg["type"] == "lifespan.startup":
                await self.forwarder.start()
                await send({"type": "lifespan.startup.complete"})
            elif msg["type"] == "lifespan.shutdown":
                await self.forwarder.close()
                await send({"type": "lifespan.shutdown.complete"})
                return


class _QuietAbort(logging.Filter):
    """A deliberately aborted stream is recorded already; no traceback in the server log."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], StreamAborted))


logging.getLogger("uvicorn.error").addFilter(_QuietAbort())


def build(settings: Settings, sink: RecordSink | None = None, store: SecretStore | None = None) -> ProxyApp:
    store = store or LocalSecretStore(settings.secrets_path)
    records: RecordSink = sink or HoldingSink(
        SpoolWriter(settings.spool_dir, fsync=settings.spool_fsync), settings.record_hold_bytes
    )
    forwarder = Forwarder(
        settings.upstream_url,
        records,
        Authenticator(store, require_keys=settings.require_keys, refresh_s=settings.access_refresh_s),
        settings.max_body_bytes,
        settings.connect_timeout_s,
        settings.read_timeout_s,
        strip_platform_headers=settings.strip_platform_headers,
        body_timeout_s=settings.body_timeout_s,
    )
    return ProxyApp(forwarder)


def create_app() -> ProxyApp:
    """The ASGI app factory ``nexus_proxy.serve`` gives uvicorn: settings from the environment.

    In AWS (``NEXUS_QUEUE_URL`` set) records go to SQS/S3 and access data comes from Secrets Manager
    (``NEXUS_SECRETS_PREFIX``), through ``nexus.aws_calls`` rather than botocore (cold start);
    locally, the spool and the secrets file in the data directory."""
    settings = Settings.from_env()
    if settings.lambda_function:
        from nexus.logs import json_logging

        json_logging("nexus-proxy")
    sink = store = None
    if settings.queue_url and settings.record_bucket:
        from nexus.aws_calls import S3Client, SqsClient
        from nexus.sqs_queue import SqsSink

        sink = SqsSink(SqsClient(), settings.queue_url, S3Client(), settings.record_bucket)
    if settings.secrets_prefix:
        from nexus.aws_calls import SecretsManagerClient
        from nexus.secrets_manager import SecretsManagerStore

        store = SecretsManagerStore(SecretsManagerClient(), settings.secrets_prefix)
    return build(settings, sink=sink, store=store)
