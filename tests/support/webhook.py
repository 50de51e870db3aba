"""A real HTTP server standing in for a Slack incoming webhook: it records every POST (path and JSON
body) and answers with the status the test sets (200 ``ok`` like Slack, or a failure)."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class WebhookReceiver:
    def __init__(self) -> None:
        self.posts: list[dict[str, Any]] = []
        self.status = 200
        self.failing: dict[str, int] = {}  # path -> the status it answers instead
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                with receiver._lock:
                    receiver.posts.append({"path": self.path, "json": json.loads(body or b"null")})
                    status = receiver.failing.get(self.path, receiver.status)
                answer = b"ok" if status == 200 else b"internal_error"
                self.send_response(status)
                self.send_header("content-type", "text/plain")
                self.send_header("content-length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> WebhookReceiver:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def url(self, path: str = "/services/T000/B000/secret-part") -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def reset(self) -> None:
        with self._lock:
            self.posts.clear()
            self.status = 200
            self.failing.clear()

    def received(self, path: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return [p for p in self.posts if path is None or p["path"] == path]

    def wait(self, n: int, path: str | None = None, timeout: float = 20) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.received(path)
            if len(got) >= n:
                return got
            time.sleep(0.05)
        raise AssertionError(f"expected {n} webhook posts in {timeout}s, got {self.received(path)}")
