"""A scripted OAuth token endpoint (the refresh-token grant Claude subscriptions use), owned by the
tests: it rotates refresh tokens, can answer slowly, and refuses a refresh token it does not know
with ``invalid_grant``. New access tokens are handed to a callback (the fake upstream's accepts)."""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class FakeTokenEndpoint:
    def __init__(self, on_new_token: Callable[[str], None] | None = None) -> None:
        self.valid_refresh: set[str] = set()
        self.calls: list[dict[str, Any]] = []
        self.delay_s = 0.0
        self.gate = threading.Event()  # cleared: answers wait until the test releases them
        self.gate.set()
        self.expires_in = 8 * 3600
        self.on_new_token = on_new_token
        self.issued: list[str] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1/oauth/token"

    def start(self) -> FakeTokenEndpoint:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("content-length") or 0)) or b"{}")
                status, doc = fake.answer(body)
                out = json.dumps(doc).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()

    def answer(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        with self._lock:
            self.calls.append(body)
        time.sleep(self.delay_s)
        self.gate.wait(60)
        if body.get("grant_type") != "refresh_token":
            return 400, {"error": "unsupported_grant_type"}
        with self._lock:
            if body.get("refresh_token") not in self.valid_refresh:
                return 400, {
                    "error": "invalid_grant",
                    "error_description": "Refresh token not found or invalid",
                }
            self.valid_refresh.discard(body["refresh_token"])  # refresh tokens rotate: one use each
            access, refresh = (
                "sk-ant-oat01-" + secrets.token_urlsafe(16),
                "sk-ant-ort01-" + secrets.token_urlsafe(16),
            )
            self.valid_refresh.add(refresh)
            self.issued.append(access)
        if self.on_new_token is not None:
            self.on_new_token(access)
        return 200, {
            "token_type": "Bearer",
            "access_token": access,
            "refresh_token": refresh,
            "expires_in": self.expires_in,
            "scope": "user:inference user:profile",
        }
