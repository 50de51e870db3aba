"""The proxy's HTTP/1.1 server protocol: uvicorn's httptools protocol plus what a public endpoint
needs and uvicorn leaves out.

- Errors the server raises itself (a request it cannot parse) come in Anthropic's error JSON, like
  every other error of the proxy, instead of uvicorn's plain text.
- A request's head has a deadline (``NEXUS_HEADER_TIMEOUT_S``, 10 s): uvicorn arms no timer for a
  new connection or a half-sent head, so a client could hold a connection open forever.

Selected by ``nexus_proxy.serve`` (uvicorn's ``http`` setting). The body's deadline is
the forwarder's (it knows which request to record).
"""

from __future__ import annotations

import asyncio

import httptools
from nexus.config import Settings
from nexus.errors import anthropic_error
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

HEAD_TIMEOUT_S = Settings.from_env().header_timeout_s


class ProxyHttpProtocol(HttpToolsProtocol):
    _head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_timer()  # a connection that never sends a byte

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._disarm_head_timer()
            self.send_400_response(f"malformed HTTP request: {exc}")
        except httptools.HttpParserUpgrade:
            self._unsupported_upgrade_warning()  # no websockets here; the request goes on as HTTP

    def _unsupported_upgrade_warning(self) -> None:
        # uvicorn's own also recommends installing a websockets library: not what the proxy wants.
        self.logger.warning("upgrade request: served as plain HTTP (the proxy has no websockets)")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._head_timer is None:  # the next request on a kept-alive connection
            self._arm_head_timer()

    def on_headers_complete(self) -> None:
        self._disarm_head_timer()
        super().on_headers_complete()

    def send_400_response(self, msg: str) -> None:
        self._send_error(400, msg)

    def _arm_head_timer(self) -> None:
        self._head_timer = self.loop.call_later(HEAD_TIMEOUT_S, self._head_timed_out)

    def _disarm_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if not self.transport.is_closing():
            self._send_error(408, f"request headers not received within {HEAD_TIMEOUT_S:g} s")

    def _send_error(self, status: int, message: str) -> None:
        body = anthropic_error(status, message)
        reason = {400: b"Bad Request", 408: b"Request Timeout"}[status]
        no_retry = b"x-should-retry: false\r\n" if status == 400 else b""  # resending cannot fix it
        self.transport.write(
            b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n%s"
            b"connection: close\r\n\r\n%s" % (status, reason, len(body), no_retry, body)
        )
        self.transport.close()
