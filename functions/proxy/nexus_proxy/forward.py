"""Forward one Messages API request upstream and stream the answer back, byte for byte.

Hot path: no parsing of the response, no database, no per-request set-up beyond what the request
needs. The captured bytes go to the record sink just before the response's end is sent.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

import aiohttp
import orjson
from multidict import CIMultiDict
from nexus.access import Authenticator, AuthError, Grant
from nexus.headers import (
    HOP_BY_HOP,
    NEXUS_PREFIX,
    PLATFORM_HEADERS,
    REQUEST_SKIP,
    SECRET_HEADERS,
    fingerprint,
    redact,
    redact_query,
    redacted_pairs,
)
from nexus.ids import uuid7
from nexus.record import RawRecord
from nexus.sink import RecordSink
from yarl import URL

from nexus_proxy.asgi import Receive, Scope, Send
from nexus_proxy.budget_gate import BudgetGate
from nexus_proxy.responses import send_error

log = logging.getLogger("nexus.proxy")

# aiohttp adds these when absent; a transparent proxy must not.
SKIP_AUTO_HEADERS = frozenset({"User-Agent", "Accept", "Accept-Encoding", "Content-Type"})


class StreamAborted(Exception):
    """Raised after the response started, so the server drops the connection: a cut upstream stream
    must look cut to the client too, not like a clean end."""


class BodyTooLarge(Exception):
    pass


# An error answer sent before the request body was read in full: the connection cannot carry another
# request, and closing it frees it from a client that may never send the rest.
CLOSE = [(b"connection", b"close")]


async def read_body(receive: Receive, limit: int, idle_timeout_s: float) -> bytes:
    """The request body; raises BodyTooLarge past ``limit``, TimeoutError when the client sends
    nothing for ``idle_timeout_s``, ConnectionResetError when it goes away."""
    chunks: list[bytes] = []
    size = 0
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(idle_timeout_s) as deadline:
        while True:
            msg = await receive()
            if msg["type"] == "http.disconnect":
                raise ConnectionResetError("client went away while sending the body")
            chunk = msg.get("body", b"")
            if chunk:
                size += len(chunk)
                if size > limit:
                    raise BodyTooLarge
                chunks.append(chunk)
            if not msg.get("more_body", False):
                return b"".join(chunks) if len(chunks) != 1 else chunks[0]
            deadline.reschedule(loop.time() + idle_timeout_s)


def upstream_failure(exc: BaseException, connect_s: float, read_s: float) -> tuple[int, str]:
    """Status and message for an upstream that gave no answer: say what happened."""
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return 502, "upstream closed the connection without answering"
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return 504, f"upstream did not accept a connection within {connect_s:g} s"
    if isinstance(exc, aiohttp.SocketTimeoutError):
        return 504, f"upstream sent nothing for {read_s:g} s"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return 502, f"upstream unreachable: {exc}"
    if isinstance(exc, TimeoutError):
        return 504, "upstream timed out before answering"
    return 502, f"upstream failed before answering: {exc.__class__.__name__}: {exc}"


async def _wait_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


@dataclass(slots=True)
class _Exchange:
    """One request in flight: its record, its start time, and whether the record was handed off."""

    rec: RawRecord
    started: float
    handed_off: bool = False


class Forwarder:
    def __init__(
        self,
        upstream: str,
        sink: RecordSink,
        auth: Authenticator,
        max_body_bytes: int,
        connect_timeout_s: float = 10.0,
        read_timeout_s: float = 600.0,
        strip_platform_headers: bool = False,
        body_timeout_s: float = 15.0,
        budgets: BudgetGate | None = None,
    ) -> None:
        self.upstream = upstream
        self.strip_platform_headers = strip_platform_headers
        self.sink = sink
        self.auth = auth
        # Budget state lives next to the access documents and is checked as often (ADR 0017).
        self.budgets = budgets or BudgetGate(auth.store, auth.refresh_s)
        self.max_body = max_body_bytes
        self.body_timeout_s = body_timeout_s
        self.connect_timeout_s, self.read_timeout_s = connect_timeout_s, read_timeout_s
        self.timeout = aiohttp.ClientTimeout(total=None, connect=connect_timeout_s, sock_read=read_timeout_s)
        self.session: aiohttp.ClientSession | None = None
        self.refused_unrecordable = 0  # requests turned away because they could not be recorded

    async def start(self) -> None:
        if self.session is None:
            connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300, keepalive_timeout=15)
            self.session = aiohttp.ClientSession(
                connector=connector,
                timeout=self.timeout,
                auto_decompress=False,  # bytes pass through as sent, compressed or not
                skip_auto_headers=SKIP_AUTO_HEADERS,
                cookie_jar=aiohttp.DummyCookieJar(),
            )

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()
            self.session = None
        self.sink.close()

    def health(self) -> tuple[int, bytes]:
        """``/health``: 200 while every request is recorded (``degraded`` while records wait in
        memory for the disk), 503 while new requests are refused because nothing can be recorded."""
        stats = getattr(self.sink, "stats", None)
        if stats is None or (stats.held == 0 and self.sink.accepting):
            status, state = 200, "ok"
        else:
            status, state = (200, "degraded") if self.sink.accepting else (503, "not_recording")
        doc: dict[str, object] = {"status": state}
        if stats is not None:
            doc["recording"] = {
                "held": stats.held,
                "held_bytes": stats.held_bytes,
                "written_late": stats.written_late,
                "write_errors": stats.write_errors,
                "last_error": stats.last_error,
                "refused": self.refused_unrecordable,
            }
        return status, orjson.dumps(doc)

    def _record(self, scope: Scope, headers: list[tuple[str, str]]) -> RawRecord:
        return RawRecord(
            id=uuid7(),
            received_at=time.time(),
            method=scope["method"],
            path=scope["path"],
            query=redact_query(scope["query_string"].decode("latin-1")),
            request_headers=redacted_pairs(headers),
            upstream=self.upstream,
        )

    def _hand_off(self, rec: RawRecord) -> None:
        try:
            self.sink.put(rec)
        except Exception:  # the record must not vanish silently; the response is already sent
            log.exception("could not hand record %s to the queue", rec.id, extra={"record_id": rec.id})

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]]
        if self.strip_platform_headers:
            headers = [(k, v) for k, v in headers if k not in PLATFORM_HEADERS]
        ex = _Exchange(self._record(scope, headers), started)
        try:
            await self._handle(scope, receive, send, headers, ex)
        finally:
            self._finish(ex)  # cut streams, disconnects, cancellations: no final message was sent

    def _finish(self, ex: _Exchange) -> None:
        """Hand the record off, once. Called right before a response's last message: on Lambda the
        invocation ends (and the sandbox may freeze) as soon as the response is complete, so a
        hand-off after it could be lost. The client already has every byte but the end."""
        if not ex.handed_off:
            ex.handed_off = True
            if ex.rec.duration_ms is None:
                ex.rec.duration_ms = (time.perf_counter() - ex.started) * 1000
            self._hand_off(ex.rec)

    async def _reject(
        self,
        send: Send,
        ex: _Exchange,
        status: int,
        message: str,
        extra: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        ex.rec.status = status
        ex.rec.error = message
        self._finish(ex)
        await send_error(send, status, message, extra)

    async def _handle(
        self, scope: Scope, receive: Receive, send: Send, headers: list[tuple[str, str]], ex: _Exchange
    ) -> None:
        rec = ex.rec
        if not self.sink.accepting:
            # Nothing can be recorded (disk full, memory hold used up): refuse before the upstream
            # is called, so no unrecorded spend. Retryable: clients back off and come back.
            self.refused_unrecordable += 1
            ex.handed_off = True  # there is nowhere to hand it; it is counted instead
            return await send_error(
                send,
                503,
                "Nexus cannot record requests right now (its storage is failing); retry shortly",
                [(b"retry-after", b"5")],
            )
        lower = {k: v for k, v in headers}
        try:
            grant = self.auth.authorize(lower)
        except AuthError as exc:
            return await self._reject(send, ex, 401, str(exc))
        principal = grant.principal
        rec.team, rec.user, rec.key_id, rec.auth_mode = (
            principal.team,
            principal.user,
            principal.key_id,
            principal.mode,
        )
        if grant.credential:
            rec.account = fingerprint(grant.credential)

        media_type = lower.get("content-type", "").split(";", 1)[0].strip().lower()
        if media_type != "application/json":
            return await self._reject(
                send, ex, 400, f"content-type must be application/json, got {media_type or 'none'!r}"
            )
        too_large = f"request body exceeds the {self.max_body // (1024 * 1024)} MB limit"
        declared = lower.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_body:  # refused before it is sent
            return await self._reject(send, ex, 413, too_large, CLOSE)
        try:
            body = await read_body(receive, self.max_body, self.body_timeout_s)
        except BodyTooLarge:
            return await self._reject(send, ex, 413, too_large, CLOSE)
        except TimeoutError:
            message = f"request body not received: the client sent nothing for {self.body_timeout_s:g} s"
            return await self._reject(send, ex, 408, message, CLOSE)
        except ConnectionResetError:
            rec.error = "client_disconnected"
            return
        rec.request_body = body
        try:
            orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            return await self._reject(send, ex, 400, f"request body is not valid JSON: {exc}")
        # Over a budget: refused here, recorded (with its body) like the other refusals, never sent.
        over = self.budgets.refusal(scope["path"], principal.team, principal.key_id)
        if over is not None:
            return await self._reject(send, ex, 429, over.message())

        await self._stream(scope, receive, send, self._upstream_headers(headers, grant), ex)

    def _upstream_headers(self, headers: list[tuple[str, str]], grant: Grant) -> CIMultiDict[str]:
        drop = REQUEST_SKIP.union(grant.drop) if grant.drop else REQUEST_SKIP
        out = CIMultiDict((k, v) for k, v in headers if k not in drop and not k.startswith(NEXUS_PREFIX))
        for k, v in grant.set:
            out[k] = v
        return out

    async def _stream(
        self, scope: Scope, receive: Receive, send: Send, fwd_headers: CIMultiDict[str], ex: _Exchange
    ) -> None:
        assert self.session is not None, "Forwarder.start() not called"
        rec, started = ex.rec, ex.started
        qs = scope["query_string"]
        url = self.upstream + scope["path"] + ("?" + qs.decode("latin-1") if qs else "")
        try:
            resp = await self.session.request(
                scope["method"],
                URL(url, encoded=True),
                data=rec.request_body,
                headers=fwd_headers,
                allow_redirects=False,
            )
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            status, message = upstream_failure(exc, self.connect_timeout_s, self.read_timeout_s)
            return await self._reject(send, ex, status, message)

        watcher = asyncio.ensure_future(_wait_disconnect(receive))

        # Client gone: close the upstream response so the upstream request is cancelled too.
        def on_disconnect(t: asyncio.Future[None]) -> None:
            if not t.cancelled():
                resp.close()

        watcher.add_done_callback(on_disconnect)
        chunks: list[bytes] = []
        try:
            rec.status = resp.status
            if resp.status == 401 and rec.auth_mode == "team-key":
                # A team OAuth token refused: the refresher (its one writer) is asked to renew it.
                asyncio.get_running_loop().run_in_executor(None, self.auth.ask_refresh, rec.team)
            out_headers = []
            stored = []
            for k, v in resp.raw_headers:
                name = k.decode("latin-1").lower()
                if name in HOP_BY_HOP:
                    continue
                out_headers.append((k, v))
                value = v.decode("latin-1")
                stored.append([name, redact(name, value) if name in SECRET_HEADERS else value])
            rec.response_headers = stored
            await send({"type": "http.response.start", "status": resp.status, "headers": out_headers})
            try:
                async for chunk in resp.content.iter_any():
                    if rec.ttfb_ms is None:
                        rec.ttfb_ms = (time.perf_counter() - started) * 1000
                    chunks.append(chunk)
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                if watcher.done() and not watcher.cancelled():
                    rec.error = "client_disconnected"
                    return
                rec.error = f"upstream_cut: {exc.__class__.__name__}: {exc}"
                raise StreamAborted(rec.error) from exc
            if watcher.done() and not watcher.cancelled():
                rec.error = "client_disconnected"
                return
            rec.response_body = b"".join(chunks)
            self._finish(ex)
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except asyncio.CancelledError:
            rec.error = rec.error or "cancelled (server shutting down)"
            raise
        finally:
            if not watcher.done():
                watcher.cancel()
            resp.release()
            if not rec.response_body:  # cut or abandoned: keep what the client got
                rec.response_body = b"".join(chunks)
